package queue_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/queue"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newPublisher(tb testing.TB, url string) *queue.Publisher {
	tb.Helper()
	p, err := queue.NewPublisher(url, testLogger())
	if err != nil {
		tb.Fatalf("NewPublisher(%q): %v", url, err)
	}
	tb.Cleanup(p.Close)
	return p
}

func TestPublisherStoresMessage(t *testing.T) {
	e := startEngineIn(t, t.TempDir(), "127.0.0.1:0")
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{"id":"1"}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := streamMsgs(t, e, queue.JobsStream); got != 1 {
		t.Fatalf("JOBS holds %d messages, want 1", got)
	}
}

func TestPublisherWithoutServerIsUnavailable(t *testing.T) {
	p := newPublisher(t, "nats://"+freeAddr(t))
	if err := p.Ready(); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Ready() = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.Publish(ctx, "jobs.ping", []byte(`{}`))
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish() = %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Publish waited for the context instead of failing at once")
	}
}

func TestPublisherWithoutStreamIsUnavailable(t *testing.T) {
	e := startEngineIn(t, t.TempDir(), "127.0.0.1:0")
	p := newPublisher(t, e.ClientURL())
	eventually(t, "publisher connected", func() bool { return p.Ready() == nil })

	err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`))
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish() = %v, want ErrUnavailable", err)
	}
}

func TestPublisherConnectsWhenServerComesUp(t *testing.T) {
	addr := freeAddr(t)
	p := newPublisher(t, "nats://"+addr)
	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`)); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish() before the server = %v, want ErrUnavailable", err)
	}

	e := startEngineIn(t, t.TempDir(), addr)
	ensureStreams(t, e)
	eventually(t, "publish to succeed", func() bool {
		return p.Publish(context.Background(), "jobs.ping", []byte(`{}`)) == nil
	})
}

func TestPublisherAfterStopIsUnavailable(t *testing.T) {
	e := startEngineIn(t, t.TempDir(), "127.0.0.1:0")
	ensureStreams(t, e)
	p := newPublisher(t, e.ClientURL())
	eventually(t, "publisher connected", func() bool { return p.Ready() == nil })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Publish(context.Background(), "jobs.ping", []byte(`{}`)); !errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish() after Stop = %v, want ErrUnavailable", err)
	}
}

func TestPublishRejectsBadSubjects(t *testing.T) {
	p := newPublisher(t, "nats://"+freeAddr(t))
	for _, subject := range []string{"", "jobs.*", "jobs.>", "jobs..x", ".jobs", "jobs.", "jobs.a b"} {
		t.Run(subject, func(t *testing.T) {
			err := p.Publish(context.Background(), subject, nil)
			if !errors.Is(err, queue.ErrInvalidSubject) {
				t.Fatalf("Publish(%q) = %v, want ErrInvalidSubject", subject, err)
			}
		})
	}
}

func TestNewPublisherRejectsMalformedURL(t *testing.T) {
	if _, err := queue.NewPublisher("nats://[::1", testLogger()); err == nil {
		t.Fatal("NewPublisher accepted a malformed URL")
	}
}
