package queue_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/queue"
)

// recorder is a handler that remembers what it saw.
type recorder struct {
	mu       sync.Mutex
	attempts []int
	times    []time.Time
	seqs     map[uint64]int
	fail     func(msg queue.Message) error
}

func (r *recorder) handle(_ context.Context, msg queue.Message) error {
	r.mu.Lock()
	if r.seqs == nil {
		r.seqs = map[uint64]int{}
	}
	r.attempts = append(r.attempts, msg.Attempt)
	r.times = append(r.times, time.Now())
	r.seqs[msg.Sequence]++
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail(msg)
	}
	return nil
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.attempts)
}

func TestProcessorRunsEveryJobOnce(t *testing.T) {
	e := startEngine(t)
	const n = 50
	publish(t, e, "jobs.test", n, jobBody)

	var rec recorder
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.test", rec.handle)
	p.run(t)

	eventually(t, "all jobs acknowledged", func() bool { return streamMsgs(t, e, queue.JobsStream) == 0 })
	if got := len(rec.seqs); got != n {
		t.Fatalf("distinct jobs handled = %d, want %d", got, n)
	}
	for seq, c := range rec.seqs {
		if c != 1 {
			t.Errorf("job #%d handled %d times, want 1", seq, c)
		}
	}
	if got := p.count(t, "jobs.test", queue.ResultOK); got != n {
		t.Errorf("ok count = %d, want %d", got, n)
	}
	if got := streamMsgs(t, e, queue.DLQStream); got != 0 {
		t.Errorf("DLQ holds %d messages, want 0", got)
	}
}

func TestFailingJobRetriesWithGrowingDelayThenGoesToDLQ(t *testing.T) {
	e := startEngine(t)
	cfg := fastConfig()
	cfg.MaxDeliver = 3
	cfg.Backoff = 40 * time.Millisecond
	cfg.MaxBackoff = time.Second
	rec := recorder{fail: func(queue.Message) error { return errors.New("disk on fire") }}
	p := newProcessor(t, e, cfg)
	p.Handle("jobs.fail", rec.handle)
	p.run(t)
	publish(t, e, "jobs.fail", 1, func(int) string { return `{"id":"doomed"}` })

	eventually(t, "dead letter", func() bool { return streamMsgs(t, e, queue.DLQStream) == 1 })
	eventually(t, "JOBS empty", func() bool { return streamMsgs(t, e, queue.JobsStream) == 0 })

	rec.mu.Lock()
	attempts, times := rec.attempts, rec.times
	rec.mu.Unlock()
	if got, want := attempts, []int{1, 2, 3}; !equal(got, want) {
		t.Fatalf("attempts = %v, want %v", got, want)
	}
	// NakWithDelay guarantees a minimum delay, so lower bounds cannot flake.
	if gap := times[1].Sub(times[0]); gap < cfg.Backoff {
		t.Errorf("delay before attempt 2 = %s, want >= %s", gap, cfg.Backoff)
	}
	if gap := times[2].Sub(times[1]); gap < 2*cfg.Backoff {
		t.Errorf("delay before attempt 3 = %s, want >= %s", gap, 2*cfg.Backoff)
	}

	m := dlqMsg(t, e, "dlq.jobs.fail")
	if got := m.Header.Get(queue.HeaderError); !strings.Contains(got, "disk on fire") {
		t.Errorf("%s = %q, want the handler's error", queue.HeaderError, got)
	}
	if got, want := m.Header.Get(queue.HeaderAttempts), "3"; got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderAttempts, got, want)
	}
	if got, want := m.Header.Get(queue.HeaderSubject), "jobs.fail"; got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderSubject, got, want)
	}
	if got, want := m.Header.Get(queue.HeaderStream), queue.JobsStream; got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderStream, got, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Header.Get(queue.HeaderTime)); err != nil {
		t.Errorf("%s: %v", queue.HeaderTime, err)
	}
	if got, want := string(m.Data), `{"id":"doomed"}`; got != want {
		t.Errorf("dead letter payload = %s, want %s", got, want)
	}
	if got := p.count(t, "jobs.fail", queue.ResultRetry); got != 2 {
		t.Errorf("retry count = %d, want 2", got)
	}
	// Counted just after the job leaves JOBS: wait for it, then check it is one.
	eventually(t, "dead letter counted", func() bool { return p.count(t, "jobs.fail", queue.ResultDLQ) >= 1 })
	if got := p.count(t, "jobs.fail", queue.ResultDLQ); got != 1 {
		t.Errorf("dlq count = %d, want 1", got)
	}
	if got := gather(t, p.reg, "worker_dlq_total", nil); got != 1 {
		t.Errorf("worker_dlq_total = %v, want 1", got)
	}
}

func TestJobSucceedsOnRetry(t *testing.T) {
	e := startEngine(t)
	rec := recorder{fail: func(m queue.Message) error {
		if m.Attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	}}
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.flaky", rec.handle)
	p.run(t)
	publish(t, e, "jobs.flaky", 1, jobBody)

	eventually(t, "job acknowledged", func() bool { return p.count(t, "jobs.flaky", queue.ResultOK) == 1 })
	if got := rec.calls(); got != 3 {
		t.Errorf("handler calls = %d, want 3", got)
	}
	eventually(t, "JOBS empty", func() bool { return streamMsgs(t, e, queue.JobsStream) == 0 })
	if got := streamMsgs(t, e, queue.DLQStream); got != 0 {
		t.Errorf("DLQ holds %d messages, want 0", got)
	}
}

func TestPermanentErrorGoesToDLQAtOnce(t *testing.T) {
	e := startEngine(t)
	rec := recorder{fail: func(queue.Message) error {
		return queue.Permanent(errors.New("cannot parse"))
	}}
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.bad", rec.handle)
	p.run(t)
	publish(t, e, "jobs.bad", 1, jobBody)

	eventually(t, "dead letter", func() bool { return streamMsgs(t, e, queue.DLQStream) == 1 })
	if got := rec.calls(); got != 1 {
		t.Errorf("handler calls = %d, want 1 (no retries)", got)
	}
	m := dlqMsg(t, e, "dlq.jobs.bad")
	if got, want := m.Header.Get(queue.HeaderAttempts), "1"; got != want {
		t.Errorf("%s = %q, want %q", queue.HeaderAttempts, got, want)
	}
	if got := m.Header.Get(queue.HeaderError); !strings.Contains(got, "cannot parse") {
		t.Errorf("%s = %q", queue.HeaderError, got)
	}
}

func TestJobWithoutHandlerGoesToDLQAtOnce(t *testing.T) {
	e := startEngine(t)
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.known", (&recorder{}).handle)
	p.run(t)
	publish(t, e, "jobs.unknown", 1, jobBody)

	eventually(t, "dead letter", func() bool { return streamMsgs(t, e, queue.DLQStream) == 1 })
	m := dlqMsg(t, e, "dlq.jobs.unknown")
	if got := m.Header.Get(queue.HeaderError); !strings.Contains(got, queue.ErrNoHandler.Error()) || !strings.Contains(got, "jobs.unknown") {
		t.Errorf("%s = %q, want the missing handler named", queue.HeaderError, got)
	}
	eventually(t, "JOBS empty", func() bool { return streamMsgs(t, e, queue.JobsStream) == 0 })
	// The job is counted once its dead letter is stored, a moment after
	// the DLQ shows it: wait for the count, then check it is exactly one.
	eventually(t, "dead letter counted", func() bool { return p.count(t, "unhandled", queue.ResultDLQ) >= 1 })
	if got := p.count(t, "unhandled", queue.ResultDLQ); got != 1 {
		t.Errorf("dlq count for unhandled subjects = %d, want 1", got)
	}
}

func TestPanickingHandlerIsRetried(t *testing.T) {
	e := startEngine(t)
	rec := recorder{fail: func(m queue.Message) error {
		if m.Attempt == 1 {
			panic("boom")
		}
		return nil
	}}
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.panic", rec.handle)
	p.run(t)
	publish(t, e, "jobs.panic", 1, jobBody)

	eventually(t, "job acknowledged", func() bool { return p.count(t, "jobs.panic", queue.ResultOK) == 1 })
	if got := p.count(t, "jobs.panic", queue.ResultRetry); got != 1 {
		t.Errorf("retry count = %d, want 1", got)
	}
}

func TestLongJobIsKeptAlivePastAckWait(t *testing.T) {
	e := startEngine(t)
	cfg := fastConfig()
	// Progress signals go at most AckWait/3 apart, so the job survives a stall of
	// the test process (descheduled, or stopped by the garbage collector)
	// of up to 2/3 AckWait: at 150ms that was 100ms, which a loaded 2-core
	// machine under -race sometimes exceeded, and the job ran twice.
	cfg.AckWait = 750 * time.Millisecond
	var calls atomic.Int32
	p := newProcessor(t, e, cfg)
	p.Handle("jobs.slow", func(ctx context.Context, _ queue.Message) error {
		calls.Add(1)
		select {
		case <-time.After(4 * cfg.AckWait):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	p.run(t)
	publish(t, e, "jobs.slow", 1, jobBody)

	eventually(t, "job acknowledged", func() bool { return p.count(t, "jobs.slow", queue.ResultOK) == 1 })
	if got := calls.Load(); got != 1 {
		t.Fatalf("handler calls = %d, want 1: the job was redelivered while running", got)
	}
}

func TestConcurrencyBoundsRunningHandlers(t *testing.T) {
	e := startEngine(t)
	cfg := fastConfig()
	cfg.Concurrency = 3
	const n = 12
	var running, peak atomic.Int32
	release := make(chan struct{})
	p := newProcessor(t, e, cfg)
	p.Handle("jobs.block", func(ctx context.Context, _ queue.Message) error {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			old := peak.Load()
			if now <= old || peak.CompareAndSwap(old, now) {
				break
			}
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	publish(t, e, "jobs.block", n, jobBody)
	p.run(t)

	// Once the server has handed out the running jobs plus the prefetched
	// ones, a processor ignoring its limit would already run more.
	eventually(t, "3 handlers running", func() bool { return running.Load() == 3 })
	eventually(t, "jobs waiting in the prefetch buffer", func() bool { return ackPending(t, e) > cfg.Concurrency })
	close(release)
	eventually(t, "all done", func() bool { return p.count(t, "jobs.block", queue.ResultOK) == n })
	if got := peak.Load(); got != 3 {
		t.Fatalf("peak running handlers = %d, want 3", got)
	}
}

// ackPending is how many jobs the shared consumer has handed out and not yet
// seen settled.
func ackPending(tb testing.TB, e interface{ JetStream() jetstream.JetStream }) int {
	tb.Helper()
	c, err := e.JetStream().Consumer(context.Background(), queue.JobsStream, queue.JobsConsumer)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info.NumAckPending
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJobDeliveredTooOftenGoesToDLQWithoutRunning(t *testing.T) {
	e := startEngine(t)
	cfg := fastConfig()
	cfg.AckWait = 50 * time.Millisecond
	cfg.MaxDeliver = 2
	// A first processor creates the consumer; then a raw client takes the job
	// three times without settling it, as three crashed workers would.
	first := newProcessor(t, e, cfg)
	first.Handle("jobs.crash", (&recorder{}).handle)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	publish(t, e, "jobs.crash", 1, jobBody)
	cons, err := e.JetStream().Consumer(context.Background(), queue.JobsStream, queue.JobsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("fetch delivery %d: %v", want, err)
		}
		meta, _ := m.Metadata()
		if meta.NumDelivered != want {
			t.Fatalf("delivery count = %d, want %d", meta.NumDelivered, want)
		}
	}

	var rec recorder
	p := newProcessor(t, e, cfg)
	p.Handle("jobs.crash", rec.handle)
	p.run(t)
	eventually(t, "dead letter", func() bool { return streamMsgs(t, e, queue.DLQStream) == 1 })
	if got := rec.calls(); got != 0 {
		t.Errorf("handler calls = %d, want 0", got)
	}
	m := dlqMsg(t, e, "dlq.jobs.crash")
	if got := m.Header.Get(queue.HeaderError); !strings.Contains(got, queue.ErrGaveUp.Error()) {
		t.Errorf("%s = %q, want %q", queue.HeaderError, got, queue.ErrGaveUp)
	}
	if got, _ := strconv.Atoi(m.Header.Get(queue.HeaderAttempts)); got != 4 {
		t.Errorf("%s = %d, want 4", queue.HeaderAttempts, got)
	}
}

func TestStartAppliesChangedConfig(t *testing.T) {
	e := startEngine(t)
	for _, ackWait := range []time.Duration{time.Second, 3 * time.Second} {
		cfg := fastConfig()
		cfg.AckWait = ackWait
		p := newProcessor(t, e, cfg)
		if err := p.Start(context.Background()); err != nil {
			t.Fatalf("Start with ack wait %s: %v", ackWait, err)
		}
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		c, err := e.JetStream().Consumer(context.Background(), queue.JobsStream, queue.JobsConsumer)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CachedInfo().Config.AckWait; got != ackWait {
			t.Fatalf("consumer AckWait = %s, want %s", got, ackWait)
		}
	}
}

func TestHandleRejectsProgrammingErrors(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		h       queue.Handler
	}{
		{"outside jobs", "orders.new", (&recorder{}).handle},
		{"wildcard", "jobs.*", (&recorder{}).handle},
		{"full wildcard", "jobs.>", (&recorder{}).handle},
		{"empty token", "jobs..x", (&recorder{}).handle},
		{"trailing dot", "jobs.", (&recorder{}).handle},
		{"blank", "jobs.a b", (&recorder{}).handle},
		{"nil handler", "jobs.x", nil},
		{"duplicate", "jobs.dup", (&recorder{}).handle},
	}
	e := startEngine(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcessor(t, e, fastConfig())
			p.Handle("jobs.dup", (&recorder{}).handle)
			defer func() {
				if recover() == nil {
					t.Fatalf("Handle(%q) did not panic", tt.subject)
				}
			}()
			p.Handle(tt.subject, tt.h)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*queue.Config)
		wantErr string
	}{
		{"default", func(*queue.Config) {}, ""},
		{"no concurrency", func(c *queue.Config) { c.Concurrency = 0 }, "queue.concurrency"},
		{"no prefetch", func(c *queue.Config) { c.Prefetch = 0 }, "queue.prefetch"},
		{"tiny ack wait", func(c *queue.Config) { c.AckWait = time.Millisecond }, "queue.ack_wait"},
		{"no attempts", func(c *queue.Config) { c.MaxDeliver = 0 }, "queue.max_deliver"},
		{"negative backoff", func(c *queue.Config) { c.Backoff = -time.Second }, "queue.backoff"},
		{"max below base", func(c *queue.Config) { c.MaxBackoff = time.Millisecond }, "queue.max_backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := queue.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad input")
	err := queue.Permanent(base)
	if !queue.IsPermanent(err) || !errors.Is(err, base) {
		t.Fatalf("Permanent(%v) = %v: IsPermanent %v, Is(base) %v", base, err, queue.IsPermanent(err), errors.Is(err, base))
	}
	if wrapped := errors.Join(errors.New("context"), err); !queue.IsPermanent(wrapped) {
		t.Error("IsPermanent does not see through wrapping")
	}
	if queue.IsPermanent(base) {
		t.Error("IsPermanent(plain error) = true")
	}
	if queue.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}
