package docs_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readme returns the README and the code blocks of its first screen: the
// opening block (the two commands) and the quick start's curl block.
func readme(tb testing.TB) (string, []string) {
	tb.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		tb.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	var out []string
	for _, m := range blocks {
		out = append(out, m[1])
	}
	return string(b), out
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

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQuickStartRuns runs the README's quick start as a newcomer would:
// make run, every curl of the quick start against it, then Ctrl-C, after
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
	_, blocks := readme(t)
	var curls []string
	for _, b := range blocks {
		for _, c := range commands(b) {
			if strings.HasPrefix(c, "curl ") && strings.Contains(c, "localhost:80") && !strings.Contains(c, ":8081") {
				curls = append(curls, c)
			}
		}
	}
	if len(curls) < 3 {
		t.Fatalf("README quick start has %d curl commands, want the ping, job and readiness ones", len(curls))
	}

	// The store goes to a temporary directory, through the flag make run
	// passes on, so the test leaves the checkout as it found it.
	cmd := exec.Command("make", "--no-print-directory", "run",
		"WORKER_FLAGS=--nats.embedded.store_dir="+filepath.Join(t.TempDir(), "nats"))
	cmd.Dir = ".."
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C goes to the whole group
	var out syncBuffer
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
	for _, url := range []string{"http://127.0.0.1:8080/healthz/ready", "http://127.0.0.1:8090/healthz/ready"} {
		waitReady(t, url, exited, &out)
	}
	for _, c := range curls {
		got, err := exec.Command("bash", "-c", c+" --fail --max-time 10").CombinedOutput()
		if err != nil {
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

func waitReady(tb testing.TB, url string, exited <-chan error, out *syncBuffer) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			tb.Fatalf("make run exited (%v) before %s was ready:\n%s", err, url, out.String())
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("%s not ready within 3 minutes:\n%s", url, out.String())
}
