package ci_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// oldMakefile is the Makefile as GNU make 3.81 reads it: no .ONESHELL and
// no .SHELLFLAGS (both 3.82), and no "oneshell" in .FEATURES.
func oldMakefile(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for line := range strings.Lines(read(t, "Makefile")) {
		if strings.HasPrefix(line, ".ONESHELL:") || strings.HasPrefix(line, ".SHELLFLAGS") {
			continue
		}
		b.WriteString(strings.ReplaceAll(line, "$(filter oneshell,$(.FEATURES))", ""))
	}
	path := filepath.Join(t.TempDir(), "Makefile.381")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bash4 matches what bash 3.2 (macOS's) lacks.
var bash4 = regexp.MustCompile(`wait -n|declare -A|mapfile|readarray|coproc|\$\{\w+(,,|\^\^)|\|&|&>>`)

// TestEntryPointsNeedOnlyMake381AndBash32 runs make the way GNU make 3.81
// would read the Makefile: help must work, and every command of
// build, test, run and clean must be a complete bash 3.2 command on its
// own line (3.81 runs each line in a shell of its own). A target that
// needs 3.82 must say so.
func TestEntryPointsNeedOnlyMake381AndBash32(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make")
	}
	for _, tool := range []string{"make", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	mk := oldMakefile(t)
	runMake := func(args ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"--no-print-directory", "-f", mk}, args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := runMake("help"); err != nil || !strings.Contains(out, "  build ") {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	for _, target := range []string{"build", "test", "run", "clean"} {
		out, err := runMake("-n", target)
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		for _, line := range strings.Split(strings.ReplaceAll(out, "\\\n", " "), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			if m := bash4.FindString(line); m != "" {
				t.Errorf("make %s runs %q: %q needs bash 4 or later", target, line, m)
			}
			if out, err := exec.Command("bash", "-n", "-c", line).CombinedOutput(); err != nil {
				t.Errorf("make %s: %q is no complete command on its own: %v\n%s", target, line, err, out)
			}
		}
	}
	if out, err := runMake("-n", "lint"); err == nil || !strings.Contains(out, "needs GNU make 3.82") {
		t.Errorf("make lint with make 3.81 = %v, want the 3.82 hint:\n%s", err, out)
	}
}
