package main

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/repotest"
	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
)

// The fixtures spell markers with \n inside one-line strings, so that no
// line of this file is a marker: strip, run on the repository, must leave
// them alone.
func TestStripBlocks(t *testing.T) {
	tests := []struct {
		name, in, want string
		blocks         int
		err            string
	}{
		{"none", "a\nb\n", "a\nb\n", 0, ""},
		{"go block", "a\n\t// example:begin\n\tx()\n\t// example:end\nb\n", "a\nb\n", 1, ""},
		{"hash blocks", "# example:begin\nx\n# example:end\ny\n#example:begin\nz\n#example:end\n", "y\n", 2, ""},
		{"marker inside a string stays", "s := \"// example:begin\"\n", "s := \"// example:begin\"\n", 0, ""},
		{"unclosed", "// example:begin\nx\n", "", 0, "line 1: example:begin without example:end"},
		{"end alone", "x\n// example:end\n", "", 0, "line 2: example:end without example:begin"},
		{"nested", "// example:begin\n// example:begin\n", "", 0, "line 2: example:begin inside the block opened on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := stripBlocks([]byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("stripBlocks error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want || n != tt.blocks {
				t.Fatalf("stripBlocks = %q, %d, %v; want %q, %d", got, n, err, tt.want, tt.blocks)
			}
		})
	}
}

func TestDropUnusedImports(t *testing.T) {
	src := "package main\n\nimport (\n\t\"fmt\"\n\t\"time\"\n\n\tchi \"github.com/go-chi/chi/v5\"\n\t\"github.com/nats-io/nats.go\"\n\t\"example.com/m/internal/example/ping\"\n\t_ \"embed\"\n)\n\nfunc main() { fmt.Println(nats.DefaultURL) }\n"
	want := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/nats-io/nats.go\"\n\n\t_ \"embed\"\n)\n\nfunc main() { fmt.Println(nats.DefaultURL) }\n"
	got, err := dropUnusedImports([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("dropUnusedImports =\n%s\nwant\n%s", got, want)
	}
}

// TestStripLeavesAWorkingKit strips a copy of the repository and checks what
// the README promises of the result: no example left, and a kit that builds,
// vets, passes its fast tier, and whose binaries start and report ready.
func TestStripLeavesAWorkingKit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a stripped copy of the tree and runs its binaries")
	}
	dir := repotest.Copy(t, repotest.Root(t, "../.."))
	out := repotest.Go(t, dir, "run", "./tools/strip")
	if !strings.Contains(out, "removed internal/example") {
		t.Errorf("strip did not report removing internal/example:\n%s", out)
	}
	checkNoExampleLeft(t, dir)
	if again := repotest.Go(t, dir, "run", "./tools/strip"); strings.Contains(again, "removed") {
		t.Errorf("a second strip still removed something:\n%s", again)
	}
	repotest.Go(t, dir, "build", "./...")
	repotest.Go(t, dir, "vet", "./...")
	repotest.Go(t, dir, "test", "-short", "./...")

	bin := t.TempDir()
	repotest.Go(t, dir, "build", "-o", bin+string(filepath.Separator), "./cmd/...")
	apps, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range apps {
		t.Run(app.Name(), func(t *testing.T) {
			startReadyStop(t, filepath.Join(bin, app.Name()))
		})
	}
}

// checkNoExampleLeft fails for any example file, marker or import of the
// example's packages left under dir.
func checkNoExampleLeft(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(dir, exampleDir)); !os.IsNotExist(err) {
		tb.Errorf("%s still exists (%v)", exampleDir, err)
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if isExampleFile(d.Name()) {
			tb.Errorf("%s is still there", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if markerRE.Match(line) {
				tb.Errorf("%s still has the marker %q", p, line)
			}
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, b, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if strings.Contains(imp.Path.Value, "/"+exampleDir+"/") {
				tb.Errorf("%s still imports %s", p, imp.Path.Value)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// startReadyStop runs a stripped binary on free loopback ports (an embedded
// NATS server where the binary has one, storing in a temporary directory),
// waits until /healthz/ready answers 200, then stops it with SIGTERM and
// expects exit 0.
func startReadyStop(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	var args []string
	if bytes.Contains(help, []byte("nats.embedded.addr")) {
		args = append(args, "--nats.embedded.addr=127.0.0.1:0", "--nats.embedded.store_dir="+t.TempDir())
	} else if bytes.Contains(help, []byte("nats.url")) {
		// No server there: a client of NATS must be ready without it.
		args = append(args, "--nats.url=nats://"+runtest.FreeAddr(t))
	}
	inst, err := rollout.Start(ctx, bin, args...)
	if err != nil {
		t.Fatalf("start %s: %v", filepath.Base(bin), err)
	}
	defer inst.Kill()
	if err := inst.WaitReady(ctx); err != nil {
		t.Fatalf("%s not ready: %v\n%s", filepath.Base(bin), err, inst.Log())
	}
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := inst.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("%s after SIGTERM: exit %d (%v), want 0\n%s", filepath.Base(bin), code, err, inst.Log())
	}
}
