//go:build unix

package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is one program the suite runs, possibly several times in a row
// (a restart is a new run with the same name, arguments and environment).
// Each run writes its output to a file of its own, name.N.log, so that a run
// killed mid-line cannot corrupt the next one's first line.
type process struct {
	name string
	path string
	args []string
	env  []string
	dir  string // where the log files go

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
	runs int
	// started is when the current run began.
	started time.Time
	// ending is set when the suite sends a signal that ends the run, so that
	// its exit is expected.
	ending bool
	// unexpected describes every run that ended without the suite asking.
	unexpected []string
}

func newProcess(t testing.TB, name, path, dir string, env []string, args ...string) *process {
	p := &process{name: name, path: path, args: args, env: env, dir: dir}
	t.Cleanup(p.kill)
	return p
}

// start begins a new run; the previous one must have exited.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("start %s: still running", p.name)
		}
	}
	p.runs++
	f, err := os.OpenFile(filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, p.runs)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	noOrphans(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.ending, p.started = cmd, done, false, time.Now()
	go p.reap(cmd, f, done)
	return nil
}

func (p *process) reap(cmd *exec.Cmd, f *os.File, done chan struct{}) {
	err := cmd.Wait()
	f.Close()
	p.mu.Lock()
	if !p.ending {
		p.unexpected = append(p.unexpected, fmt.Sprintf("%s run %d (pid %d) exited by itself: %v; last line: %s",
			p.name, p.runs, cmd.Process.Pid, err, lastLine(f.Name())))
	}
	p.mu.Unlock()
	close(done)
}

// lastLine returns the last line of a log file, cut short, for reports.
func lastLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	last := lines[len(lines)-1]
	if len(last) > 300 {
		last = last[:300] + "..."
	}
	return last
}

// signal sends sig to the current run. SIGTERM and SIGKILL mark its exit
// as expected.
func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("signal %s: never started", p.name)
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		p.ending = true
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d) with %v: %w", p.name, p.cmd.Process.Pid, sig, err)
	}
	return nil
}

// running reports whether the current run has not exited.
func (p *process) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// sinceStart is how long ago the current run began.
func (p *process) sinceStart() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Since(p.started)
}

// waitExit waits for the current run to exit.
func (p *process) waitExit(timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s", p.name, timeout)
	}
}

// stop asks the current run to end with SIGTERM and waits for it.
func (p *process) stop(timeout time.Duration) error {
	if !p.running() {
		return nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	return p.waitExit(timeout)
}

// kill ends the current run at once, paused or not; it is the cleanup of
// every process, so that nothing outlives the test.
func (p *process) kill() {
	if !p.running() {
		return
	}
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(syscall.SIGKILL)
	_ = p.waitExit(10 * time.Second)
}

// unexpectedExits returns the runs that ended without the suite asking.
func (p *process) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// logFiles lists the log files of every run so far.
func (p *process) logFiles() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	files := make([]string, p.runs)
	for i := range files {
		files[i] = filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, i+1))
	}
	return files
}

// httpOK reports whether GET url answers 200 within a second.
func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// poll calls cond every interval until it returns true, and fails with what
// when timeout passes first. It is the suite's only way of waiting for a
// state.
func poll(timeout, interval time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
