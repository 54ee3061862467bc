package changefeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/runtest"
)

// A processor whose server stops answering (frozen, or behind a partition
// that drops packets) while a change is in flight cannot release its leases
// or have the change acknowledged. Stop must not wait for that server until
// its deadline (30 s here, the host's default): it gives up within the ping
// bound plus the graces of a late stop, cancels the change, and reports the
// leases left to lapse. Nothing is lost: once they lapse, a peer takes
// every partition and handles the change again.
func TestStopWithServerSilentReturnsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("silences a NATS server")
	}
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	sil, silenced := runtest.SilenceURL(t, s.ClientURL())
	nc, err := nats.Connect(silenced, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	silentJS, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig("a")
	started := make(chan changefeed.Change, 1)
	cancelled := make(chan struct{})
	a, err := changefeed.New(cfg, func() jetstream.JetStream { return silentJS }, func(ctx context.Context, c changefeed.Change) error {
		started <- c
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, nil, testLog(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, 5*time.Second, "a owns every partition", func() bool { return len(a.Owned()) == cfg.Partitions })
	publish(t, js, "k", "1")
	c := receive(t, started, 5*time.Second, "handler start")

	sil.Silence(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	err = a.Stop(ctx)
	took := time.Since(began)
	// The ping, then releaseGrace (1 s) for leaving and for each lease's
	// confirmation and release, the leases in parallel; 1.5 s of slack.
	if bound := natsclient.SilentBound + 3*time.Second + 1500*time.Millisecond; took > bound {
		t.Errorf("Stop took %s with the server silent, want within %s", took.Round(time.Millisecond), bound)
	}
	if err == nil {
		t.Error("Stop = nil, want it to report the leases left to lapse")
	}
	t.Logf("Stop returned after %s: %v", took.Round(time.Millisecond), err)
	receive(t, cancelled, 5*time.Second, "the in-flight change's cancellation")

	handled := make(chan changefeed.Change, 1)
	b, _ := startProcessor(t, s, testConfig("b"), func(_ context.Context, c changefeed.Change) error {
		select {
		case handled <- c:
		default:
		}
		return nil
	}, nil)
	runtest.Eventually(t, 5*time.Second, "b owns every partition once a's leases lapsed", func() bool {
		return len(b.Owned()) == cfg.Partitions
	})
	if got := receive(t, handled, 5*time.Second, "the change handled by b"); got.Seq != c.Seq {
		t.Errorf("b handled change %d first, want %d, the one a never finished", got.Seq, c.Seq)
	}
}
