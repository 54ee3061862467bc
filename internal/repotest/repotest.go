// Package repotest helps the template's own tests work on copies of the
// repository: the rename, strip and guide tests change a copy the way a
// team would change its clone, then build and test that copy.
package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Root returns the repository root, from a test's working directory (its
// package directory) rel levels down, such as "../..".
func Root(tb testing.TB, rel string) string {
	tb.Helper()
	root, err := filepath.Abs(rel)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("%s is not the repository root: %v", root, err)
	}
	return root
}

// skip are left out of a copy: history, build output and local data, as a
// gonew download has none of them.
var skip = map[string]bool{".git": true, "bin": true, "data": true}

// Copy copies the tree at root into a new temporary directory, without
// .git, bin/ or data/, and returns the copy's path.
func Copy(tb testing.TB, root string) string {
	tb.Helper()
	dir := tb.TempDir()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		// In a git worktree .git is a file naming the real repository:
		// copied, it would make git commands in the copy act on that one.
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, info.Mode().Perm())
	})
	if err != nil {
		tb.Fatalf("copy the repository: %v", err)
	}
	return dir
}

// GitCommit makes dir a git repository with everything committed: the state
// of a fresh clone.
func GitCommit(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
		tb.Fatalf("%s has a .git already: git would commit to that repository", dir)
	}
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "clone"},
	} {
		Run(tb, dir, "git", args...)
	}
}

// Go runs the go command with args in dir, outside any workspace, and fails
// the test with its output on an error.
func Go(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	return Run(tb, dir, "go", args...)
}

// Env is the environment for go commands in a copy: no workspace, and
// -trimpath, which keeps the copy's temporary directory out of the build
// cache's keys, so a copy identical to the last run's reuses its builds and
// test results, and a copy that changed a few packages rebuilds only those.
func Env() []string {
	return append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -trimpath"))
}

// Run runs name with args in dir and returns its combined output; an error
// fails the test.
func Run(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}
