package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/repotest"
)

// writeTree writes files (path → content) under a new temporary directory.
// The fixtures name a made-up template ("tmpl"), never this repository's
// own name, so that renaming the repository leaves them alone.
func writeTree(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func TestRenameRewritesPathAndName(t *testing.T) {
	tests := []struct {
		module, name string
		files        map[string]string // after the rename
	}{
		{"example.com/acme/orders", "orders", map[string]string{
			"go.mod":                 "module example.com/acme/orders\n\ngo 1.26\n",
			"deploy/go.mod":          "module example.com/acme/orders/deploy\n",
			"Makefile":               "PROJECT ?= orders\nKIND ?= tmplkind\n",
			"cmd/api/main.go":        "package main\n\nimport _ \"example.com/acme/orders/internal/x\"\n\nconst conn = \"orders-api\"\n",
			"deploy/deployment.yaml": "namespace: orders\nimage: orders/api\npart-of: orders\n",
			"README.md":              "# orders\ngo run golang.org/x/tools/cmd/gonew@latest example.com/tmpl/tmpl you/svc\nORDERS_CHILD=1\n",
		}},
		{"git.corp.example/team/billing-api/v2", "billing-api", map[string]string{
			"go.mod":                 "module git.corp.example/team/billing-api/v2\n\ngo 1.26\n",
			"deploy/go.mod":          "module git.corp.example/team/billing-api/v2/deploy\n",
			"Makefile":               "PROJECT ?= billing-api\nKIND ?= tmplkind\n",
			"cmd/api/main.go":        "package main\n\nimport _ \"git.corp.example/team/billing-api/v2/internal/x\"\n\nconst conn = \"billing-api-api\"\n",
			"deploy/deployment.yaml": "namespace: billing-api\nimage: billing-api/api\npart-of: billing-api\n",
			"README.md":              "# billing-api\ngo run golang.org/x/tools/cmd/gonew@latest example.com/tmpl/tmpl you/svc\nBILLING_API_CHILD=1\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{
				"go.mod":                 "module example.com/tmpl/tmpl\n\ngo 1.26\n",
				"deploy/go.mod":          "module example.com/tmpl/tmpl/deploy\n",
				"Makefile":               "PROJECT ?= tmpl\nKIND ?= tmplkind\n",
				"cmd/api/main.go":        "package main\n\nimport _ \"example.com/tmpl/tmpl/internal/x\"\n\nconst conn = \"tmpl-api\"\n",
				"deploy/deployment.yaml": "namespace: tmpl\nimage: tmpl/api\npart-of: tmpl\n",
				"README.md":              "# tmpl\ngo run golang.org/x/tools/cmd/gonew@latest example.com/tmpl/tmpl you/svc\nTMPL_CHILD=1\n",
			})
			if err := run([]string{tt.module}, dir, &bytes.Buffer{}); err != nil {
				t.Fatalf("rename: %v", err)
			}
			for name, want := range tt.files {
				if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
					t.Errorf("%s = %q, want %q", name, b, want)
				}
			}
			if err := run([]string{tt.module}, dir, &bytes.Buffer{}); err == nil {
				t.Error("a second rename to the same names succeeded; want an error")
			}
		})
	}
}

// gonew rewrites the module path but not the rest; rename, run with the
// same path, still renames the project.
func TestRenameAfterGonewRenamesTheProject(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"go.mod":                 "module example.com/you/svc\n\ngo 1.26\n",
		"Makefile":               "PROJECT ?= tmpl\n",
		"deploy/deployment.yaml": "image: tmpl/pingapi\nname: mytmpl-cluster\n",
	})
	if err := run([]string{"example.com/you/svc"}, dir, &bytes.Buffer{}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	for name, want := range map[string]string{
		"Makefile":               "PROJECT ?= svc\n",
		"deploy/deployment.yaml": "image: svc/pingapi\nname: mytmpl-cluster\n", // not the name as a word: left alone
	} {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
}

func TestRenameRejectsBadPathsAndNames(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"go.mod":   "module example.com/old\n\ngo 1.26\n",
		"Makefile": "PROJECT ?= old\n",
	})
	for _, args := range [][]string{
		nil, {""}, {"has space/x"}, {"example.com/old"}, {"-h"},
		{"example.com/Foo_Bar"},                // derived name is no DNS label
		{"example.com/x", "Not_A_Label"},       // nor is this one
		{"example.com/x", "name", "extra-arg"}, // too many
	} {
		if err := run(args, dir, &bytes.Buffer{}); err == nil {
			t.Errorf("rename %q = nil, want an error", args)
		}
	}
}

// TestRenameToAnything renames copies of this repository the two ways a team
// gets one (a plain copy, as gonew leaves it, and a git clone) to two paths
// whose names differ from each other and from the template's, and checks
// that each copy builds, vets and passes its fast tier, and that every
// place that names the project now names the new one.
func TestRenameToAnything(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests two renamed copies of the tree")
	}
	root := repotest.Root(t, "../..")
	oldPath, err := modulePath(root)
	if err != nil {
		t.Fatal(err)
	}
	oldName, err := projectName(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		module, name string
		git          bool
	}{
		{"example.com/acme/orders", "orders", false},
		{"git.corp.example/team/billing-api", "billing-api", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := repotest.Copy(t, root)
			if tt.git {
				repotest.GitCommit(t, dir)
			}
			repotest.Go(t, dir, "run", "./tools/rename", tt.module)
			if got, _ := modulePath(dir); got != tt.module {
				t.Fatalf("module = %q after rename, want %q", got, tt.module)
			}
			checkNoOldName(t, dir, oldPath, oldName)
			checkNamed(t, dir, tt.name)
			repotest.Go(t, dir, "build", "./...")
			repotest.Go(t, dir, "vet", "./...")
			repotest.Go(t, dir, "test", "-short", "./...")
			repotest.Go(t, dir, "-C", "deploy", "vet", "./...")
			repotest.Go(t, dir, "-C", "deploy", "test", "-short", "./...")
		})
	}
}

// checkNoOldName fails for every line under dir that still names the old
// module path or the old name as a word (any case), except gonew lines.
func checkNoOldName(tb testing.TB, dir, oldPath, oldName string) {
	tb.Helper()
	word := regexp.MustCompile(`(?i)(^|[^A-Za-z0-9])` + regexp.QuoteMeta(oldName) + `($|[^A-Za-z0-9])`)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "gonew") {
				continue // names the template on purpose; the README says so
			}
			if strings.Contains(line, oldPath) || word.MatchString(line) {
				tb.Errorf("%s:%d still names %s: %s", strings.TrimPrefix(p, dir), i+1, oldName, line)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// checkNamed checks the places that must carry the project's name: what
// make passes to kind and kubectl, the manifests, the Dockerfile labels and
// the NATS cluster.
func checkNamed(tb testing.TB, dir, name string) {
	tb.Helper()
	out := repotest.Run(tb, dir, "make", "-n", "kind-up", "deploy", "TAG=t1")
	for _, want := range []string{
		"kind create cluster --name " + name + " ", "--context kind-" + name + " ",
		"-t " + name + "/worker:t1", "-n " + name + " rollout status",
	} {
		if !strings.Contains(out, want) {
			tb.Errorf("make -n kind-up deploy does not run %q:\n%s", want, out)
		}
	}
	for file, wants := range map[string][]string{
		"deploy/manifests/base/kustomization.yaml":     {"namespace: " + name + "\n", "app.kubernetes.io/part-of: " + name + "\n"},
		"deploy/manifests/base/namespace.yaml":         {"name: " + name + "\n"},
		"deploy/manifests/base/worker/deployment.yaml": {"image: " + name + "/worker:unset\n"},
		"deploy/manifests/base/nats/configmap.yaml":    {"name: " + name + "\n"},
		"Dockerfile": {`title="` + name + `-${APP}"`, `description="` + name + ` ${APP} service"`},
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			tb.Error(err)
			continue
		}
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				tb.Errorf("%s does not contain %q", file, want)
			}
		}
	}
}
