package queue_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/queue"
)

// gauges reads the backlog gauges from reg; absent ones are -1.
func gauges(tb testing.TB, reg *prometheus.Registry) (pending, unacked float64) {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	pending, unacked = -1, -1
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "worker_queue_pending":
				pending = m.GetGauge().GetValue()
			case "worker_queue_ack_pending":
				unacked = m.GetGauge().GetValue()
			}
		}
	}
	return pending, unacked
}

func TestBacklogFollowsTheConsumer(t *testing.T) {
	e := startEngine(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(queue.NewBacklogCollector(e.JetStream))
	if p, u := gauges(t, reg); p != -1 || u != -1 {
		t.Fatalf("before the consumer exists: pending %v, ack pending %v; want no samples", p, u)
	}

	cfg := fastConfig()
	cfg.Concurrency, cfg.Prefetch = 1, 1
	proc := newProcessor(t, e, cfg)
	release := make(chan struct{})
	proc.Handle("jobs.block", func(ctx context.Context, _ queue.Message) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	proc.run(t)
	publish(t, e, "jobs.block", 5, jobBody)
	enginetest.Eventually(t, "one job running, four waiting", func() bool {
		p, u := gauges(t, reg)
		return p == 4 && u == 1
	})
	close(release)
	enginetest.Eventually(t, "the backlog to drain", func() bool {
		p, u := gauges(t, reg)
		return p == 0 && u == 0
	})
}
