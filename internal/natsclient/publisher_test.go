package natsclient_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ensureStreams creates JOBS and DLQ as the worker would.
func ensureStreams(tb testing.TB, e *engine.Engine) {
	tb.Helper()
	for _, sc := range []jetstream.StreamConfig{queue.JobsStreamConfig(1), queue.DLQStreamConfig(1)} {
		if _, err := e.JetStream().CreateOrUpdateStream(context.Background(), sc); err != nil {
			tb.Fatal(err)
		}
	}
}

func newPublisher(tb testing.TB, url string) *natsclient.Publisher {
	tb.Helper()
	p, err := natsclient.NewPublisher(url, testLogger())
	if err != nil {
		tb.Fatalf("NewPublisher(%q): %v", url, err)
	}
	tb.Cleanup(p.Close)
	return p
}

func TestPublisherStoresMessage(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{"id":"1"}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := enginetest.StreamMsgs(t, e, queue.JobsStream); got != 1 {
		t.Fatalf("JOBS holds %d messages, want 1", got)
	}
}

func TestPublisherWithoutServerIsUnavailable(t *testing.T) {
	p := newPublisher(t, "nats://"+runtest.FreeAddr(t))
	if err := p.Ready(); !errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("Ready() = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.Publish(ctx, "jobs.ping", []byte(`{}`))
	if !errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("Publish() = %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Publish waited for the context instead of failing at once")
	}
}

func TestPublisherWithoutStreamIsUnavailable(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`))
	if !errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("Publish() = %v, want ErrUnavailable", err)
	}
}

func TestPublisherConnectsWhenServerComesUp(t *testing.T) {
	addr := runtest.FreeAddr(t)
	p := newPublisher(t, "nats://"+addr)
	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`)); !errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("Publish() before the server = %v, want ErrUnavailable", err)
	}

	e := enginetest.Start(t, "", addr, nil)
	ensureStreams(t, e)
	enginetest.Eventually(t, "publish to succeed", func() bool {
		return p.Publish(context.Background(), "jobs.ping", []byte(`{}`)) == nil
	})
}

func TestPublisherAfterStopIsUnavailable(t *testing.T) {
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	enginetest.Eventually(t, "publisher connected", func() bool { return p.Ready() == nil })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`)); !errors.Is(err, natsclient.ErrUnavailable) {
		t.Fatalf("Publish() after Stop = %v, want ErrUnavailable", err)
	}
}

func TestPublishRejectsBadSubjects(t *testing.T) {
	p := newPublisher(t, "nats://"+runtest.FreeAddr(t))
	for _, subject := range []string{"", "jobs.*", "jobs.>", "jobs..x", ".jobs", "jobs.", "jobs.a b"} {
		t.Run(subject, func(t *testing.T) {
			err := p.Publish(context.Background(), subject, nil)
			if !errors.Is(err, natsclient.ErrInvalidSubject) {
				t.Fatalf("Publish(%q) = %v, want ErrInvalidSubject", subject, err)
			}
		})
	}
}

func TestNewPublisherRejectsMalformedURL(t *testing.T) {
	if _, err := natsclient.NewPublisher("nats://[::1", testLogger()); err == nil {
		t.Fatal("NewPublisher accepted a malformed URL")
	}
}
