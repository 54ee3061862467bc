// Command rename gives a copy of hostkit its own module path, offline: what
// gonew does for a module download, for a git clone.
//
//	go run ./tools/rename example.com/you/svc
//
// It rewrites the module path in go.mod, in every import and in every other
// text file that names it (Makefile, manifests, docs), renames the container
// images (hostkit/pingapi becomes svc/pingapi, after the module's last path
// element), and gofmts the Go files it changed, whose import order may move.
// A line with a gonew command keeps the template's path: it says where the
// copy came from.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	if err := run(os.Args[1:], ".", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rename:", err)
		os.Exit(2)
	}
}

func run(args []string, dir string, out io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: rename NEW_MODULE_PATH (e.g. example.com/you/svc)")
	}
	newPath := args[0]
	oldPath, err := modulePath(dir)
	if err != nil {
		return err
	}
	// The images keep their old name after gonew, which rewrites only Go
	// files and go.mod; so the old name comes from the Makefile, and a
	// gonew copy can be renamed here too.
	oldName, err := imageRepo(dir)
	if err != nil {
		return err
	}
	if oldPath == newPath && oldName == path.Base(newPath) {
		return fmt.Errorf("module and images are already named for %s", newPath)
	}
	// go mod edit validates the new path the way the go command will read it.
	edit := exec.Command("go", "mod", "edit", "-module", newPath)
	edit.Dir = dir
	if msg, err := edit.CombinedOutput(); err != nil {
		return fmt.Errorf("invalid module path %q: %s", newPath, bytes.TrimSpace(msg))
	}
	apps, err := commands(dir)
	if err != nil {
		return err
	}
	r := newReplacer(oldPath, newPath, oldName, apps)
	n, err := r.tree(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "renamed %s to %s in %d files; images are now %s/<app>\n", oldPath, newPath, n, path.Base(newPath))
	return nil
}

func modulePath(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		return "", errors.New("go.mod has no module line")
	}
	return string(m[1]), nil
}

// commands lists the binaries under cmd/, which are also the image names.
func commands(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		return nil, fmt.Errorf("list cmd: %w", err)
	}
	var apps []string
	for _, e := range entries {
		if e.IsDir() {
			apps = append(apps, regexp.QuoteMeta(e.Name()))
		}
	}
	return apps, nil
}

type replacer struct {
	oldPath, newPath string
	image, repo      *regexp.Regexp
	newName          string
}

func newReplacer(oldPath, newPath, oldName string, apps []string) *replacer {
	// An image reference is the old name, a slash and an app, not inside a
	// longer path (the module path is replaced before this runs); the
	// Makefile names the repository alone.
	image := regexp.MustCompile(`(^|[^\w./-])` + regexp.QuoteMeta(oldName) +
		`/(` + strings.Join(apps, "|") + `)\b`)
	repo := regexp.MustCompile(`(?m)^(IMAGE_REPO \?= )` + regexp.QuoteMeta(oldName) + `$`)
	return &replacer{oldPath: oldPath, newPath: newPath, image: image, repo: repo, newName: path.Base(newPath)}
}

// imageRepo reads the images' repository from the Makefile's IMAGE_REPO.
func imageRepo(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("read Makefile: %w", err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_REPO \?= (\S+)$`).FindSubmatch(b)
	if m == nil {
		return "", errors.New("the Makefile sets no IMAGE_REPO")
	}
	return string(m[1]), nil
}

// skipDirs are never rewritten: history, build output, local data.
var skipDirs = map[string]bool{".git": true, "bin": true, "data": true, "vendor": true, "node_modules": true}

func (r *replacer) tree(dir string) (int, error) {
	changed := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		ok, err := r.file(p)
		if ok {
			changed++
		}
		return err
	})
	return changed, err
}

func (r *replacer) file(p string) (bool, error) {
	info, err := os.Stat(p)
	if err != nil || info.Size() > 4<<20 {
		return false, err
	}
	b, err := os.ReadFile(p)
	if err != nil || bytes.IndexByte(b, 0) >= 0 { // binary files are left alone
		return false, err
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, line := range lines {
		if bytes.Contains(line, []byte("gonew ")) {
			continue // the gonew command names the template itself, not this copy
		}
		line = bytes.ReplaceAll(line, []byte(r.oldPath), []byte(r.newPath))
		line = r.repo.ReplaceAll(line, []byte("${1}"+r.newName))
		lines[i] = r.image.ReplaceAll(line, []byte("${1}"+r.newName+"/${2}"))
	}
	out := bytes.Join(lines, nil)
	if bytes.Equal(out, b) {
		return false, nil
	}
	if strings.HasSuffix(p, ".go") {
		if out, err = format.Source(out); err != nil {
			return false, fmt.Errorf("gofmt %s: %w", p, err)
		}
	}
	return true, os.WriteFile(p, out, info.Mode().Perm())
}
