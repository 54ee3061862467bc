// Package hosttest helps programs built on package host test what they
// document: it keeps a section of a Markdown file in step with the code.
package hosttest

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

var update = flag.Bool("update", false, "rewrite the documented sections from the code")

// ConfigTable declares the host's keys and then the program's on a fresh
// Config and returns its Markdown table: what the program really reads.
func ConfigTable(p host.Program) string {
	var hc host.HostConfig
	c := host.NewConfig()
	hc.Declare(c)
	if p.Config != nil {
		p.Config(c)
	}
	return c.Markdown()
}

// Section fails tb unless the text between the markers
// <!-- begin NAME --> and <!-- end NAME --> in the file at path equals want.
// With -update it rewrites that text instead.
func Section(tb testing.TB, path, name, want string) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
		return
	}
	begin, end := fmt.Sprintf("<!-- begin %s -->\n", name), fmt.Sprintf("<!-- end %s -->", name)
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		tb.Fatalf("%s has no section between %q and %q", path, begin, end)
		return
	}
	got := doc[i+len(begin) : j]
	if got == want {
		return
	}
	if *update {
		doc = doc[:i+len(begin)] + want + doc[j:]
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			tb.Fatalf("update %s: %v", path, err)
		}
		return
	}
	tb.Errorf("section %q of %s is out of date with the code; run go test -run %s -update\n got:\n%s\nwant:\n%s",
		name, path, tb.Name(), got, want)
}
