package docs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// guide is the guide these tests follow, relative to this directory.
const guide = "extending.md"

// repoRoot is the repository root: tests run in docs/.
var repoRoot = func() string {
	dir, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return dir
}()

// Kinds of block, named by the HTML comment on the line before the fence.
const (
	kindStep    = "step"    // a shell step: the follow test runs it
	kindFile    = "file"    // a new Go file at path
	kindEdit    = "edit"    // its first line in path is the anchor; the block replaces it (Go or YAML)
	kindExcerpt = "excerpt" // appears byte for byte in path
)

// markerRE matches a block's marker comment.
var markerRE = regexp.MustCompile(`^<!-- (step|file|edit|excerpt)(?:: (\S+))? -->$`)

// block is one fenced code block of the guide.
type block struct {
	line int    // of the opening fence, from 1
	lang string // after the opening ```
	kind string // from the marker comment; empty without one
	path string // the marker's path, for file, edit and excerpt
	text string // the content, every line ending in "\n"
}

func (b block) String() string {
	s := fmt.Sprintf("%s:%d (```%s", guide, b.line, b.lang)
	if b.kind != "" {
		s += ", " + b.kind
	}
	if b.path != "" {
		s += " " + b.path
	}
	return s + ")"
}

// parseGuide splits the guide into its fenced blocks. A marker is the last
// non-blank line before an opening fence; a comment there that is not a
// valid marker fails the test rather than leaving a block unchecked.
func parseGuide(tb testing.TB) []block {
	tb.Helper()
	data, err := os.ReadFile(guide)
	if err != nil {
		tb.Fatal(err)
	}
	var (
		blocks   []block
		cur      *block
		previous string // last non-blank line outside a block
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.HasPrefix(line, "```"):
			cur = &block{line: n, lang: strings.TrimPrefix(line, "```")}
			if m := markerRE.FindStringSubmatch(previous); m != nil {
				cur.kind, cur.path = m[1], m[2]
			} else if strings.HasPrefix(previous, "<!--") {
				tb.Fatalf("%s:%d: %q is not a block marker (want %s)", guide, n-1, previous, markerRE)
			}
		case strings.TrimSpace(line) != "":
			previous = line
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if cur != nil {
		tb.Fatalf("%s: block unclosed", cur)
	}
	return blocks
}

// Every Go block is checked by something, and every marker is well formed:
// a Go block without a marker would be code nobody compiles.
func TestEveryGoBlockIsChecked(t *testing.T) {
	blocks := parseGuide(t)
	kinds := map[string]int{}
	for _, b := range blocks {
		kinds[b.kind]++
		switch {
		case b.lang == "go" && !slices.Contains([]string{kindFile, kindEdit, kindExcerpt}, b.kind):
			t.Errorf("%s: a Go block needs a file, edit or excerpt marker", b)
		case b.kind == kindStep && (b.lang != "sh" || b.path != ""):
			t.Errorf("%s: a step is a ```sh block without a path", b)
		case b.kind == kindEdit && b.lang == "yaml" && b.path != "":
			// A manifest edit: the follow test applies it and renders the
			// result, which decodes it.
		case b.kind != "" && b.kind != kindStep && (b.lang != "go" || b.path == ""):
			t.Errorf("%s: a %s marker needs a path and a ```go block (or ```yaml for an edit)", b, b.kind)
		case b.path != "" && (filepath.IsAbs(b.path) || strings.Contains(b.path, "..")):
			t.Errorf("%s: path must be relative to the repository root", b)
		}
	}
	// The guide's promise: a job type, a background service and a binary.
	for _, kind := range []string{kindStep, kindFile, kindEdit, kindExcerpt} {
		if kinds[kind] == 0 {
			t.Errorf("%s has no %s block; did the markers get lost?", guide, kind)
		}
	}
}

// An excerpt is shown to explain the file a step copies: it must be that
// file's code, byte for byte.
func TestExcerptsMatchTheirFiles(t *testing.T) {
	for _, b := range parseGuide(t) {
		if b.kind != kindExcerpt {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repoRoot, b.path))
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		if strings.Contains(string(data), b.text) {
			continue
		}
		for line := range strings.Lines(b.text) {
			if !strings.Contains(string(data), line) {
				t.Errorf("%s is not in %s; first missing line: %q", b, b.path, line)
				break
			}
		}
		t.Errorf("%s is not in %s as one piece", b, b.path)
	}
}

// New files are what gofmt would write, so that a reader copies clean code.
func TestFileBlocksAreGofmtClean(t *testing.T) {
	for _, b := range parseGuide(t) {
		if b.kind != kindFile {
			continue
		}
		got, err := format.Source([]byte(b.text))
		if err != nil {
			t.Errorf("%s: %v", b, err)
		} else if string(got) != b.text {
			t.Errorf("%s is not gofmt-clean; gofmt writes:\n%s", b, got)
		}
	}
}

// The commands the guide tells a reader to type name make targets and
// binaries that exist (or that the guide creates).
func TestCommandsNameWhatExists(t *testing.T) {
	targets := makeTargets(t)
	created := map[string]bool{}
	blocks := parseGuide(t)
	for _, b := range blocks {
		if b.kind == kindFile && strings.HasPrefix(b.path, "cmd/") {
			created[filepath.Dir(b.path)] = true
		}
	}
	makeRE := regexp.MustCompile(`^make((?: [^ #]+)+)`)
	goRunRE := regexp.MustCompile(`^go run \./(cmd/[^ /]+)`)
	for _, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		for line := range strings.Lines(b.text) {
			line = strings.TrimSpace(line)
			if m := makeRE.FindStringSubmatch(line); m != nil {
				for _, word := range strings.Fields(m[1]) {
					if !strings.Contains(word, "=") && !targets[word] {
						t.Errorf("%s: `%s`: the Makefile has no target %s", b, line, word)
					}
				}
			}
			if m := goRunRE.FindStringSubmatch(line); m != nil && !created[m[1]] {
				if _, err := os.Stat(filepath.Join(repoRoot, m[1])); err != nil {
					t.Errorf("%s: `%s`: %s neither exists nor is created by the guide", b, line, m[1])
				}
			}
		}
	}
}

// makeTargets returns the Makefile's explicit targets.
func makeTargets(tb testing.TB) map[string]bool {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		tb.Fatal(err)
	}
	targets := map[string]bool{}
	re := regexp.MustCompile(`(?m)^([a-zA-Z0-9_.-]+):`)
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		targets[m[1]] = true
	}
	return targets
}
