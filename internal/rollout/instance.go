package rollout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Build compiles the Go package pkg (an import path such as
// github.com/hostkit/hostkit/cmd/pingapi) into dir and returns the binary's
// path. The rollout simulation and the process tests build pingapi this way
// so they run the real binary.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	name := path.Base(pkg)
	if name == "." || name == ".." || name == "/" {
		return "", fmt.Errorf("go build %s: want an import path that ends in the command's name", pkg)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// RunWithBinary is a TestMain body for tests that run a real binary: it
// builds pkg into a temporary directory, sets *bin to its path, runs the
// tests (m.Run) and removes the directory. It returns the exit code for
// os.Exit.
func RunWithBinary(run func() int, pkg string, bin *string) int {
	// The -short tier skips the process tests, so it need not wait for the
	// build. (The flag, not testing.Short: no testing in a tool's binary.)
	flag.Parse()
	if f := flag.Lookup("test.short"); f != nil && f.Value.String() == "true" {
		return run()
	}
	dir, err := os.MkdirTemp("", path.Base(pkg)+"-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if *bin, err = Build(ctx, dir, pkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return run()
}

// Instance is a hostkit binary running as a child process, listening on a
// loopback port of its own choosing.
type Instance struct {
	URL string // http://127.0.0.1:port

	cmd  *exec.Cmd
	log  logBuffer
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned
}

// listeningMsg is the record host.HTTPServer logs once bound; Start reads the
// address from it, so instances bind port 0 and never race for a free port.
const listeningMsg = "http server listening"

// Start runs bin with args plus --http.addr=127.0.0.1:0 and JSON logs, and
// returns once it listens (not yet once it is ready: see WaitReady).
func Start(ctx context.Context, bin string, args ...string) (*Instance, error) {
	args = append([]string{"--http.addr=127.0.0.1:0", "--log.format=json"}, args...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	inst := &Instance{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go inst.readLog(stderr, addr)
	select {
	case a := <-addr:
		inst.URL = "http://" + a
		return inst, nil
	case <-inst.done:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", bin, inst.err, inst.Log())
	case <-ctx.Done():
		inst.Kill()
		return nil, fmt.Errorf("%s did not listen: %w\n%s", bin, ctx.Err(), inst.Log())
	}
}

// readLog keeps the child's log and reports the address it listens on. It
// reaps the process once the log ends, as exec requires pipes to be drained
// before Wait.
func (i *Instance) readLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i.log.add(line)
		var rec struct{ Msg, Addr string }
		if strings.Contains(line, listeningMsg) && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == listeningMsg {
			select {
			case addr <- rec.Addr:
			default:
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
	i.err = i.cmd.Wait()
	close(i.done)
}

// PID is the child's process id.
func (i *Instance) PID() int { return i.cmd.Process.Pid }

// WaitReady polls /healthz/ready until it answers 200, the process exits, or
// ctx ends.
func (i *Instance) WaitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for {
		if i.Ready(client) {
			return nil
		}
		select {
		case <-i.done:
			return fmt.Errorf("exited before ready: %v\n%s", i.err, i.Log())
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w\n%s", ctx.Err(), i.Log())
		case <-time.After(time.Millisecond):
		}
	}
}

// Ready reports whether /healthz/ready answers 200 now.
func (i *Instance) Ready(client *http.Client) bool {
	resp, err := client.Get(i.URL + "/healthz/ready")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Signal sends sig to the process.
func (i *Instance) Signal(sig os.Signal) error { return i.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit code.
func (i *Instance) Wait(ctx context.Context) (int, error) {
	select {
	case <-i.done:
	case <-ctx.Done():
		return -1, fmt.Errorf("pid %d still running: %w", i.PID(), ctx.Err())
	}
	if _, ok := errors.AsType[*exec.ExitError](i.err); i.err != nil && !ok {
		return -1, i.err
	}
	return i.cmd.ProcessState.ExitCode(), nil
}

// Exited is closed once the process has exited.
func (i *Instance) Exited() <-chan struct{} { return i.done }

// Kill kills the process if it still runs and waits for it.
func (i *Instance) Kill() {
	select {
	case <-i.done:
		return
	default:
	}
	_ = i.cmd.Process.Kill()
	<-i.done
}

// Log returns what the process has logged so far.
func (i *Instance) Log() string { return i.log.String() }

// logBuffer is a child's log, written by one goroutine and read by tests.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
