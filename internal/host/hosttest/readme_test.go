package hosttest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/host/hosttest"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestSectionMatchesAndMismatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	doc := "intro\n<!-- begin cfg -->\n| a |\n<!-- end cfg -->\nmore\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := &recorder{TB: t}
	hosttest.Section(ok, path, "cfg", "| a |\n")
	if ok.failed {
		t.Error("Section failed on a section that matches")
	}
	stale := &recorder{TB: t}
	hosttest.Section(stale, path, "cfg", "| b |\n")
	if !stale.failed {
		t.Error("Section passed on a stale section")
	}
	missing := &recorder{TB: t}
	hosttest.Section(missing, path, "other", "")
	if !missing.failed {
		t.Error("Section passed on a file without the section")
	}
}

func TestConfigTableListsHostAndProgramKeys(t *testing.T) {
	var addr string
	table := hosttest.ConfigTable(host.Program{Config: func(c *host.Config) {
		c.String(&addr, "http.addr", ":8080", "listen address")
	}})
	for _, want := range []string{"`host.shutdown_timeout` | `HOST__SHUTDOWN_TIMEOUT` | `30s`", "`http.addr` | `HTTP__ADDR` | `:8080` | listen address"} {
		if !strings.Contains(table, want) {
			t.Errorf("table does not contain %q:\n%s", want, table)
		}
	}
}
