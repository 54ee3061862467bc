package changefeed_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// metricValue returns the value of the series of name with exactly labels,
// and whether it exists.
func metricValue(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsReportLeasesLagAndResults(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	reg := prometheus.NewRegistry()
	m, err := changefeed.NewMetrics(reg, nil)
	if err != nil {
		t.Fatal(err)
	}

	gate := make(chan struct{})
	partition := make(chan int, 1)
	var calls atomic.Int32
	handler := func(_ context.Context, c changefeed.Change) error {
		switch calls.Add(1) {
		case 1: // holds the partition up while the rest queues
			partition <- c.Partition
			<-gate
		case 2: // fails once, then succeeds on redelivery
			return errors.New("injected failure")
		}
		return nil
	}
	p, _ := startProcessor(t, s, testConfig("a"), handler, m)
	runtest.Eventually(t, 5*time.Second, "leases owned = 16", func() bool {
		v, _ := metricValue(t, reg, "worker_changefeed_leases_owned", nil)
		return v == 16 && len(p.Owned()) == 16
	})

	for i := range 5 {
		publish(t, js, "k", strconv.Itoa(i))
	}
	part := receive(t, partition, 5*time.Second, "first change")
	pending := map[string]string{"partition": strconv.Itoa(part)}
	runtest.Eventually(t, 5*time.Second, "pending = 5 while the first change is held", func() bool {
		v, ok := metricValue(t, reg, "worker_changefeed_pending", pending)
		return ok && v == 5
	})

	close(gate)
	processed := func(result string) map[string]string {
		return map[string]string{"processor": "changefeed", "subject": "changes." + strconv.Itoa(part) + ".*", "result": result}
	}
	runtest.Eventually(t, 5*time.Second, "5 ok, 1 retry, nothing pending", func() bool {
		ok, _ := metricValue(t, reg, "worker_messages_processed_total", processed("ok"))
		retried, _ := metricValue(t, reg, "worker_messages_processed_total", processed("retry"))
		lag, _ := metricValue(t, reg, "worker_changefeed_pending", pending)
		return ok == 5 && retried == 1 && lag == 0
	})

	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := metricValue(t, reg, "worker_changefeed_leases_owned", nil); v != 0 {
		t.Errorf("leases owned after Stop = %v, want 0", v)
	}
	if _, ok := metricValue(t, reg, "worker_changefeed_pending", pending); ok {
		t.Error("pending still reported for a released partition")
	}
}

// sharedCounter stands in for the queue package's metrics.
type sharedCounter struct {
	mu    sync.Mutex
	calls []string
}

func (c *sharedCounter) Processed(processor, subject, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, processor+" "+subject+" "+result)
}

func (c *sharedCounter) recorded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

func TestMetricsCountIntoSharedCounter(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	reg := prometheus.NewRegistry()
	shared := &sharedCounter{}
	m, err := changefeed.NewMetrics(reg, shared)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	startProcessor(t, s, testConfig("a"), func(_ context.Context, c changefeed.Change) error {
		done <- c.Partition
		return nil
	}, m)
	publish(t, js, "k", "1")
	part := receive(t, done, 5*time.Second, "change handled")
	want := []string{"changefeed changes." + strconv.Itoa(part) + ".* ok"}
	runtest.Eventually(t, 5*time.Second, "counted in the shared counter", func() bool { return slices.Equal(shared.recorded(), want) })
	if _, ok := metricValue(t, reg, "worker_messages_processed_total", map[string]string{
		"processor": "changefeed", "subject": "changes." + strconv.Itoa(part) + ".*", "result": "ok",
	}); ok {
		t.Error("counted in a counter of its own as well")
	}
}

func TestNewMetricsRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := changefeed.NewMetrics(reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := changefeed.NewMetrics(reg, nil); err == nil {
		t.Fatal("registering twice on one registry succeeded")
	}
}
