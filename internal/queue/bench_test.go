package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/queue"
)

// BenchmarkProcessorVsBare measures jobs per second through the processor with
// a handler that does nothing, against a bare JetStream consume-and-ack loop
// on the same embedded server, and reports both rates and their ratio. The
// b.N jobs of each side are split into rounds that alternate the order of the
// sides, so that load from elsewhere on the machine hits them alike. A round
// publishes first and times from the first job handled to the last, so the
// rates are pure consumption.
//
// The bare loop pulls at nats.go's default (500 messages in flight); the
// processor may hold no more than its prefetch. A third side, "window", is
// the same bare loop pulling through the processor's iterator settings
// (prefetch and refill threshold) in one goroutine: processor/window
// (ratio_vs_window) is the cost of the processor's own code, window/bare the
// cost of pulling so few jobs ahead.
//
//	go test -run '^$' -bench ProcessorVsBare -benchtime 50000x ./internal/queue
func BenchmarkProcessorVsBare(b *testing.B) {
	// The defaults, and a prefetch as small as the concurrency to show what
	// small pull batches cost.
	for _, tc := range []struct{ concurrency, prefetch int }{{4, 64}, {4, 4}} {
		b.Run(fmt.Sprintf("concurrency=%d/prefetch=%d", tc.concurrency, tc.prefetch), func(b *testing.B) {
			e := startEngine(b)
			ensureStreams(b, e)
			for _, side := range []string{"bare", "window"} {
				bareConsumer(b, e, side) // creates the stream before the first publish
				deleteConsumer(b, e, strings.ToUpper(side), side)
			}
			cfg := queue.DefaultConfig()
			cfg.Concurrency, cfg.Prefetch = tc.concurrency, tc.prefetch

			const rounds = 10
			var bareTime, windowTime, procTime time.Duration
			b.ResetTimer()
			for r := range rounds {
				n := b.N / rounds
				if r < b.N%rounds {
					n++
				}
				if n == 0 {
					continue
				}
				publishAsync(b, e.JetStream(), "bare.bench", n)
				publishAsync(b, e.JetStream(), "window.bench", n)
				publishAsync(b, e.JetStream(), "jobs.bench", n)
				if r%2 == 0 {
					bareTime += consumeBare(b, e, n)
					windowTime += consumeWindow(b, e, cfg, n)
					procTime += consumeProcessor(b, e, cfg, n)
				} else {
					procTime += consumeProcessor(b, e, cfg, n)
					windowTime += consumeWindow(b, e, cfg, n)
					bareTime += consumeBare(b, e, n)
				}
			}
			b.StopTimer()

			bareRate := float64(b.N) / bareTime.Seconds()
			windowRate := float64(b.N) / windowTime.Seconds()
			procRate := float64(b.N) / procTime.Seconds()
			b.ReportMetric(bareRate, "bare_jobs/s")
			b.ReportMetric(windowRate, "window_jobs/s")
			b.ReportMetric(procRate, "processor_jobs/s")
			b.ReportMetric(procRate/bareRate, "ratio")
			b.ReportMetric(procRate/windowRate, "ratio_vs_window")
		})
	}
}

// bareConsumer is a work-queue stream and durable consumer like JOBS, apart
// from it because a work-queue stream allows one consumer per subject: stream
// NAME on subjects name.>, consumer name. consumeBare and consumeWindow delete
// the consumer after each round: a stopped consumer leaves pull requests on
// the server that would swallow the next round's messages until AckWait.
func bareConsumer(tb testing.TB, e *engine.Engine, name string) jetstream.Consumer {
	tb.Helper()
	ctx := context.Background()
	sc := queue.JobsStreamConfig(1)
	sc.Name, sc.Subjects = strings.ToUpper(name), []string{name + ".>"}
	if _, err := e.JetStream().CreateOrUpdateStream(ctx, sc); err != nil {
		tb.Fatal(err)
	}
	c, err := e.JetStream().CreateOrUpdateConsumer(ctx, sc.Name, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func publishAsync(tb testing.TB, js jetstream.JetStream, subject string, n int) {
	tb.Helper()
	body := []byte(`{"id":"bench","work":"0s"}`)
	for range n {
		if _, err := js.PublishAsync(subject, body); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		tb.Fatal("publishing timed out")
	}
}

// span times a run of n handled jobs from the first to the last.
type span struct {
	n     int64
	count atomic.Int64
	first atomic.Int64 // unix nanoseconds
	last  chan time.Time
}

func newSpan(n int) *span { return &span{n: int64(n), last: make(chan time.Time, 1)} }

func (s *span) done() {
	c := s.count.Add(1)
	if c == 1 {
		s.first.Store(time.Now().UnixNano())
	}
	if c == s.n {
		s.last <- time.Now()
	}
}

func (s *span) wait(tb testing.TB) time.Duration {
	tb.Helper()
	select {
	case last := <-s.last:
		return last.Sub(time.Unix(0, s.first.Load()))
	case <-time.After(2 * time.Minute):
		tb.Fatalf("consuming timed out after %d of %d jobs", s.count.Load(), s.n)
		return 0
	}
}

func consumeBare(tb testing.TB, e *engine.Engine, n int) time.Duration {
	tb.Helper()
	c := bareConsumer(tb, e, "bare")
	defer deleteConsumer(tb, e, "BARE", "bare")
	s := newSpan(n)
	cc, err := c.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		s.done()
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer cc.Stop()
	return s.wait(tb)
}

// consumeWindow is consumeBare pulling as the processor's iterator does, and
// asking again every 20ms as its workers do (a refill nats.go skips while the
// previous pull is being sent is otherwise made up only after a missed
// heartbeat).
func consumeWindow(tb testing.TB, e *engine.Engine, cfg queue.Config, n int) time.Duration {
	tb.Helper()
	c := bareConsumer(tb, e, "window")
	defer deleteConsumer(tb, e, "WINDOW", "window")
	s := newSpan(n)
	iter, err := c.Messages(jetstream.PullMaxMessages(cfg.Prefetch), jetstream.PullThresholdMessages(cfg.RefillBelow()),
		jetstream.PullExpiry(cfg.FetchWait), jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		tb.Fatal(err)
	}
	defer iter.Stop()
	go func() {
		for {
			m, err := iter.Next(jetstream.NextMaxWait(20 * time.Millisecond))
			if errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if err != nil {
				return
			}
			_ = m.Ack()
			s.done()
		}
	}()
	return s.wait(tb)
}

func consumeProcessor(tb testing.TB, e *engine.Engine, cfg queue.Config, n int) time.Duration {
	tb.Helper()
	s := newSpan(n)
	defer deleteConsumer(tb, e, queue.JobsStream, queue.JobsConsumer)
	p := newProcessor(tb, e, cfg)
	p.Handle("jobs.bench", func(context.Context, queue.Message) error {
		s.done()
		return nil
	})
	if err := p.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := p.Stop(context.Background()); err != nil {
			tb.Error(err)
		}
	}()
	return s.wait(tb)
}

func deleteConsumer(tb testing.TB, e *engine.Engine, stream, name string) {
	tb.Helper()
	if err := e.JetStream().DeleteConsumer(context.Background(), stream, name); err != nil {
		tb.Fatalf("delete consumer %s: %v", name, err)
	}
}
