package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
)

// worker is the binary under test, built once by TestMain.
var worker string

func TestMain(m *testing.M) {
	os.Exit(rollout.RunWithBinary(m.Run, "github.com/hostkit/hostkit/cmd/worker", &worker))
}

// testArgs run the worker on an embedded engine storing in store, listening
// on a free loopback port, with short durations and debug logs (the queue
// logs every job at info).
func testArgs(store string, extra ...string) []string {
	return append([]string{
		"--nats.embedded.store_dir=" + store,
		"--nats.embedded.addr=127.0.0.1:0",
		"--log.level=debug",
		"--changefeed.instance=test",
		"--changefeed.fetch_wait=100ms",
		"--queue.backoff=10ms",
		"--queue.max_backoff=50ms",
	}, extra...)
}

// start runs the worker and waits until it is ready; the test kills it at the
// end if it still runs.
func start(ctx context.Context, tb testing.TB, args ...string) *rollout.Instance {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the worker binary; not in the -short tier")
	}
	inst, err := rollout.Start(ctx, worker, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		inst.Kill()
		if tb.Failed() {
			tb.Logf("worker log:\n%s", lastLines(inst.Log(), 60))
		}
	})
	if err := inst.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
	return inst
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// records returns the worker's JSON log records with message msg.
func records(inst *rollout.Instance, msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(inst.Log()) {
		if !strings.Contains(line, msg) {
			continue
		}
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// natsURL is the address the worker's embedded server listens on, from its
// startup log.
func natsURL(tb testing.TB, inst *rollout.Instance) string {
	tb.Helper()
	recs := records(inst, "embedded NATS JetStream started")
	if len(recs) == 0 {
		tb.Fatal("the worker did not log its NATS address")
	}
	url, _ := recs[0]["listen"].(string)
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		tb.Fatalf("embedded NATS listens on %q, want loopback", url)
	}
	return url
}

// doneJobs counts how often each job (by JOBS sequence) was finished.
func doneJobs(insts ...*rollout.Instance) map[uint64]int {
	done := map[uint64]int{}
	for _, inst := range insts {
		for _, rec := range jobRecords(inst, "done") {
			if seq, ok := rec["seq"].(float64); ok {
				done[uint64(seq)]++
			}
		}
	}
	return done
}

// jobRecords returns the worker's "job" lines with outcome.
func jobRecords(inst *rollout.Instance, outcome string) []map[string]any {
	var out []map[string]any
	for _, rec := range records(inst, "job") {
		if rec["outcome"] == outcome {
			out = append(out, rec)
		}
	}
	return out
}

// connect returns a JetStream client of the worker's engine.
func connect(tb testing.TB, url string) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

func streamMsgs(tb testing.TB, js jetstream.JetStream, name string) int {
	tb.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		tb.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return int(info.State.Msgs)
}

// publishJobs stores n jobs.ping jobs through natsclient's Publisher.
func publishJobs(ctx context.Context, tb testing.TB, url string, n int, work string) {
	tb.Helper()
	pub, err := natsclient.NewPublisher(url, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	defer pub.Close()
	runtest.Poll(ctx, tb, "publisher connected", func() bool { return pub.Ready() == nil })
	for i := range n {
		body := fmt.Sprintf(`{"id":"%d","work":%q}`, i+1, work)
		if err := pub.Publish(ctx, "jobs.ping", []byte(body)); err != nil {
			tb.Fatalf("publish job %d: %v", i+1, err)
		}
	}
}

// interruptAndRestart publishes n jobs, lets a worker finish about a fifth of
// them, stops it with sig, restarts it on the same store and waits until the
// queue is empty. It fails on any job lost or dead-lettered and returns the
// number of jobs run twice.
func interruptAndRestart(t *testing.T, sig syscall.Signal, wantExit int, extra ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 200
	store := filepath.Join(t.TempDir(), "nats")

	first := start(ctx, t, testArgs(store, extra...)...)
	publishJobs(ctx, t, natsURL(t, first), n, "20ms")
	runtest.Poll(ctx, t, "a fifth of the jobs done", func() bool { return len(doneJobs(first)) >= n/5 })
	if err := first.Signal(sig); err != nil {
		t.Fatal(err)
	}
	code, err := first.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code != wantExit {
		t.Fatalf("exit code after %s = %d, want %d", sig, code, wantExit)
	}
	doneBefore := len(doneJobs(first))
	if doneBefore >= n {
		t.Fatalf("all %d jobs were done before the %s: nothing was interrupted", n, sig)
	}

	second := start(ctx, t, testArgs(store, extra...)...)
	js := connect(t, natsURL(t, second))
	// Well below the SIGTERM test's AckWait: a job the first worker did not
	// hand back at its stop would not come back in time.
	drainCtx, cancelDrain := context.WithTimeout(ctx, 20*time.Second)
	defer cancelDrain()
	runtest.Poll(drainCtx, t, "JOBS empty", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	if got := streamMsgs(t, js, queue.DLQStream); got != 0 {
		t.Errorf("DLQ holds %d jobs, want 0", got)
	}
	// The last jobs' lines may still be on their way through the pipe when
	// the stream is empty; after a graceful stop the whole log is read.
	if err := second.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := second.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("second worker after SIGTERM: exit code %d, %v", code, err)
	}

	done := doneJobs(first, second)
	dups := 0
	for seq := uint64(1); seq <= n; seq++ {
		switch c := done[seq]; {
		case c == 0:
			t.Errorf("job #%d never finished", seq)
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("%s after %d of %d jobs: all done, %d run twice", sig, doneBefore, n, dups)
	return dups
}

func TestSIGTERMMidwayLosesNoJob(t *testing.T) {
	// The stopping worker finishes its running jobs and hands its prefetched
	// ones back, so the restarted one need not wait for AckWait.
	interruptAndRestart(t, syscall.SIGTERM, 0, "--queue.ack_wait=1m")
}

func TestSIGKILLMidwayLosesNoJob(t *testing.T) {
	// The jobs the killed worker held come back after AckWait.
	interruptAndRestart(t, syscall.SIGKILL, -1, "--queue.ack_wait=1s")
}

func TestFailingJobLandsInDLQWithItsError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst := start(ctx, t, testArgs(filepath.Join(t.TempDir(), "nats"), "--queue.max_deliver=3")...)
	url := natsURL(t, inst)
	runPublish(ctx, t, 0, "--url", url, "jobs.ping", `{"id":"doomed","fail":"disk on fire"}`)

	js := connect(t, url)
	runtest.Poll(ctx, t, "a dead letter", func() bool { return streamMsgs(t, js, queue.DLQStream) == 1 })
	s, err := js.Stream(ctx, queue.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "dlq.jobs.ping")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(queue.HeaderError); !strings.Contains(got, "disk on fire") {
		t.Errorf("%s = %q, want the handler's error", queue.HeaderError, got)
	}
	if got, want := m.Header.Get(queue.HeaderAttempts), "3"; got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderAttempts, got, want)
	}
	if got := streamMsgs(t, js, queue.JobsStream); got != 0 {
		t.Errorf("JOBS holds %d jobs, want 0", got)
	}
	if got := len(jobRecords(inst, "retry")); got != 2 {
		t.Errorf("retries logged = %d, want 2", got)
	}
}

// runPublish runs `worker publish args...` and checks its exit code.
func runPublish(ctx context.Context, tb testing.TB, wantCode int, args ...string) string {
	tb.Helper()
	return runSub(ctx, tb, "publish", wantCode, args...)
}

// runSub runs `worker sub args...` and checks its exit code.
func runSub(ctx context.Context, tb testing.TB, sub string, wantCode int, args ...string) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the worker binary; not in the -short tier")
	}
	cmd := exec.CommandContext(ctx, worker, append([]string{sub}, args...)...)
	cmd.Env = []string{} // no NATS__URL from the caller's environment
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	if code != wantCode {
		tb.Fatalf("worker %s %s: exit %d, want %d\n%s", sub, strings.Join(args, " "), code, wantCode, out)
	}
	return string(out)
}

// Ids make a rerun of the same publish store nothing twice.
func TestPublishWithFixedIDsStoresOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker and NATS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst := start(ctx, t, testArgs(filepath.Join(t.TempDir(), "nats"), "--queue.concurrency=1")...)
	url := natsURL(t, inst)
	args := []string{"--url", url, "--count", "20", "--id", "order-{{n}}", "jobs.ping", `{"id":"{{n}}","work":"1ms"}`}
	runPublish(ctx, t, 0, args...)
	out := runPublish(ctx, t, 0, args...)
	if !strings.Contains(out, "(20 already stored under the same id)") {
		t.Errorf("rerun output %q does not report 20 duplicates", out)
	}
	runtest.Poll(ctx, t, "20 jobs done", func() bool { return len(doneJobs(inst)) >= 20 })
	js := connect(t, url)
	runtest.Poll(ctx, t, "JOBS empty", func() bool { return streamMsgs(t, js, queue.JobsStream) == 0 })
	if got := len(doneJobs(inst)); got != 20 {
		t.Fatalf("%d jobs done, want 20", got)
	}
	ids := map[string]bool{}
	for _, rec := range jobRecords(inst, "done") {
		ids[rec["msg_id"].(string)] = true
	}
	if !ids["order-1"] || !ids["order-20"] || len(ids) != 20 {
		t.Errorf("msg_id in the job lines = %v, want order-1 … order-20", ids)
	}
}

func TestPublishSubcommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst := start(ctx, t, testArgs(filepath.Join(t.TempDir(), "nats"))...)
	url := natsURL(t, inst)

	out := runPublish(ctx, t, 0, "--url", url, "--count", "5", "jobs.ping", `{"id":"{{n}}","work":"1ms"}`)
	if !strings.Contains(out, "published 5 message(s) on jobs.ping") {
		t.Errorf("output %q does not report 5 messages", out)
	}
	runtest.Poll(ctx, t, "5 jobs done", func() bool { return len(doneJobs(inst)) == 5 })

	runPublish(ctx, t, 0, "--url", url, "--count", "3", "changes.order-7", `{"v":{{n}}}`)
	runtest.Poll(ctx, t, "3 changes handled", func() bool {
		n := 0
		for _, rec := range records(inst, "change") {
			if rec["key"] == "order-7" {
				n++
			}
		}
		return n == 3
	})
}

func TestPublishErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no subject", nil, 2, "want SUBJECT"},
		{"wildcard subject", []string{"jobs.*"}, 2, "invalid subject"},
		{"zero count", []string{"--count", "0", "jobs.ping"}, 2, "--count"},
		{"no server", []string{"--url", "nats://" + runtest.FreeAddr(t), "--timeout", "200ms", "jobs.ping"}, 1, "no NATS server"},
		{"empty URL", []string{"--url", "", "jobs.ping"}, 2, "--url"},
		{"malformed URL", []string{"--url", "nats://[::1", "jobs.ping"}, 2, "--url"},
		{"HTTP URL", []string{"--url", "http://127.0.0.1:4222", "jobs.ping"}, 2, "scheme"},
		{"JetStream API", []string{"$JS.API.STREAM.DELETE.JOBS", ""}, 2, "$JS."},
		{"KV bucket", []string{"$KV.leases.1", "x"}, 2, "$KV."},
		{"system account", []string{"$SYS.REQ.SERVER.PING"}, 2, "$SYS."},
		{"reply inbox", []string{"_INBOX.abc"}, 2, "_INBOX."},
		{"change key with dots", []string{"changes.order.42", "{}"}, 2, "change key \"order.42\" contains dots"},
		{"fixed id for many", []string{"--count", "2", "--id", "same", "jobs.ping"}, 2, "needs {{n}}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runPublish(ctx, t, tt.wantCode, tt.args...)
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output %q lacks %q", out, tt.wantOut)
			}
		})
	}
}

// runWorker runs the worker to its end and returns the exit code and output.
func runWorker(ctx context.Context, tb testing.TB, args ...string) (int, string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the worker binary; not in the -short tier")
	}
	cmd := exec.CommandContext(ctx, worker, args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return 0, string(out)
}

func TestInvalidConfigurationExits2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := filepath.Join(t.TempDir(), "nats")
	tests := []struct {
		name    string
		args    []string
		wantOut string
	}{
		{"replicas on the embedded server", []string{"--nats.replicas=3"}, "nats.replicas"},
		{"no attempts", []string{"--queue.max_deliver=0"}, "queue.max_deliver"},
		{"backoff cap below base", []string{"--queue.backoff=2s", "--queue.max_backoff=1s"}, "queue.max_backoff"},
		{"not a duration", []string{"--queue.ack_wait=soon"}, "queue.ack_wait"},
		{"nats.url not a NATS URL", []string{"--nats.url=http://nats:4222"}, "nats.url"},
		{"nats.url malformed", []string{"--nats.url=nats://[::1"}, "nats.url"},
		{"no ping interval", []string{"--nats.ping_interval=0s"}, "nats.ping_interval"},
		{"ping max work", []string{"--jobs.ping.max_work=0s"}, "jobs.ping.max_work"},
		{"port out of range", []string{"--http.addr=:99999"}, "http.addr"},
		{"read timeout not a duration", []string{"--http.read_timeout=soon"}, "http.read_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--http.addr=127.0.0.1:0", "--nats.embedded.store_dir=" + store}, tt.args...)
			code, out := runWorker(ctx, t, args...)
			if code != 2 {
				t.Fatalf("exit code = %d, want 2\n%s", code, out)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output does not name %s:\n%s", tt.wantOut, out)
			}
		})
	}
}

func TestNATSPortInUseExits1(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out := runWorker(ctx, t, "--http.addr=127.0.0.1:0",
		"--nats.embedded.store_dir="+filepath.Join(t.TempDir(), "nats"),
		"--nats.embedded.addr="+l.Addr().String())
	if code != 1 {
		t.Fatalf("exit code = %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, l.Addr().String()) {
		t.Errorf("output does not name the address in use:\n%s", out)
	}
}

// TestReadyQuicklyWithEmbeddedEngine starts the worker on an empty store and
// reports how long it takes to be ready and how much memory it holds idle.
func TestReadyQuicklyWithEmbeddedEngine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	inst := start(ctx, t, "--nats.embedded.store_dir="+filepath.Join(t.TempDir(), "nats"),
		"--nats.embedded.addr=", "--changefeed.instance=test", "--changefeed.fetch_wait=100ms")
	ready := time.Since(began)
	if recs := records(inst, "embedded NATS JetStream started"); len(recs) != 1 || recs[0]["listen"] != "in-process only" {
		t.Errorf("embedded NATS records = %v, want one in-process only", recs)
	}
	t.Logf("start to ready: %s; idle RSS: %s", ready, rss(inst.PID()))
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := inst.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("exit = %d, %v; want 0", code, err)
	}
}

// rss reads a process's resident set size from /proc, or "unknown".
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(v)
			if kb, err := strconv.Atoi(fields[0]); err == nil {
				return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
			}
		}
	}
	return "unknown"
}
