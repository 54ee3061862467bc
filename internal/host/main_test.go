package host_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// childEnv makes the test binary act as a hostkit program (see TestMain), so
// the tests below can send real signals to a real process.
const childEnv = "HOSTKIT_HOST_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(host.Main(context.Background(), nil, os.Environ, os.Stderr, childProgram(mode)))
	}
	os.Exit(m.Run())
}

// childProgram prints "ready" once started and "stopping" when its Stop
// begins; in mode "stuck" its Stop never returns.
func childProgram(mode string) host.Program {
	return host.Program{
		Name: "child",
		Build: func(h *host.Host) error {
			h.Lifetime().OnStarted(func() { fmt.Println("ready") })
			h.Add("svc", &svc{name: "svc", j: &journal{}, stop: func(ctx context.Context) error {
				fmt.Println("stopping")
				if mode == "stuck" {
					select {}
				}
				return nil
			}})
			return nil
		},
	}
}

// startChild runs the test binary as a child program and waits until it is ready.
func startChild(tb testing.TB, mode string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+mode, "LOG__FORMAT=json")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(out)
	waitLine(tb, lines, "ready")
	return cmd, lines
}

func waitLine(tb testing.TB, lines *bufio.Scanner, want string) {
	tb.Helper()
	found := make(chan bool, 1)
	go func() {
		for lines.Scan() {
			if lines.Text() == want {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			tb.Fatalf("child ended before printing %q", want)
		}
	case <-time.After(10 * time.Second):
		tb.Fatalf("child did not print %q within 10s", want)
	}
}

func exitCode(tb testing.TB, cmd *exec.Cmd) int {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			tb.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		tb.Fatal("child did not exit within 10s")
		return -1
	}
}

func TestRealSignalStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	// SIGHUP is what a closed terminal sends; it used to kill at once (129).
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, _ := startChild(t, "clean")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if got := exitCode(t, cmd); got != 0 {
				t.Fatalf("exit code after %v = %d, want 0", sig, got)
			}
		})
	}
}

// TestRealBrokenLogPipeDoesNotKill closes the pipe the child logs to, as
// `pingapi 2>&1 | head -c 100` does, then stops it: the next log line used to
// raise SIGPIPE and kill the process (141) before it drained.
func TestRealBrokenLogPipeDoesNotKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=clean", "LOG__FORMAT=json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	waitLine(t, lines, "ready")
	logs := bufio.NewScanner(stderr)
	if !logs.Scan() { // the child has logged: the pipe works until now
		t.Fatal("child wrote no log line")
	}
	if err := stderr.Close(); err != nil { // the reader goes away
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "stopping") // it drains: its Stop runs
	if got := exitCode(t, cmd); got != 0 {
		t.Fatalf("exit code with a broken log pipe = %d, want 0 (-1: killed by a signal)", got)
	}
}

func TestRealSecondSignalForcesExit(t *testing.T) {
	cmd, lines := startChild(t, "stuck", "HOST__SHUTDOWN_TIMEOUT=1h")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "stopping")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, want := exitCode(t, cmd), 128+int(syscall.SIGTERM); got != want {
		t.Fatalf("exit code = %d, want %d", got, want)
	}
}

func TestRealStuckStopExitsOneAfterShutdownTimeout(t *testing.T) {
	cmd, _ := startChild(t, "stuck", "HOST__SHUTDOWN_TIMEOUT=100ms")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, cmd); got != 1 {
		t.Fatalf("exit code = %d, want 1", got)
	}
}

func TestMainExitCodes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		args     []string
		env      []string
		build    func(*host.Host) error
		wantCode int
		wantOut  string
	}{
		{"invalid config names the key", nil, []string{"HOST__SHUTDOWN_TIMEOUT=abc"}, nil, 2, `host.shutdown_timeout = "abc"`},
		{"unknown flag", []string{"--bogus"}, nil, nil, 2, "bogus"},
		{"zero shutdown timeout is rejected, not replaced", nil, []string{"HOST__SHUTDOWN_TIMEOUT=0s"}, nil, 2, `host.shutdown_timeout = "0s"`},
		{"grace period below delay + timeout + margin", nil, []string{"HOST__TERMINATION_GRACE_PERIOD=40s", "HOST__SHUTDOWN_DELAY=10s"}, nil, 2,
			"host.shutdown_delay 10s + host.shutdown_timeout 30s + margin 5s = 45s exceeds host.termination_grace_period 40s"},
		{"grace period that fits", nil, []string{"HOST__TERMINATION_GRACE_PERIOD=45s", "HOST__SHUTDOWN_DELAY=10s"}, func(h *host.Host) error {
			h.Add("bad", &svc{name: "bad", j: &journal{}, startErr: errors.New("reached the start")})
			return nil
		}, 1, "reached the start"},
		{"help", []string{"--help"}, nil, nil, 0, "HOST__SHUTDOWN_DELAY"},
		{"help ends with the program's usage", []string{"--help"}, nil, nil, 0, "Subcommands: none\n"},
		{"version", []string{"--version"}, nil, nil, 0, "test v1.2.3"},
		{"build error", nil, nil, func(*host.Host) error { return boom }, 1, "boom"},
		{"build config error", nil, nil, func(*host.Host) error {
			return &host.ConfigError{Key: "http.addr", Value: "x", Err: boom}
		}, 2, "http.addr"},
		{"start failure", nil, nil, func(h *host.Host) error {
			h.Add("bad", &svc{name: "bad", j: &journal{}, startErr: errors.New("address already in use")})
			return nil
		}, 1, "address already in use"},
		{"background failure", nil, nil, func(h *host.Host) error {
			h.AddBackground("bg", func(context.Context) error { return boom })
			return nil
		}, 1, "background service bg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			// A configuration wrongly accepted runs until this ends.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			code := host.Main(ctx, tt.args, func() []string { return tt.env }, &out,
				host.Program{Name: "test", Version: "v1.2.3", Build: tt.build, Usage: "Subcommands: none\n", Signals: &host.ManualSignals{}})
			if code != tt.wantCode {
				t.Errorf("Main = %d, want %d; output:\n%s", code, tt.wantCode, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output does not contain %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

// TestMainLogsEffectiveConfigAtInfoWithSecretsMasked declares keys that
// hold secrets and checks the startup line shows the rest but never them.
func TestMainLogsEffectiveConfigAtInfoWithSecretsMasked(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	var url, urls, pass, token, apiKey, secret, plain string
	code := host.Main(ctx, []string{"--log.format=json"}, func() []string { return nil }, &out,
		host.Program{Name: "test", Signals: &host.ManualSignals{},
			Config: func(c *host.Config) {
				c.String(&url, "nats.url", "nats://jobs:hunter2@nats:4222", "")
				c.String(&urls, "nats.urls", "nats://a:pw1@n1:4222,nats://b:pw2@n2:4222", "")
				c.String(&pass, "db.password", "swordfish", "")
				c.String(&token, "api.token", "tok-123", "")
				c.String(&apiKey, "api.signing_key", "k-456", "")
				c.String(&secret, "oauth.client_secret", "s-789", "")
				c.String(&plain, "api.name", "visible-value", "")
			},
			Build: func(h *host.Host) error {
				h.Lifetime().OnStarted(cancel)
				return nil
			}})
	if code != 0 {
		t.Fatalf("Main = %d, want 0; output:\n%s", code, out.String())
	}
	var line string
	for l := range strings.Lines(out.String()) {
		if strings.Contains(l, `"msg":"effective configuration"`) {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, `"level":"INFO"`) {
		t.Fatalf("no effective configuration line at INFO:\n%s", out.String())
	}
	for _, secret := range []string{"hunter2", "pw1", "pw2", "swordfish", "tok-123", "k-456", "s-789"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("log shows the secret %q:\n%s", secret, line)
		}
	}
	for _, want := range []string{`"nats.url":"nats://jobs:xxxxx@nats:4222"`, `"nats.urls":"nats://a:xxxxx@n1:4222,nats://b:xxxxx@n2:4222"`,
		`"db.password":"xxxxx"`, `"api.name":"visible-value"`, `"host.shutdown_timeout":"30s"`} {
		if !strings.Contains(line, want) {
			t.Errorf("effective configuration lacks %s:\n%s", want, line)
		}
	}
}

func TestMainLogsEffectiveConfigAndIgnoredVariables(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	env := func() []string { return []string{"HSOT__SHUTDOWN_TIMEOUT=5s"} } // a misspelt section
	code := host.Main(ctx, []string{"--log.level=debug", "--log.format=json"}, env, &out,
		host.Program{Name: "test", Signals: &host.ManualSignals{}, Build: func(h *host.Host) error {
			h.Lifetime().OnStarted(cancel)
			return nil
		}})
	if code != 0 {
		t.Fatalf("Main = %d, want 0; output:\n%s", code, out.String())
	}
	for _, want := range []string{`"msg":"effective configuration"`, `"host.shutdown_timeout":"30s"`, `"level":"DEBUG"`,
		`"variables":["HSOT__SHUTDOWN_TIMEOUT"]`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log does not contain %s:\n%s", want, out.String())
		}
	}
}

// TestSyncLogWritesEachLineThrough checks that a program with SyncLog has
// each line in its sink when the logging call returns: the worker's job
// lines precede the acknowledgements. (Without SyncLog, the line would wait
// for the flusher's linger.)
func TestSyncLogWritesEachLineThrough(t *testing.T) {
	var out lockedBuilder
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var inSink bool
	code := host.Main(ctx, []string{"--log.format=json"}, func() []string { return nil }, &out,
		host.Program{Name: "test", Signals: &host.ManualSignals{}, SyncLog: true, Build: func(h *host.Host) error {
			h.Lifetime().OnStarted(func() {
				h.Logger().Info("a record")
				inSink = strings.Contains(out.String(), `"msg":"a record"`)
				cancel()
			})
			return nil
		}})
	if code != 0 {
		t.Fatalf("Main = %d, want 0; output:\n%s", code, out.String())
	}
	if !inSink {
		t.Errorf("line not in the sink when Info returned:\n%s", out.String())
	}
}
