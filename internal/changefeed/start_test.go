package changefeed_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// apiPrefix is where the processor under test sends its JetStream API
// requests; a proxy there injects the faults of a cluster electing leaders
// and forwards the rest to $JS.API.
const apiPrefix = "FAULTY.API"

// apiProxy serves apiPrefix on nc: it shows each request to hook, which
// answers it itself (forward false) or names the reply subject to forward
// it with, and forwards it to the JetStream API (key-value writes to their
// own subject), so that the server answers the client directly (pulls
// included). A nil hook forwards every request as it came.
func apiProxy(tb testing.TB, nc *nats.Conn, hook func(subject string, m *nats.Msg) (reply string, forward bool)) {
	tb.Helper()
	sub, err := nc.Subscribe(apiPrefix+".>", func(m *nats.Msg) {
		subject := strings.TrimPrefix(m.Subject, apiPrefix+".")
		reply, forward := m.Reply, true
		if hook != nil {
			reply, forward = hook(subject, m)
		}
		if !forward {
			return
		}
		if !strings.HasPrefix(subject, "$KV.") {
			subject = "$JS.API." + subject
		}
		if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Header: m.Header, Data: m.Data}); err != nil {
			tb.Errorf("forward %s: %v", m.Subject, err)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
}

// proxiedJetStream is a JetStream client of s, on a connection of its own,
// that sends its API requests to apiPrefix.
func proxiedJetStream(tb testing.TB, s *server.Server) jetstream.JetStream {
	tb.Helper()
	nc, _ := connect(tb, s)
	js, err := jetstream.NewWithAPIPrefix(nc, apiPrefix)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// faultyProxy answers the first failures requests with "503 JetStream
// system temporarily unavailable" (err_code 10008) and forwards the others.
func faultyProxy(tb testing.TB, nc *nats.Conn, failures int64) *atomic.Int64 {
	tb.Helper()
	var answered atomic.Int64
	apiProxy(tb, nc, func(_ string, m *nats.Msg) (string, bool) {
		if answered.Add(1) <= failures {
			_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`))
			return "", false
		}
		return m.Reply, true
	})
	return &answered
}

// TestStartRetriesTransientErrors: while nothing answers JetStream API
// requests (no responders), then while they are answered 503/10008, Start
// keeps trying and readiness reports why; once JetStream answers, Start
// returns and the feed works.
func TestStartRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	nc, js := connect(t, s)
	pjs := proxiedJetStream(t, s)
	r := newRecorder("")
	p, err := changefeed.New(testConfig("a"), func() jetstream.JetStream { return pjs }, r.handle, nil, testLog(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- p.Start(context.Background()) }()
	t.Cleanup(func() { _ = p.Stop(context.Background()) })

	runtest.Eventually(t, 5*time.Second, "readiness reports no responders", func() bool {
		err := p.Ready()
		return err != nil && strings.Contains(err.Error(), "starting") && strings.Contains(err.Error(), "no responders")
	})
	answered := faultyProxy(t, nc, 3)
	runtest.Eventually(t, 5*time.Second, "readiness reports 10008", func() bool {
		err := p.Ready()
		return err != nil && strings.Contains(err.Error(), "10008")
	})
	if err := receive(t, started, 10*time.Second, "Start"); err != nil {
		t.Fatalf("Start = %v after transient errors, want nil", err)
	}
	if n := answered.Load(); n <= 3 {
		t.Fatalf("proxy answered %d requests, want the failures and more", n)
	}
	runtest.Eventually(t, 5*time.Second, "ready and owning every partition", func() bool { return p.Ready() == nil && len(p.Owned()) == 16 })
	publish(t, js, "k", "1")
	runtest.Eventually(t, 5*time.Second, "change handled", func() bool { return len(r.handled()) == 1 })
}

// TestStartGivesUpWhenItsContextEnds: with JetStream never answering, Start
// returns when the start phase's context ends, naming the last error.
func TestStartGivesUpWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	pjs := proxiedJetStream(t, s)
	p, err := changefeed.New(testConfig("a"), func() jetstream.JetStream { return pjs }, ignore, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = p.Start(ctx)
	if !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want no responders and the context's deadline", err)
	}
}

// TestRenewalWhoseAnswerIsLostKeepsTheLease: the server applies a renewal
// but its answer never arrives (as when a connection drops or the request
// times out just after the server wrote it). The next renewal names a
// revision that is no longer the latest; the processor must find that the
// lease is still its own and keep it, not give it up as taken over.
func TestRenewalWhoseAnswerIsLostKeepsTheLease(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	nc, _ := connect(t, s)
	var dropped atomic.Int64
	lease0 := "$KV." + changefeed.LeaseBucket + ".0"
	apiProxy(t, nc, func(subject string, m *nats.Msg) (string, bool) {
		if subject == lease0 && m.Header.Get("Nats-Expected-Last-Subject-Sequence") != "" && dropped.Load() < 0 {
			dropped.Add(1)
			return "", true // applied, unanswered
		}
		return m.Reply, true
	})
	pjs := proxiedJetStream(t, s)
	// Longer timings than the other tests: this one is about a lost
	// answer, not about renewals landing in time on a busy machine.
	cfg := testConfig("a")
	cfg.LeaseTTL, cfg.RenewInterval = 2*testTTL, 2*testRenew
	p, err := changefeed.New(cfg, func() jetstream.JetStream { return pjs }, ignore, nil, testLog(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	runtest.Eventually(t, 5*time.Second, "owns all", func() bool { return len(p.Owned()) == 16 })

	dropped.Store(-1) // drop the answer to the next renewal of lease 0
	runtest.Eventually(t, 5*time.Second, "a renewal answer dropped", func() bool { return dropped.Load() == 0 })
	deadline := time.Now().Add(2 * cfg.LeaseTTL)
	for time.Now().Before(deadline) {
		if got := p.Owned(); len(got) != 16 {
			t.Fatalf("owns %v after a renewal's answer was lost, want all 16 kept", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
