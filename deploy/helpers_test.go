package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// root is the repository root: tests run in deploy/.
var root = func() string {
	dir, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return dir
}()

// binDir holds the binaries the tests build, shared by every test in the run.
var binDir string

func TestMain(m *testing.M) {
	// testcontainers-go reads these on its first call: no reaper container
	// (it is an image from a registry) and containers reached via localhost.
	// The Makefile exports the same for `make test`.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	dir, err := os.MkdirTemp("", "hostkit-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var builds = struct {
	sync.Mutex
	done map[string]string
}{done: map[string]string{}}

// binary builds ./cmd/app for goos once per test run, the way the Makefile
// does (static, trimmed), and returns its path.
func binary(tb testing.TB, app, goos string) string {
	tb.Helper()
	builds.Lock()
	defer builds.Unlock()
	key := goos + "/" + app
	if path, ok := builds.done[key]; ok {
		return path
	}
	path := filepath.Join(binDir, goos, app)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=test",
		"-o", path, "./cmd/"+app)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/%s for %s: %v\n%s", app, goos, err, out)
	}
	builds.done[key] = path
	return path
}

// hostBinary is binary for the machine running the tests.
func hostBinary(tb testing.TB, app string) string {
	tb.Helper()
	return binary(tb, app, runtime.GOOS)
}

// freeAddr returns 127.0.0.1:port with a port that was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a binary started by a test.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{}
}

// start runs path with exactly env (plus PATH) and stops it with SIGTERM
// when the test ends, killing it if it does not exit in time.
func start(tb testing.TB, path string, env []string) *process {
	tb.Helper()
	p := &process{output: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if tb.Failed() {
			tb.Logf("%s output:\n%s", filepath.Base(path), p.output.String())
		}
	})
	return p
}

// waitStatus polls url until it answers want, the process exits, or the
// deadline passes.
func (p *process) waitStatus(tb testing.TB, url string, want int, within time.Duration) {
	tb.Helper()
	err := pollStatus(tb.Context(), url, want, within, p.exited)
	if err != nil {
		tb.Fatalf("%v\n%s output:\n%s", err, filepath.Base(p.cmd.Path), p.output.String())
	}
}

// pollStatus GETs url every 20ms until it answers want. It gives up after
// within, or as soon as gone is closed (the server is not coming back).
func pollStatus(ctx context.Context, url string, want int, within time.Duration, gone <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	last := "no answer"
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: want %d within %s, last: %s", url, want, within, last)
		case <-gone:
			return fmt.Errorf("GET %s: process exited before answering %d (last: %s)", url, want, last)
		case <-tick.C:
		}
	}
}

// get returns the status and body of GET url.
func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// readFile reads a file given relative to the repository root.
func readFile(tb testing.TB, rel string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
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
	return strings.TrimSpace(s.b.String())
}
