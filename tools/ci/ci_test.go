package ci_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository root: tests run in tools/ci.
var root = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}()

const workflow = ".github/workflows/ci.yml"

func read(tb testing.TB, rel string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestEveryPlaceUsesTheToolchainOfGoMod: a machine starts on its own Go, so
// each entry point must set the release go.mod asks for, and the image's
// builder must be that release.
func TestEveryPlaceUsesTheToolchainOfGoMod(t *testing.T) {
	m := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindStringSubmatch(read(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no toolchain line")
	}
	v := m[1]
	for file, want := range map[string]string{
		"deploy/go.mod": "\ntoolchain go" + v + "\n",
		"Makefile":      "\nexport GOTOOLCHAIN := go" + v + "\n",
		".ci/run":       "\nexport GOTOOLCHAIN=go" + v + "\n",
		workflow:        "\n      GOTOOLCHAIN: go" + v + "\n",
		"Dockerfile":    "\nARG GO_VERSION=" + v + "\n",
	} {
		if !strings.Contains(read(t, file), want) {
			t.Errorf("%s does not contain %q (go.mod's toolchain is go%s)", file, strings.TrimSpace(want), v)
		}
	}
}

// TestWorkflowRunsTheMakeTargets: the hosted CI runs what .ci/run and the
// README promise.
func TestWorkflowRunsTheMakeTargets(t *testing.T) {
	wf := read(t, workflow)
	for _, target := range []string{"lint", "vuln", "test"} {
		if !strings.Contains(wf, "\n        run: make "+target+"\n") {
			t.Errorf("%s has no step `run: make %s`", workflow, target)
		}
	}
}

// TestWorkflowPassesActionlint lints the workflow, and a broken copy of it
// to show the linter does reject what GitHub would.
func TestWorkflowPassesActionlint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs actionlint")
	}
	bin := actionlint(t)
	cmd := exec.Command(bin, "-no-color", workflow)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint %s: %v\n%s", workflow, err, out)
	}
	broken := strings.Replace(read(t, workflow), "runs-on:", "run-on:", 1)
	path := filepath.Join(t.TempDir(), "ci.yml")
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-no-color", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run-on") {
		t.Errorf("actionlint accepted a job without runs-on (err %v):\n%s", err, out)
	}
}

// actionlint finds the actionlint binary on PATH or where go install puts
// it. Missing, the test skips, unless CI is set: .ci/run installs it.
func actionlint(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("actionlint"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, dir := range []string{lines[0], filepath.Join(lines[len(lines)-1], "bin")} {
			p := filepath.Join(dir, "actionlint")
			if _, err := os.Stat(p); dir != "" && err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("actionlint is required when CI is set (.ci/run installs it)")
	}
	t.Skip("actionlint not installed: go install github.com/rhysd/actionlint/cmd/actionlint@" + actionlintVersion(t))
	return ""
}

// actionlintVersion is the version the Makefile pins.
func actionlintVersion(t *testing.T) string {
	m := regexp.MustCompile(`(?m)^ACTIONLINT_VERSION := (\S+)$`).FindStringSubmatch(read(t, "Makefile"))
	if m == nil {
		t.Fatal("the Makefile pins no ACTIONLINT_VERSION")
	}
	return m[1]
}
