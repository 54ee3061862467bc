package changefeed

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Results recorded in worker_messages_processed_total, spelled as the
// worker's other processors spell them.
const (
	// resultOK: the handler succeeded and the change was acknowledged.
	resultOK = "ok"
	// resultRetry: the handler failed; the change comes again after
	// RetryDelay, ahead of the rest of its partition.
	resultRetry = "retry"
	// resultRequeued: the handler gave up because the lease was lost or Stop
	// ran out of time; the change was handed back to the next owner.
	resultRequeued = "requeued"
)

// processorLabel is this package's value of the processor label.
const processorLabel = "changefeed"

// ProcessedCounter counts handled messages in
// worker_messages_processed_total{processor,subject,result}. The queue
// package's *Metrics has this method, so the worker can share one counter
// between its processors.
type ProcessedCounter interface {
	Processed(processor, subject, result string)
}

// Metrics are the processor's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	pending   *prometheus.GaugeVec
	owned     prometheus.Gauge
	processed ProcessedCounter
}

// NewMetrics registers worker_changefeed_pending{partition} and
// worker_changefeed_leases_owned on reg, and counts handled changes in
// processed under processor="changefeed", subject=changes.<partition>.*
// (the keys themselves would make the series unbounded) and result ok,
// retry or requeued. If processed is nil, NewMetrics registers a
// worker_messages_processed_total of its own on reg.
func NewMetrics(reg prometheus.Registerer, processed ProcessedCounter) (*Metrics, error) {
	m := &Metrics{
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "worker_changefeed_pending",
			Help: "Changes not yet acknowledged, per partition, as last seen by the partition's owner.",
		}, []string{"partition"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worker_changefeed_leases_owned",
			Help: "Change feed partitions whose lease this instance holds.",
		}),
		processed: processed,
	}
	collectors := []prometheus.Collector{m.pending, m.owned}
	if processed == nil {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worker_messages_processed_total",
			Help: "Messages handled by the worker, by processor, subject and result.",
		}, []string{"processor", "subject", "result"})
		m.processed = counterVec{vec}
		collectors = append(collectors, vec)
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register change feed metrics: %w", err)
		}
	}
	return m, nil
}

type counterVec struct{ vec *prometheus.CounterVec }

func (c counterVec) Processed(processor, subject, result string) {
	c.vec.WithLabelValues(processor, subject, result).Inc()
}

func (m *Metrics) setPending(p int, n uint64) {
	if m != nil {
		m.pending.WithLabelValues(strconv.Itoa(p)).Set(float64(n))
	}
}

// dropPending removes a partition's lag once another instance reports it.
func (m *Metrics) dropPending(p int) {
	if m != nil {
		m.pending.DeleteLabelValues(strconv.Itoa(p))
	}
}

// syncOwned sets the owned-leases gauge to the number held now. Acquisitions,
// releases and losses run concurrently: a count taken under pr.mu and set
// after it was released could land after a newer one, and the gauge would
// stay wrong until the next change (it read 4 with 8 held). Reading and
// setting under the lock makes the last write the current count.
func (pr *Processor) syncOwned() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.metrics.setOwned(len(pr.held))
}

func (m *Metrics) setOwned(n int) {
	if m != nil {
		m.owned.Set(float64(n))
	}
}

func (m *Metrics) countProcessed(p int, result string) {
	if m != nil {
		m.processed.Processed(processorLabel, partitionSubject(p), result)
	}
}
