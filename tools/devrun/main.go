// Command devrun is `make run`: it runs the services side by side in the
// foreground, each line of their output prefixed with its name, and stops
// them together. It replaces a shell script that needed bash 5.1 and GNU
// make 3.82, so `make run` works with a stock macOS make and bash.
//
//	devrun [-wait ADDR] [-report FILE] COMMAND...
//
// Each COMMAND is one argument, a program and its flags split at spaces
// ("bin/dev/worker --queue.concurrency=8"). The first starts at once; with
// -wait, the others start once ADDR accepts TCP connections (the worker's
// embedded NATS, which pingapi publishes to).
//
// Stopping: Ctrl-C in a terminal sends SIGINT to the whole foreground
// process group, so every service gets it from the terminal; devrun only
// notes it (passing it on would be a second signal, which forces an exit).
// SIGTERM sent to devrun alone is passed on to every service. A service
// that exits on its own stops the others. devrun exits 0 when every service
// exited 0, else with the first failure's status.
//
// Writes to a closed output (`make run | tee run.log`, tee gone at Ctrl-C)
// are dropped: devrun keeps reading the services' output until they exit,
// so they never block or get SIGPIPE from it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	// A broken stdout must not kill devrun: with SIGPIPE notified, writes
	// to it return EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], sigs, os.Stdout, os.Stderr))
}

func run(args []string, sigs <-chan os.Signal, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	wait := fs.String("wait", "", "start the second and later commands once this host:port accepts TCP")
	report := fs.String("report", "", "write each service's exit status to this file at the end (for scripts and tests)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: devrun [-wait ADDR] [-report FILE] COMMAND...")
		return 2
	}
	width := 0
	for _, c := range fs.Args() {
		if len(strings.Fields(c)) == 0 {
			fmt.Fprintln(stderr, "devrun: empty command")
			return 2
		}
		width = max(width, len(filepath.Base(strings.Fields(c)[0])))
	}
	g := &group{
		out: &lockedWriter{w: stdout}, errOut: &lockedWriter{w: stderr},
		width: width, exited: make(chan *service, fs.NArg()),
	}
	pending := fs.Args()
	g.start(pending[0])
	pending = pending[1:]
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for g.running > 0 {
		if len(pending) > 0 && !g.stopping && (*wait == "" || dialable(*wait)) {
			for _, c := range pending {
				g.start(c)
			}
			pending = nil
		}
		select {
		case sig := <-sigs:
			g.signal(sig)
		case s := <-g.exited:
			g.exit(s)
		case <-tick.C:
		}
	}
	if *report != "" {
		var b strings.Builder
		for _, s := range g.services {
			fmt.Fprintf(&b, "%s %d\n", s.name, s.code)
		}
		if err := os.WriteFile(*report, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintf(g.errOut, "devrun: %v\n", err)
			g.fail(1)
		}
	}
	return g.status
}

// group is the services devrun runs, and how they ended.
type group struct {
	out, errOut io.Writer
	width       int
	exited      chan *service // each service once it exited and its output is read
	services    []*service
	running     int
	stopping    bool // a signal arrived or a service exited: start nothing more
	status      int  // the first failure's exit code
}

// service is one running command.
type service struct {
	name   string
	cmd    *exec.Cmd
	code   int  // exit code, once exited
	exited bool // set by the group's loop, which alone reads it
}

func (g *group) start(cmdline string) {
	argv := strings.Fields(cmdline)
	s := &service{name: filepath.Base(argv[0]), cmd: exec.Command(argv[0], argv[1:]...)}
	prefix := fmt.Sprintf("%-*s | ", g.width, s.name)
	stdout, err := s.cmd.StdoutPipe()
	var stderr io.ReadCloser
	if err == nil {
		stderr, err = s.cmd.StderrPipe()
	}
	if err == nil {
		err = s.cmd.Start()
	}
	if err != nil {
		fmt.Fprintf(g.errOut, "devrun: start %s: %v\n", s.name, err)
		g.fail(1)
		return
	}
	fmt.Fprintf(g.errOut, "devrun: started %s (pid %d)\n", s.name, s.cmd.Process.Pid)
	g.services = append(g.services, s)
	g.running++
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); copyLines(g.out, stdout, prefix) }()
	go func() { defer copying.Done(); copyLines(g.errOut, stderr, prefix) }()
	go func() {
		copying.Wait() // Wait closes the pipes: read them to the end first
		err := s.cmd.Wait()
		if err != nil {
			s.code = 1
			if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() > 0 {
				s.code = ee.ExitCode()
			}
		}
		g.exited <- s
	}()
}

// signal handles a signal to devrun: SIGINT came to the whole process group
// from the terminal, so the services have it already; anything else is
// passed on as SIGTERM.
func (g *group) signal(sig os.Signal) {
	g.stopping = true
	if sig != os.Interrupt {
		g.terminate()
	}
}

// exit records a service's end; the first one to end stops the others.
func (g *group) exit(s *service) {
	g.running--
	s.exited = true
	fmt.Fprintf(g.errOut, "devrun: %s exited with status %d\n", s.name, s.code)
	if s.code != 0 {
		g.fail(s.code)
	}
	if !g.stopping {
		g.stopping = true
		g.terminate()
	}
}

// fail records a failure; the first one is devrun's exit status.
func (g *group) fail(code int) {
	if g.status == 0 {
		g.status = code
	}
	if !g.stopping {
		g.stopping = true
		g.terminate()
	}
}

// terminate sends SIGTERM to every service still running.
func (g *group) terminate() {
	for _, s := range g.services {
		if !s.exited {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
}

// copyLines copies r to w line by line, each line prefixed. It reads r to
// the end whatever happens to w.
func copyLines(w io.Writer, r io.Reader, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		_, _ = io.WriteString(w, prefix+sc.Text()+"\n") // a closed output drops the line
	}
	_, _ = io.Copy(io.Discard, r) // after a line too long for the scanner
}

// dialable reports whether addr accepts a TCP connection now.
func dialable(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// lockedWriter serializes writes, so lines of two services never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
