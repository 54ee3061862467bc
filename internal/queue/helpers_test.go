package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/queue"
)

// testLogger discards logs unless QUEUE_TEST_LOG names a level (debug, warn...).
func testLogger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("QUEUE_TEST_LOG"))); err != nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startEngine runs an in-process embedded engine storing in a temporary
// directory, stopped at the end of the test.
func startEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	return startEngineIn(tb, tb.TempDir(), "")
}

func startEngineIn(tb testing.TB, dir, addr string) *engine.Engine {
	tb.Helper()
	return enginetest.Start(tb, dir, addr, testLogger())
}

var (
	streamMsgs = enginetest.StreamMsgs
	eventually = enginetest.Eventually
)

// fastConfig is a processor configuration with test-sized durations.
func fastConfig() queue.Config {
	cfg := queue.DefaultConfig()
	cfg.AckWait = 2 * time.Second
	cfg.Backoff = 10 * time.Millisecond
	cfg.MaxBackoff = 100 * time.Millisecond
	return cfg
}

// testProcessor is a processor with its own metrics registry.
type testProcessor struct {
	*queue.Processor
	reg *prometheus.Registry
}

// newProcessor makes a processor; register handlers, then call run.
func newProcessor(tb testing.TB, e *engine.Engine, cfg queue.Config) *testProcessor {
	tb.Helper()
	return newProcessorLogging(tb, e, cfg, testLogger())
}

// newProcessorLogging is newProcessor with its own logger.
func newProcessorLogging(tb testing.TB, e *engine.Engine, cfg queue.Config, log *slog.Logger) *testProcessor {
	tb.Helper()
	reg := prometheus.NewRegistry()
	m, err := queue.NewMetrics(reg)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := queue.New(e, cfg, log, m)
	if err != nil {
		tb.Fatal(err)
	}
	return &testProcessor{Processor: p, reg: reg}
}

// run starts the processor and stops it at the end of the test.
func (p *testProcessor) run(tb testing.TB) {
	tb.Helper()
	if err := p.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			tb.Errorf("Stop: %v", err)
		}
	})
}

// count reads worker_messages_processed_total for subject and result.
func (p *testProcessor) count(tb testing.TB, subject, result string) int {
	tb.Helper()
	return int(gather(tb, p.reg, "worker_messages_processed_total", map[string]string{
		"processor": "queue", "subject": subject, "result": result,
	}))
}

// gather sums the samples of metric whose labels include labels.
func gather(tb testing.TB, reg *prometheus.Registry, metric string, labels map[string]string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
	sample:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue sample
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// publish stores n jobs on subject, with payloads from body.
func publish(tb testing.TB, e *engine.Engine, subject string, n int, body func(i int) string) {
	tb.Helper()
	js := e.JetStream()
	ensureStreams(tb, e)
	for i := range n {
		if _, err := js.Publish(context.Background(), subject, []byte(body(i))); err != nil {
			tb.Fatalf("publish %s: %v", subject, err)
		}
	}
}

// ensureStreams creates JOBS and DLQ as the processor would, so that tests
// can publish before starting one.
func ensureStreams(tb testing.TB, e *engine.Engine) {
	tb.Helper()
	ctx := context.Background()
	for _, sc := range []jetstream.StreamConfig{queue.JobsStreamConfig(1), queue.DLQStreamConfig(1)} {
		if _, err := e.JetStream().CreateOrUpdateStream(ctx, sc); err != nil {
			tb.Fatal(err)
		}
	}
}

// dlqMsg returns the last dead letter on subject.
func dlqMsg(tb testing.TB, e *engine.Engine, subject string) *jetstream.RawStreamMsg {
	tb.Helper()
	s, err := e.JetStream().Stream(context.Background(), queue.DLQStream)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		tb.Fatalf("no dead letter on %s: %v", subject, err)
	}
	return m
}

func jobBody(i int) string { return fmt.Sprintf(`{"id":"%d"}`, i) }
