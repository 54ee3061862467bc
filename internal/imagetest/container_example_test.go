package imagetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

func TestPingapiContainerDrainsOnSIGTERM(t *testing.T) {
	requireDocker(t)
	const delay = 2 * time.Second
	addr := runtest.FreeAddr(t)
	ctr := runImage(t, "pingapi", runOptions{env: map[string]string{
		"HTTP__ADDR":             addr,
		"HOST__SHUTDOWN_DELAY":   delay.String(),
		"HOST__SHUTDOWN_TIMEOUT": "10s",
		"LOG__FORMAT":            "json",
		"NATS__URL":              startNATS(t),
	}})
	base := "http://" + addr
	if err := pollStatus(t.Context(), base+"/healthz/ready", 200, 20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	checkImageConfig(t, ctr, "pingapi", "8080", true)

	// A ping that outlasts the shutdown delay is written to the server
	// before SIGTERM.
	pinged := slowPing(t, base+"/pingpong/ping?delay="+(delay+time.Second).String())
	stopped := make(chan int, 1)
	began := time.Now()
	go func() { stopped <- stopContainer(t, ctr) }()

	// During the delay: not ready, yet still serving.
	if err := pollStatus(t.Context(), base+"/healthz/ready", 503, delay, nil); err != nil {
		t.Errorf("readiness after SIGTERM: %v", err)
	}
	if status, body := get(t, base+"/pingpong/ping"); status != 200 || body != "Pong" {
		t.Errorf("ping during the shutdown delay = %d %q, want 200 Pong", status, body)
	}

	res := <-pinged
	if res.err != nil || res.status != 200 || res.body != "Pong" {
		t.Errorf("in-flight ping across SIGTERM = %d %q (%v), want 200 Pong", res.status, res.body, res.err)
	}
	if code := <-stopped; code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if took := time.Since(began); took < delay {
		t.Errorf("container stopped %s after SIGTERM, before its %s shutdown delay ended", took, delay)
	}
}

type pingResult struct {
	status int
	body   string
	err    error
}

// slowPing sends GET url in the background and returns once the request is
// written; the result arrives on the channel.
func slowPing(t *testing.T, url string) <-chan pingResult {
	t.Helper()
	done := make(chan pingResult, 1)
	wrote := make(chan struct{})
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- pingResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- pingResult{status: resp.StatusCode, body: string(body), err: err}
	}()
	select {
	case <-wrote:
	case res := <-done:
		t.Fatalf("slow ping failed before it was sent: %+v", res)
	case <-time.After(10 * time.Second):
		t.Fatal("slow ping not sent within 10s")
	}
	return done
}

func TestWorkerContainerFinishesJobsAcrossARestart(t *testing.T) {
	requireDocker(t)
	store := t.TempDir()
	// The store is a bind mount: the container's user must own it. As root,
	// hand it to the image's user; otherwise run the container as the
	// caller, so the files stay removable by the test.
	opts := runOptions{binds: []string{store + ":/data"}}
	if os.Getuid() == 0 {
		if err := os.Chown(store, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	} else {
		opts.user = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	httpAddr, natsAddr := runtest.FreeAddr(t), runtest.FreeAddr(t)
	opts.env = map[string]string{
		"HTTP__ADDR":                httpAddr,
		"NATS__EMBEDDED__ADDR":      natsAddr,
		"NATS__EMBEDDED__STORE_DIR": "/data",
		"HOST__SHUTDOWN_TIMEOUT":    "10s",
		"LOG__FORMAT":               "json",
		// One job at a time, none buffered: the stop leaves most of them
		// in the stream for the restarted worker.
		"QUEUE__CONCURRENCY": "1",
		"QUEUE__PREFETCH":    "1",
	}
	ctr := runImage(t, "worker", opts)
	ready := "http://" + httpAddr + "/healthz/ready"
	if err := pollStatus(t.Context(), ready, 200, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	checkImageConfig(t, ctr, "worker", "8090", opts.user == "")

	const jobs = 30 // 3s of work, one at a time
	js := jetStream(t, natsAddr)
	for i := range jobs {
		data, _ := json.Marshal(ping.Job{ID: fmt.Sprintf("job-%02d", i), Work: "100ms"})
		if _, err := js.Publish(t.Context(), ping.JobsSubject, data); err != nil {
			t.Fatalf("publish job %d: %v", i, err)
		}
	}
	// Stop mid-work: as soon as the first job is done.
	metrics := "http://" + httpAddr + "/metrics"
	runtest.Eventually(t, 30*time.Second, "the first job done", func() bool { return jobsDone(t, metrics) > 0 })
	if code := stopContainer(t, ctr); code != 0 {
		t.Fatalf("worker exit code after SIGTERM = %d, want 0", code)
	}
	if err := ctr.Start(t.Context()); err != nil {
		t.Fatalf("start the worker again: %v", err)
	}
	if err := pollStatus(t.Context(), ready, 200, 30*time.Second, nil); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	js = jetStream(t, natsAddr)
	runtest.Eventually(t, 30*time.Second, "every job done", func() bool { return streamState(t, js, queue.JobsStream).Msgs == 0 })
	if s := streamState(t, js, queue.JobsStream); s.LastSeq != jobs {
		t.Errorf("JOBS last sequence = %d, want %d: the stream lost published jobs", s.LastSeq, jobs)
	}
	if s := streamState(t, js, queue.DLQStream); s.Msgs != 0 {
		t.Errorf("DLQ holds %d messages, want 0", s.Msgs)
	}
	// The restarted process counts only its own jobs: some must have been
	// left over, or the stop did not happen mid-work.
	after := jobsDone(t, metrics)
	if after == 0 || after >= jobs {
		t.Errorf("the restarted worker did %d of %d jobs, want some but not all", after, jobs)
	}
	t.Logf("%d of %d jobs were done after the restart", after, jobs)
}

// jobsDone sums worker_messages_processed_total for jobs.ping with result
// ok, as the worker's /metrics reports it.
func jobsDone(t *testing.T, metricsURL string) int {
	t.Helper()
	status, body := get(t, metricsURL)
	if status != 200 {
		t.Fatalf("GET %s = %d", metricsURL, status)
	}
	total := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "worker_messages_processed_total{") ||
			!strings.Contains(line, `subject="`+ping.JobsSubject+`"`) || !strings.Contains(line, `result="ok"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}

// jetStream connects to the worker's embedded engine.
func jetStream(t *testing.T, addr string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect to the worker's NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State
}
