package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenamedCopyBuildsAndKeepsNoOldName renames a copy of this repository,
// as a user's first step does, and checks that it builds, vets, and no longer
// names the old module or images anywhere.
func TestRenamedCopyBuildsAndKeepsNoOldName(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole tree again")
	}
	root := repoRoot(t)
	oldPath, err := modulePath(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := copyRepo(t, root)

	var out bytes.Buffer
	if err := run([]string{"example.com/you/svc"}, dir, &out); err != nil {
		t.Fatalf("rename: %v", err)
	}
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the renamed copy: %v\n%s", strings.Join(args, " "), err, msg)
		}
	}
	oldImages := []string{filepath.Base(oldPath) + "/pingapi", filepath.Base(oldPath) + "/worker"}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "gonew ") {
				continue // names the template on purpose; the README says so
			}
			for _, old := range append([]string{oldPath}, oldImages...) {
				if strings.Contains(line, old) {
					t.Errorf("%s still names %s: %s", strings.TrimPrefix(p, dir), old, line)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := modulePath(dir); got != "example.com/you/svc" {
		t.Fatalf("module = %q after rename", got)
	}
}

// writeTree writes files (path → content) under a new temporary directory.
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

// gonew rewrites the module path but not the image names; rename, run with
// the same path, still renames the images.
func TestRenameAfterGonewRenamesTheImages(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"go.mod":                  "module example.com/you/svc\n\ngo 1.26\n",
		"Makefile":                "IMAGE_REPO ?= hostkit\n",
		"cmd/pingapi/main.go":     "package main\n\nfunc main() {}\n",
		"deploy/deployment.yaml":  "image: hostkit/pingapi\n",
		"deploy/other/notes.yaml": "name: hostkit-cluster\n",
	})
	if err := run([]string{"example.com/you/svc"}, dir, &bytes.Buffer{}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	for name, want := range map[string]string{
		"Makefile":                "IMAGE_REPO ?= svc\n",
		"deploy/deployment.yaml":  "image: svc/pingapi\n",
		"deploy/other/notes.yaml": "name: hostkit-cluster\n", // not an image: left alone
	} {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
	if err := run([]string{"example.com/you/svc"}, dir, &bytes.Buffer{}); err == nil {
		t.Error("a second rename to the same name succeeded; want an error")
	}
}

func TestRenameRejectsBadPaths(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"go.mod":   "module example.com/old\n\ngo 1.26\n",
		"Makefile": "IMAGE_REPO ?= old\n",
	})
	for _, arg := range []string{"", "has space/x", "example.com/old", "-h"} {
		if err := run([]string{arg}, dir, &bytes.Buffer{}); err == nil {
			t.Errorf("rename %q = nil, want an error", arg)
		}
	}
	if err := run(nil, dir, &bytes.Buffer{}); err == nil {
		t.Error("rename with no argument = nil, want usage error")
	}
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		tb.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// copyRepo copies the files git would commit (tracked, and untracked but not
// ignored) into a temporary directory.
func copyRepo(tb testing.TB, root string) string {
	tb.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	list, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git ls-files: %v", err)
	}
	dir := tb.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
