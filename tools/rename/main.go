// Command rename gives a copy of hostkit its own module path and name,
// offline: what gonew does for a module download, for a git clone, and the
// rest that gonew leaves (gonew rewrites only go.mod and Go imports).
//
//	go run ./tools/rename example.com/you/svc [NAME]
//
// It rewrites the module path in every go.mod, import and other text file,
// then the project's name (the Makefile's PROJECT, "hostkit" in the
// template) as a word wherever it stands: images (hostkit/pingapi), the
// namespace, the kind cluster, labels, the NATS cluster and connection
// names, stream descriptions, the Dockerfile's labels, the docs. NAME
// defaults to the module's last path element (without a /vN suffix),
// lowercased; it must be a DNS label, since Kubernetes names use it. The Go
// files it changed are gofmt'ed. A line that mentions gonew keeps the
// template's names: it says where the copy came from.
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

const usage = "usage: rename NEW_MODULE_PATH [NAME] (e.g. example.com/you/svc)"

func run(args []string, dir string, out io.Writer) error {
	if len(args) < 1 || len(args) > 2 || strings.HasPrefix(args[0], "-") {
		return errors.New(usage)
	}
	newPath := args[0]
	newName := defaultName(newPath)
	if len(args) == 2 {
		newName = args[1]
	}
	if !dnsLabel.MatchString(newName) {
		return fmt.Errorf("name %q is not a DNS label (lowercase letters, digits and '-', at most 63); give one: rename %s NAME", newName, newPath)
	}
	oldPath, err := modulePath(dir)
	if err != nil {
		return err
	}
	// gonew rewrites only go.mod and Go files, so the old name comes from
	// the Makefile, and a gonew copy can be renamed here too.
	oldName, err := projectName(dir)
	if err != nil {
		return err
	}
	if oldPath == newPath && oldName == newName {
		return fmt.Errorf("module and project are already named %s and %s", newPath, newName)
	}
	// go mod edit validates the new path the way the go command will read it.
	edit := exec.Command("go", "mod", "edit", "-module", newPath)
	edit.Dir = dir
	if msg, err := edit.CombinedOutput(); err != nil {
		return fmt.Errorf("invalid module path %q: %s", newPath, bytes.TrimSpace(msg))
	}
	r := newReplacer(oldPath, newPath, oldName, newName)
	n, err := r.tree(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "renamed %s to %s and %s to %s in %d files\n", oldPath, newPath, oldName, newName, n)
	return nil
}

// dnsLabel is what Kubernetes accepts as a namespace name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// defaultName is the module path's last element, skipping a major version
// suffix (example.com/x/orders/v2 is orders), lowercased.
func defaultName(module string) string {
	name := path.Base(module)
	if regexp.MustCompile(`^v[0-9]+$`).MatchString(name) {
		name = path.Base(path.Dir(module))
	}
	return strings.ToLower(name)
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

// projectName reads the project's name from the Makefile's PROJECT.
func projectName(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("read Makefile: %w", err)
	}
	m := regexp.MustCompile(`(?m)^PROJECT \?= (\S+)$`).FindSubmatch(b)
	if m == nil {
		return "", errors.New("the Makefile sets no PROJECT")
	}
	return string(m[1]), nil
}

type replacer struct {
	oldPath, newPath []byte
	// words match the old name as a word, in lower and upper case (an
	// environment variable such as HOSTKIT_X), with what replaces each.
	words []word
}

type word struct {
	re   *regexp.Regexp
	repl []byte
}

func newReplacer(oldPath, newPath, oldName, newName string) *replacer {
	r := &replacer{oldPath: []byte(oldPath), newPath: []byte(newPath)}
	for _, v := range []struct{ old, new string }{
		{oldName, newName},
		{strings.ToUpper(oldName), strings.ToUpper(strings.ReplaceAll(newName, "-", "_"))},
	} {
		// Not inside a longer word: "hostkit/pingapi" and "hostkit-worker"
		// are the name, "myhostkit" is not.
		re := regexp.MustCompile(`(^|[^A-Za-z0-9])` + regexp.QuoteMeta(v.old) + `($|[^A-Za-z0-9])`)
		r.words = append(r.words, word{re: re, repl: []byte("${1}" + v.new + "${2}")})
	}
	return r
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
	out := r.text(b)
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

// text renames the module path, then the name, line by line.
func (r *replacer) text(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, line := range lines {
		if bytes.Contains(line, []byte("gonew")) {
			continue // a gonew command names the template itself, not this copy
		}
		line = bytes.ReplaceAll(line, r.oldPath, r.newPath)
		for _, w := range r.words {
			// Twice: adjacent matches share the separator between them.
			line = w.re.ReplaceAll(w.re.ReplaceAll(line, w.repl), w.repl)
		}
		lines[i] = line
	}
	return bytes.Join(lines, nil)
}
