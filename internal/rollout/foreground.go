package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// foreground is a proxy process (nginx, HAProxy) run in the foreground as a
// child, so that the test owns it and its output.
type foreground struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{} // closed once it exited
	err  error         // what Wait returned
}

func startForeground(bin string, args ...string) (*foreground, error) {
	f := &foreground{done: make(chan struct{})}
	f.cmd = exec.Command(bin, args...)
	f.cmd.Stdout, f.cmd.Stderr = &f.out, &f.out
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	return f, nil
}

func (f *foreground) signal(sig os.Signal) error {
	select {
	case <-f.done:
		return fmt.Errorf("pid %d exited: %v", f.cmd.Process.Pid, f.err)
	default:
		return f.cmd.Process.Signal(sig)
	}
}

// stop sends sig and waits up to ten seconds for the exit, then kills.
func (f *foreground) stop(sig os.Signal) {
	_ = f.signal(sig)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.done
	}
}

func (f *foreground) output() string { return f.out.String() }

// lockedBuffer is a child's output, written by exec's copier and read by tests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ErrNotInstalled is wrapped into the error for a proxy binary not found.
var ErrNotInstalled = errors.New("not installed")

// findBinary returns bin if set, else name from PATH or /usr/sbin (where
// Debian puts nginx and haproxy, often not on a user's PATH).
func findBinary(bin, name string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w (apt-get install %s)", name, ErrNotInstalled, name)
}

// LookProxy reports whether the proxy binary name (nginx, haproxy) is found
// where StartNginx and StartHAProxy look.
func LookProxy(name string) error {
	_, err := findBinary("", name)
	return err
}

// freePort asks the kernel for a free loopback port for a proxy that cannot
// bind port 0 and say which it got. Another process may take it before the
// proxy binds it; the proxy then fails to start, with its log saying why.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
