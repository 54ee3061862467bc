package imagetest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The classic builder (what the container tests get without BuildKit) runs
// every stage above the requested target, so local must come first, before
// the stages that need a registry.
func TestDockerfileLocalTargetComesFirst(t *testing.T) {
	var stages []string
	// Global ARG defaults, which FROM lines may name (${RUNTIME_IMAGE}).
	args := map[string]string{}
	for _, line := range strings.Split(string(readFile(t, "Dockerfile")), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "ARG" && len(stages) == 0 {
			if name, value, ok := strings.Cut(f[1], "="); ok {
				args[name] = os.Expand(value, func(k string) string { return args[k] })
			}
		}
		if len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			stages = append(stages, os.Expand(strings.Join(f[1:], " "), func(k string) string {
				if v, ok := args[k]; ok {
					return v
				}
				return "$" + k // a build-time platform variable
			}))
		}
	}
	if len(stages) == 0 || stages[0] != "scratch AS local" {
		t.Fatalf("first stage = %v, want `FROM scratch AS local`", stages)
	}
	if last := stages[len(stages)-1]; !strings.HasPrefix(last, "gcr.io/distroless/static-debian12:nonroot") {
		t.Errorf("last (default) stage = %q, want distroless static-debian12:nonroot", last)
	}
}

// .dockerignore lets in exactly what the Dockerfile reads: every Go file the
// two binaries are built from (so a new package directory is not silently
// left out of the image build), the host-built binaries and the image files;
// tests, manifests and git history stay out.
func TestDockerignoreSendsTheBuildInputsOnly(t *testing.T) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(path string) bool {
		t.Helper()
		ex, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatalf("match %s: %v", path, err)
		}
		return ex
	}
	want := append(buildInputs(t, "./cmd/..."),
		"go.mod", "go.sum", "bin/linux/pingapi", "bin/linux/worker",
		"deploy/image/etc/passwd", "deploy/image/etc/group", "deploy/image/home/nonroot/README")
	for _, path := range want {
		if excluded(path) {
			t.Errorf("%s is a build input but .dockerignore excludes it", path)
		}
	}
	for _, path := range []string{".git/config", "deploy/manifests/base/kustomization.yaml", "bin/deploy/kustomization.yaml",
		"internal/host/host_test.go", "README.md", "data/nats/jetstream"} {
		if !excluded(path) {
			t.Errorf("%s is not a build input but .dockerignore sends it to the daemon", path)
		}
	}
}

// buildInputs lists the non-test Go and embedded files, relative to the
// repository root, of the module's packages the given commands import.
func buildInputs(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var files []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			Dir                 string
			Module              *struct{ Main bool }
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(files) == 0 {
		t.Fatal("go list found no files of this module")
	}
	return files
}
