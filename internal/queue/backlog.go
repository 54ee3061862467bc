package queue

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// backlogTimeout bounds the consumer lookup of one scrape: a slow cluster
// must not hold /metrics for long.
const backlogTimeout = 2 * time.Second

// backlogCollector reports the work queue's backlog as the server sees it,
// read at scrape time so it is never stale: jobs waiting to be delivered,
// and jobs delivered but not yet acknowledged (running, or on a dead
// worker until AckWait).
type backlogCollector struct {
	js               func() jetstream.JetStream
	pending, unacked *prometheus.Desc
}

// NewBacklogCollector returns a collector of worker_queue_pending and
// worker_queue_ack_pending for the JOBS consumer, through js (a method
// value such as engine.JetStream; nil until the engine starts, and then
// nothing is reported). Every replica reports the same consumer: aggregate
// with max, not sum.
func NewBacklogCollector(js func() jetstream.JetStream) prometheus.Collector {
	labels := prometheus.Labels{"stream": JobsStream, "consumer": JobsConsumer}
	return &backlogCollector{
		js: js,
		pending: prometheus.NewDesc("worker_queue_pending",
			"Jobs in the work queue not yet delivered to any worker (consumer lag).", nil, labels),
		unacked: prometheus.NewDesc("worker_queue_ack_pending",
			"Jobs delivered to a worker and not yet acknowledged.", nil, labels),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.unacked
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	js := c.js()
	if js == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	cons, err := js.Consumer(ctx, JobsStream, JobsConsumer)
	if err != nil {
		return // not created yet, or the cluster is away: no sample beats a wrong one
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending))
	ch <- prometheus.MustNewConstMetric(c.unacked, prometheus.GaugeValue, float64(info.NumAckPending))
}
