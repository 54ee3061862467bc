package natsclient

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Results recorded in nats_publish_total.
const (
	// PublishOK: stored.
	PublishOK = "ok"
	// PublishDuplicate: dropped as a repeat of a stored Nats-Msg-Id.
	PublishDuplicate = "duplicate"
	// PublishUnavailable: certainly not stored (503).
	PublishUnavailable = "unavailable"
	// PublishUnknown: maybe stored (504).
	PublishUnknown = "unknown"
	// PublishError: refused for another reason.
	PublishError = "error"
)

// statuses are the connection states nats_connection_status reports.
var statuses = []nats.Status{
	nats.DISCONNECTED, nats.CONNECTED, nats.CLOSED, nats.RECONNECTING, nats.CONNECTING,
	nats.DRAINING_SUBS, nats.DRAINING_PUBS,
}

// Metrics export a publisher's connection state and publish results.
// A nil *Metrics records nothing.
type Metrics struct {
	conn      atomic.Pointer[nats.Conn]
	publishes *prometheus.CounterVec
}

// NewMetrics registers nats_connection_status and nats_publish_total on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nats_publish_total",
		Help: "Publishes to JetStream by result: ok, duplicate (dropped as a repeat of its Nats-Msg-Id), unavailable (not stored), unknown (maybe stored), error.",
	}, []string{"result"})}
	for _, r := range []string{PublishOK, PublishDuplicate, PublishUnavailable, PublishUnknown, PublishError} {
		m.publishes.WithLabelValues(r)
	}
	if err := reg.Register(m.publishes); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(statusCollector{m}); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) watch(nc *nats.Conn) {
	if m != nil {
		m.conn.Store(nc)
	}
}

func (m *Metrics) published(duplicate bool) {
	if m == nil {
		return
	}
	if duplicate {
		m.publishes.WithLabelValues(PublishDuplicate).Inc()
		return
	}
	m.publishes.WithLabelValues(PublishOK).Inc()
}

func (m *Metrics) failed(err error) {
	if m == nil || err == nil {
		return
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		m.publishes.WithLabelValues(PublishUnavailable).Inc()
	case errors.Is(err, ErrOutcomeUnknown):
		m.publishes.WithLabelValues(PublishUnknown).Inc()
	default:
		m.publishes.WithLabelValues(PublishError).Inc()
	}
}

var statusDesc = prometheus.NewDesc("nats_connection_status",
	"State of the NATS connection: 1 for the current status, 0 for the others.", []string{"status"}, nil)

// statusCollector reads the connection's status at scrape time, so the
// metric cannot miss a transition.
type statusCollector struct{ m *Metrics }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- statusDesc }

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	nc := c.m.conn.Load()
	if nc == nil {
		return
	}
	cur := nc.Status()
	for _, s := range statuses {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(statusDesc, prometheus.GaugeValue, v, s.String())
	}
}
