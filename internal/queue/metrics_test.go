package queue_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/queue"
)

func TestMetricsRegisteredTwiceShareCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := queue.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := queue.NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on the same registry: %v", err)
	}
	first.Processed("queue", "jobs.x", queue.ResultDLQ)
	second.Processed("other", "jobs.x", queue.ResultDLQ)

	if got := gather(t, reg, "worker_messages_processed_total", map[string]string{"subject": "jobs.x", "result": "dlq"}); got != 2 {
		t.Errorf("worker_messages_processed_total = %v, want 2", got)
	}
	if got := gather(t, reg, "worker_dlq_total", map[string]string{"processor": "other"}); got != 1 {
		t.Errorf("worker_dlq_total{processor=other} = %v, want 1", got)
	}
}
