package queue

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results recorded in worker_messages_processed_total.
const (
	// ResultOK: the handler succeeded and the message was acknowledged.
	ResultOK = "ok"
	// ResultRetry: the handler failed and the message will be delivered again.
	ResultRetry = "retry"
	// ResultDLQ: the message was moved to the dead letter queue.
	ResultDLQ = "dlq"
	// ResultRequeued: shutdown interrupted the handler; the message was handed
	// back for immediate redelivery.
	ResultRequeued = "requeued"
)

// unhandledSubject labels messages without a handler, so that stray subjects
// cannot grow the number of time series without bound.
const unhandledSubject = "unhandled"

// Metrics are the worker's message counters. One Metrics can be shared by
// several processors; each reports under its own processor label.
type Metrics struct {
	processed *prometheus.CounterVec
	dlq       *prometheus.CounterVec
}

// NewMetrics registers worker_messages_processed_total and worker_dlq_total on
// reg. Registering twice on the same registry returns the counters already
// there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	processed, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "worker_messages_processed_total",
		Help: "Messages handled by the worker, by processor, subject and result (ok, retry, dlq, requeued).",
	}, []string{"processor", "subject", "result"}))
	if err != nil {
		return nil, err
	}
	dlq, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "worker_dlq_total",
		Help: "Messages moved to the DLQ stream, by processor and original subject.",
	}, []string{"processor", "subject"}))
	if err != nil {
		return nil, err
	}
	return &Metrics{processed: processed, dlq: dlq}, nil
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

// Processed counts one message handled by processor with result.
func (m *Metrics) Processed(processor, subject, result string) {
	m.processed.WithLabelValues(processor, subject, result).Inc()
	if result == ResultDLQ {
		m.dlq.WithLabelValues(processor, subject).Inc()
	}
}

// counters are the series of one processor and subject, looked up once so
// that counting a job costs no label hashing. Looking them up also makes them
// visible at zero before the first job, so that rates and alerts work from the
// start.
type counters struct {
	ok, retry, requeued, dlq, dlqTotal prometheus.Counter
}

func (m *Metrics) counters(processor, subject string) *counters {
	return &counters{
		ok:       m.processed.WithLabelValues(processor, subject, ResultOK),
		retry:    m.processed.WithLabelValues(processor, subject, ResultRetry),
		requeued: m.processed.WithLabelValues(processor, subject, ResultRequeued),
		dlq:      m.processed.WithLabelValues(processor, subject, ResultDLQ),
		dlqTotal: m.dlq.WithLabelValues(processor, subject),
	}
}

// deadLettered counts a job moved to the DLQ in both metrics.
func (c *counters) deadLettered() {
	c.dlq.Inc()
	c.dlqTotal.Inc()
}
