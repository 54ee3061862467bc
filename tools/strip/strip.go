package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// exampleDir is the example app's package tree, removed whole.
const exampleDir = "internal/example"

// skipDirs are never looked into: history, build output, local data, and
// this tool, whose tests hold markers on purpose.
var skipDirs = map[string]bool{".git": true, "bin": true, "data": true, "vendor": true, "node_modules": true, "testdata": true}

// stripper removes the example from the tree at dir and says what it did.
type stripper struct {
	dir string
	out io.Writer
}

func (s *stripper) tree() error {
	if err := s.remove(filepath.Join(s.dir, filepath.FromSlash(exampleDir))); err != nil {
		return err
	}
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != s.dir && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if isExampleFile(d.Name()) {
			return s.remove(p)
		}
		return s.file(p)
	})
}

// isExampleFile reports whether a file is example code or an example test.
func isExampleFile(name string) bool {
	return strings.HasSuffix(name, "_example.go") || strings.HasSuffix(name, "_example_test.go")
}

func (s *stripper) remove(p string) error {
	if _, err := os.Stat(p); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	fmt.Fprintf(s.out, "removed %s\n", s.rel(p))
	return nil
}

func (s *stripper) rel(p string) string {
	if r, err := filepath.Rel(s.dir, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

// file removes p's marked blocks, and for Go the imports they leave unused.
func (s *stripper) file(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if bytes.IndexByte(b, 0) >= 0 || !bytes.Contains(b, []byte(beginMarker)) {
		return nil
	}
	out, n, err := stripBlocks(b)
	if err != nil {
		return fmt.Errorf("%s: %w", s.rel(p), err)
	}
	if n == 0 {
		return nil
	}
	if strings.HasSuffix(p, ".go") {
		if out, err = dropUnusedImports(out); err != nil {
			return fmt.Errorf("%s: %w", s.rel(p), err)
		}
	}
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed %d example block(s) from %s\n", n, s.rel(p))
	return os.WriteFile(p, out, info.Mode().Perm())
}

const (
	beginMarker = "example:begin"
	endMarker   = "example:end"
)

// markerRE matches a line that is only a marker comment.
var markerRE = regexp.MustCompile(`^\s*(?://|#)\s*(example:(?:begin|end))\s*$`)

// stripBlocks removes every marked block from text and returns how many it
// removed. A block must end before the next begins, and every begin needs
// its end.
func stripBlocks(text []byte) ([]byte, int, error) {
	var out bytes.Buffer
	n, open := 0, 0 // open: the line number of an unclosed begin
	for i, line := range bytes.SplitAfter(text, []byte("\n")) {
		m := markerRE.FindSubmatch(line)
		switch {
		case m != nil && string(m[1]) == beginMarker:
			if open != 0 {
				return nil, 0, fmt.Errorf("line %d: %s inside the block opened on line %d", i+1, beginMarker, open)
			}
			open = i + 1
		case m != nil: // end
			if open == 0 {
				return nil, 0, fmt.Errorf("line %d: %s without %s", i+1, endMarker, beginMarker)
			}
			open = 0
			n++
		case open == 0:
			out.Write(line)
		}
	}
	if open != 0 {
		return nil, 0, fmt.Errorf("line %d: %s without %s", open, beginMarker, endMarker)
	}
	return out.Bytes(), n, nil
}

// dropUnusedImports removes the imports of a Go file that no identifier
// refers to any more, and gofmts it. A package's name is taken to be its
// import path's last element (without a /vN suffix, a "go-" prefix or a
// ".go" suffix) unless the import names it; blank and dot imports stay.
func dropUnusedImports(src []byte) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("parse after stripping: %w", err)
	}
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	var unused []*ast.ImportSpec
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := importName(p)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name != "_" && name != "." && !used[name] {
			unused = append(unused, imp)
		}
	}
	for _, imp := range unused {
		deleteImport(f, imp)
	}
	var out bytes.Buffer
	if err := format.Node(&out, fset, f); err != nil {
		return nil, err
	}
	return format.Source(out.Bytes())
}

// importName guesses the name a package is imported under.
func importName(p string) string {
	name := path.Base(p)
	if regexp.MustCompile(`^v[0-9]+$`).MatchString(name) && path.Dir(p) != "." {
		name = path.Base(path.Dir(p))
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "go-"), ".go")
	return strings.ReplaceAll(name, "-", "_")
}

// deleteImport removes imp from f's import declarations.
func deleteImport(f *ast.File, imp *ast.ImportSpec) {
	for i, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.IMPORT {
			continue
		}
		for j, spec := range gen.Specs {
			if spec == imp {
				gen.Specs = append(gen.Specs[:j], gen.Specs[j+1:]...)
				if len(gen.Specs) == 0 {
					f.Decls = append(f.Decls[:i], f.Decls[i+1:]...)
				}
				break
			}
		}
	}
	for i, spec := range f.Imports {
		if spec == imp {
			f.Imports = append(f.Imports[:i], f.Imports[i+1:]...)
			break
		}
	}
}

// refreshDocs regenerates the Markdown sections that tests keep in step
// with the code (hosttest.Section): the binaries' keys changed.
func (s *stripper) refreshDocs() error {
	var pkgs []string
	err := filepath.WalkDir(filepath.Join(s.dir, "cmd"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("hosttest.Section(")) {
			pkgs = append(pkgs, "./"+s.rel(filepath.Dir(p)))
		}
		return err
	})
	if err != nil || len(pkgs) == 0 {
		return err
	}
	args := append([]string{"test", "-count=1", "-run", "README"}, pkgs...)
	cmd := exec.Command("go", append(args, "-args", "-update")...)
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("refresh the README's config tables (go %s -args -update): %w\n%s", strings.Join(args, " "), err, out)
	}
	fmt.Fprintf(s.out, "refreshed the config tables checked by %s\n", strings.Join(pkgs, " "))
	return nil
}
