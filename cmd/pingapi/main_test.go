package main_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
)

// pingapi is the binary under test, built once by TestMain.
var pingapi string

func TestMain(m *testing.M) {
	os.Exit(rollout.RunWithBinary(m.Run, "github.com/hostkit/hostkit/cmd/pingapi", &pingapi))
}

// start runs pingapi with args on a free loopback port, waits until it is
// ready, and kills it when the test ends if it still runs.
func start(ctx context.Context, tb testing.TB, args ...string) *rollout.Instance {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the pingapi binary; not in the -short tier")
	}
	inst, err := rollout.Start(ctx, pingapi, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		inst.Kill()
		if tb.Failed() {
			tb.Logf("pingapi log:\n%s", inst.Log())
		}
	})
	if err := inst.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
	return inst
}

type result struct {
	status int
	body   string
	close  bool // the response carried Connection: close
	err    error
}

// get sends a GET on a connection of its own.
func get(url string) result {
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(body), close: resp.Close, err: err}
}

func getAsync(url string) <-chan result {
	ch := make(chan result, 1)
	go func() { ch <- get(url) }()
	return ch
}

// inFlight sums http_server_active_requests over the methods from /metrics;
// the scrape itself counts.
func inFlight(url string) int {
	r := get(url + "/metrics")
	n, found := 0, false
	for line := range strings.Lines(r.body) {
		if rest, ok := strings.CutPrefix(line, "http_server_active_requests{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			m, _ := strconv.Atoi(strings.TrimSpace(v))
			n, found = n+m, true
		}
	}
	if !found {
		return -1
	}
	return n
}

// TestSIGTERMDrainsSlowRequest is the seed scenario, shortened: a 1.8 s
// request, shutdown delay 600 ms, shutdown timeout 3 s. The request outlives
// the delay by more than a second, so the drain is what waits for it.
// Readiness turns 503 at the signal, the process keeps serving through the delay with
// Connection: close, the slow request gets Pong and the process exits 0.
func TestSIGTERMDrainsSlowRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const delay = 600 * time.Millisecond
	inst := start(ctx, t, "--host.shutdown_delay="+delay.String(), "--host.shutdown_timeout=3s")

	slow := getAsync(inst.URL + "/pingpong/ping?delay=1800ms")
	runtest.Poll(ctx, t, "the slow request to be in flight", func() bool { return inFlight(inst.URL) == 2 })
	signalled := time.Now()
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	runtest.Poll(ctx, t, "readiness to fail", func() bool { return get(inst.URL+"/healthz/ready").status == 503 })
	if since := time.Since(signalled); since >= delay {
		t.Fatalf("readiness failed %s after SIGTERM, not within the %s delay", since, delay)
	}
	for _, path := range []string{"/healthz/live", "/pingpong/ping"} {
		if r := get(inst.URL + path); r.status != 200 || !r.close {
			t.Errorf("%s during the delay: status %d, Connection: close %v, err %v; want 200 with Connection: close",
				path, r.status, r.close, r.err)
		}
	}
	if r := get(inst.URL + "/healthz/ready"); r.status != 503 {
		t.Errorf("ready later in the delay = %d, want 503 until exit", r.status)
	}

	if r := <-slow; r.err != nil || r.body != "Pong" {
		t.Errorf("slow request across SIGTERM: status %d body %q err %v; want Pong", r.status, r.body, r.err)
	}
	code, err := inst.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if took := time.Since(signalled); took < delay {
		t.Errorf("exited %s after SIGTERM, before the %s delay was over", took, delay)
	}
}

// TestSIGTERMShutdownTimeoutExitsOne: a request that outlives the shutdown
// timeout is cut off, the log names it, and the process exits 1.
func TestSIGTERMShutdownTimeoutExitsOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst := start(ctx, t, "--host.shutdown_delay=0s", "--host.shutdown_timeout=200ms")

	slow := getAsync(inst.URL + "/pingpong/ping?delay=30s")
	runtest.Poll(ctx, t, "the slow request to be in flight", func() bool { return inFlight(inst.URL) == 2 })
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := inst.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
	if !strings.Contains(inst.Log(), "GET /pingpong/ping?delay=30s") {
		t.Errorf("log does not name the request that was cut off:\n%s", inst.Log())
	}
	if r := <-slow; r.err == nil {
		t.Errorf("cut-off request got status %d %q, want a connection error", r.status, r.body)
	}
}

func TestPortInUseExitsOne(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	code, out := runToExit(t, "--http.addr="+taken.Addr().String())
	if code != 1 {
		t.Errorf("exit code = %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "already in use") || !strings.Contains(out, taken.Addr().String()) {
		t.Errorf("output does not say the address is in use:\n%s", out)
	}
}

func TestInvalidConfigExitsTwoNamingTheKey(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pingapi binary; not in the -short tier")
	}
	tests := []struct {
		name string
		args []string
		env  string
		key  string
	}{
		{"bad flag value", []string{"--ping.max_delay=soon"}, "", "ping.max_delay"},
		{"bad environment value", nil, "HOST__SHUTDOWN_DELAY=-1s", "host.shutdown_delay"},
		{"unknown flag", []string{"--ping.nope=1"}, "", "ping.nope"},
		{"nats.url not a NATS URL", []string{"--nats.url=http://nats:4222"}, "", "nats.url"},
		{"nats.url malformed", nil, "NATS__URL=nats://[::1", "nats.url"},
		{"nats.url empty", []string{"--nats.url="}, "", "nats.url"},
		{"no ping interval", []string{"--nats.ping_interval=0s"}, "", "nats.ping_interval"},
		{"port out of range", []string{"--http.addr=:99999"}, "", "http.addr"},
		{"zero shutdown timeout", nil, "HOST__SHUTDOWN_TIMEOUT=0s", "host.shutdown_timeout"},
		{"grace period too short", nil, "HOST__TERMINATION_GRACE_PERIOD=10s", "host.termination_grace_period"},
		{"negative in-flight bound", []string{"--http.max_in_flight=-1"}, "", "http.max_in_flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(pingapi, append([]string{"--http.addr=127.0.0.1:0"}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env)
			out, err := cmd.CombinedOutput()
			if code := exitCode(t, err); code != 2 {
				t.Errorf("exit code = %d, want 2\n%s", code, out)
			}
			if !strings.Contains(string(out), tt.key) {
				t.Errorf("output does not name %s:\n%s", tt.key, out)
			}
		})
	}
}

// TestJobsReachNATS publishes a job through a real pingapi into the JOBS
// stream of an embedded NATS server.
func TestJobsReachNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := engine.DefaultConfig()
	cfg.Addr, cfg.StoreDir = closedPort(t), t.TempDir()
	eng, err := engine.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(context.Background())
	stream, err := eng.JetStream().CreateStream(ctx, queue.JobsStreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	inst := start(ctx, t, "--nats.url=nats://"+cfg.Addr)

	var r result
	runtest.Poll(ctx, t, "the job to be accepted", func() bool {
		r = post(inst.URL+"/pingpong/jobs", `{"id":"e2e-1","work":"5ms"}`)
		return r.status != http.StatusServiceUnavailable // until the publisher has connected
	})
	if r.status != http.StatusAccepted || !strings.Contains(r.body, `"id":"e2e-1"`) {
		t.Fatalf("POST /pingpong/jobs = %d %q, want 202 with the id", r.status, r.body)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, "jobs.ping")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(msg.Data), `{"id":"e2e-1","work":"5ms"}`; got != want {
		t.Errorf("stored job = %s, want %s", got, want)
	}
}

func TestJobsAnswer503WhileNATSIsDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst := start(ctx, t, "--nats.url=nats://"+closedPort(t))
	r := post(inst.URL+"/pingpong/jobs", `{"work":"5ms"}`)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "job queue unavailable") {
		t.Errorf("POST /pingpong/jobs without NATS = %d %q, want a 503 problem", r.status, r.body)
	}
	if r := get(inst.URL + "/healthz/ready"); r.status != 200 {
		t.Errorf("ready without NATS = %d, want 200: pings do not need NATS", r.status)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func post(url, body string) result {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, body: string(b), err: err}
}

// runToExit runs pingapi with args and returns its exit code and output.
func runToExit(tb testing.TB, args ...string) (int, string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the pingapi binary; not in the -short tier")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pingapi, args...).CombinedOutput()
	return exitCode(tb, err), string(out)
}

func exitCode(tb testing.TB, err error) int {
	tb.Helper()
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	tb.Fatal(err)
	return -1
}

// BenchmarkProcess measures, per start of the real binary: the time from
// exec to /healthz/ready answering 200, the resident memory once ready and
// idle, and the time from SIGTERM to exit when idle with no shutdown delay.
// It reports the median of each over b.N starts.
//
//	go test -run '^$' -bench BenchmarkProcess -benchtime 20x ./cmd/pingapi/
func BenchmarkProcess(b *testing.B) {
	var ready, exit []time.Duration
	var rss []float64
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		began := time.Now()
		inst := start(ctx, b, "--host.shutdown_delay=0s")
		ready = append(ready, time.Since(began))
		rss = append(rss, residentMB(b, inst.PID()))
		signalled := time.Now()
		if err := inst.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		if code, err := inst.Wait(ctx); err != nil || code != 0 {
			b.Fatalf("exit %d, %v", code, err)
		}
		exit = append(exit, time.Since(signalled))
		cancel()
	}
	b.ReportMetric(ms(median(ready)), "ready-ms")
	b.ReportMetric(median(rss), "rss-MB")
	b.ReportMetric(ms(median(exit)), "sigterm-exit-ms")
}

// residentMB reads VmRSS from /proc.
func residentMB(tb testing.TB, pid int) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				tb.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

func median[T float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
