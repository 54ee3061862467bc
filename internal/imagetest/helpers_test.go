package imagetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// root is the repository root: tests run in internal/imagetest.
var root = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
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
	dir, err := os.MkdirTemp("", "hostkit-imagetest-")
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
