package natsclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/queue"
)

func withID(subject, id, data string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(nats.MsgIdHdr, id)
	m.Data = []byte(data)
	return m
}

func TestPublishSameIDTwiceStoresOnce(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	first, err := p.PublishMsg(context.Background(), withID("jobs.ping", "job-1", `{"id":"job-1"}`))
	if err != nil || first.Duplicate {
		t.Fatalf("first publish = %+v, %v; want stored", first, err)
	}
	again, err := p.PublishMsg(context.Background(), withID("jobs.ping", "job-1", `{"id":"job-1"}`))
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("retry = %+v, %v; want a duplicate of #%d", again, err, first.Sequence)
	}
	if got := enginetest.StreamMsgs(t, e, queue.JobsStream); got != 1 {
		t.Fatalf("JOBS holds %d jobs, want 1", got)
	}
}

// A message that reached a responder but got no acknowledgement may have
// been stored: that is not "unavailable" (which promises it was not).
func TestPublishWithoutAckIsOutcomeUnknown(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	ensureStreams(t, e)
	// A responder that never answers stands in for a stream leader that
	// stored the message and froze before acknowledging it.
	sub, err := e.Conn().Subscribe("frozen.leader", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := e.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.PublishMsg(ctx, withID("frozen.leader", "job-2", "{}"))
	if !errors.Is(err, natsclient.ErrOutcomeUnknown) || errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("PublishMsg() = %v, want ErrOutcomeUnknown only", err)
	}
}

func TestHealthAndMetricsFollowPublishes(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	reg := prometheus.NewRegistry()
	m, err := natsclient.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := natsclient.NewPublisherWith(e.ClientURL(), natsclient.PublisherOptions{Metrics: m}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })
	if err := p.Health(); err != nil {
		t.Fatalf("Health() = %v before any publish", err)
	}
	// No stream yet: every publish fails.
	for range 3 {
		if err := p.Publish(context.Background(), "jobs.ping", nil); !errors.Is(err, natsclient.ErrUnavailable) {
			t.Fatalf("Publish() = %v, want ErrUnavailable", err)
		}
	}
	if err := p.Health(); err == nil || !strings.Contains(err.Error(), "last 3 publishes failed") {
		t.Fatalf("Health() = %v, want the 3 failures", err)
	}
	ensureStreams(t, e)
	if err := p.Publish(context.Background(), "jobs.ping", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Health(); err != nil {
		t.Fatalf("Health() = %v after a publish worked", err)
	}
	for result, want := range map[string]float64{"ok": 1, "unavailable": 3, "unknown": 0, "duplicate": 0, "error": 0} {
		if got := gauge(t, reg, "nats_publish_total", "result", result); got != want {
			t.Errorf("nats_publish_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	for status, want := range map[string]float64{"CONNECTED": 1, "RECONNECTING": 0, "CLOSED": 0} {
		if got := gauge(t, reg, "nats_connection_status", "status", status); got != want {
			t.Errorf("nats_connection_status{status=%q} = %v, want %v", status, got, want)
		}
	}
}

// gauge returns the value of the sample of metric whose label is value.
func gauge(tb testing.TB, reg *prometheus.Registry, metric, label, value string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != metric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	tb.Fatalf("no %s{%s=%q}", metric, label, value)
	return 0
}

func TestPublishBatchChecksEveryAck(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	const n = 1000
	msg := func(i int) *nats.Msg { return withID("jobs.batch", fmt.Sprintf("b-%d", i%(n/2)), "{}") }
	res, err := p.PublishBatch(context.Background(), n, 64, 5*time.Second, msg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != n || res.Duplicates != n/2 {
		t.Fatalf("PublishBatch = %+v, want %d acknowledged of which %d duplicates", res, n, n/2)
	}
	if got := enginetest.StreamMsgs(t, e, queue.JobsStream); got != n/2 {
		t.Fatalf("JOBS holds %d jobs, want %d", got, n/2)
	}
	// A message no stream takes fails the batch: its acknowledgement is
	// checked, not assumed.
	bad := func(i int) *nats.Msg {
		if i == 10 {
			return withID("nostream.x", "x", "{}")
		}
		return withID("jobs.batch", fmt.Sprintf("c-%d", i), "{}")
	}
	res, err = p.PublishBatch(context.Background(), 20, 64, 5*time.Second, bad)
	if !errors.Is(err, natsclient.ErrUnavailable) || res.Stored != 10 {
		t.Fatalf("PublishBatch with a bad message = %+v, %v; want 10 stored, then ErrUnavailable", res, err)
	}
}

func TestValidateURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"nats://127.0.0.1:4222", true},
		{"nats://a:4222,nats://b:4222", true},
		{"tls://user:pw@nats.example:4222", true},
		{"127.0.0.1:4222", true},
		{"ws://nats.example/path", true},
		{"", false},
		{"   ", false},
		{"http://nats.example:4222", false},
		{"nats://", false},
		{"nats://[::1", false},
		{"nats://host:99999", false},
		{"nats://host:x", false},
		{"nats://host:4222/path", false},
		{"nats://a:4222,,nats://b:4222", false},
		{"not a url at all", false},
	} {
		t.Run(tt.url, func(t *testing.T) {
			if err := natsclient.ValidateURL(tt.url); (err == nil) != tt.ok {
				t.Fatalf("ValidateURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}
