package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/runtest"
)

// readme returns the README and its sh code blocks.
func readme(tb testing.TB) (string, []string) {
	tb.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		tb.Fatal(err)
	}
	return readmeBlocks(string(b))
}

func readmeBlocks(doc string) (string, []string) {
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(doc, -1) {
		out = append(out, m[1])
	}
	return doc, out
}

// commands returns the lines of block that are commands, without comments.
func commands(block string) []string {
	var out []string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "  #")
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// TestREADMEOpensWithRunAndTest keeps the README's promise to a newcomer:
// its first lines are the command that runs the services and the one that
// runs the tests, and the test command is what CI runs.
func TestREADMEOpensWithRunAndTest(t *testing.T) {
	_, blocks := readme(t)
	if len(blocks) == 0 {
		t.Fatal("README has no sh block")
	}
	if got, want := commands(blocks[0]), []string{"make run", "make test"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("README's first commands = %q, want %q", got, want)
	}
	ci, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^make test$`).Match(ci) {
		t.Fatal(".ci/run does not run the README's test command, make test")
	}
}

// TestQuickStartRuns runs the README's quick start as a newcomer would:
// make run, every command of the quick start against it, then Ctrl-C, after
// which both services must have stopped cleanly.
func TestQuickStartRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services")
	}
	for _, tool := range []string{"make", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	doc, _ := readme(t)
	quick := strings.Index(doc, "## Quick start")
	if quick < 0 {
		t.Fatal("README has no Quick start section")
	}
	_, blocks := readmeBlocks(doc[quick:])
	if len(blocks) == 0 {
		t.Fatal("README's Quick start has no sh block")
	}
	steps := commands(blocks[0])
	if len(steps) < 5 {
		t.Fatalf("README quick start has %d commands, want the curls, publish and help", len(steps))
	}

	// The README's ports (8080, 8090, 4222) may be taken on this machine:
	// the services run on free loopback ports, through make run's
	// variables, and the commands are pointed at them.
	pingapi, worker, natsAddr := runtest.FreeAddr(t), runtest.FreeAddr(t), runtest.FreeAddr(t)
	ports := strings.NewReplacer("localhost:8080", pingapi, "localhost:8090", worker)
	cmd := exec.Command("make", "--no-print-directory", "run",
		"NATS_ADDR="+natsAddr,
		"WORKER_FLAGS=--http.addr="+worker+" --nats.embedded.store_dir="+filepath.Join(t.TempDir(), "nats"),
		"PINGAPI_FLAGS=--http.addr="+pingapi)
	cmd.Dir = repoRoot
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C goes to the whole group
	var out runtest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})

	// make run builds both binaries first: allow for a cold build cache.
	for _, addr := range []string{pingapi, worker} {
		runtest.WaitOK(t, "http://"+addr+"/healthz/ready", 3*time.Minute, exited, out.String)
	}
	for _, c := range steps {
		line := ports.Replace(c)
		if strings.HasPrefix(c, "curl ") {
			line += " --fail --max-time 10"
		}
		step := exec.Command("bash", "-c", line)
		step.Dir = ".."
		step.Env = append(os.Environ(), "NATS__URL=nats://"+natsAddr) // worker publish's server
		if got, err := step.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", c, err, got)
		}
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not stop within 30s of Ctrl-C:\n%s", out.String())
	}
	for _, app := range []string{"pingapi", "worker"} {
		if !regexp.MustCompile(`"msg":"application stopped","app":"` + app + `"`).MatchString(out.String()) {
			t.Errorf("%s did not stop cleanly after Ctrl-C:\n%s", app, out.String())
		}
	}
	if strings.Contains(out.String(), `"level":"ERROR"`) {
		t.Errorf("make run logged errors:\n%s", out.String())
	}
}
