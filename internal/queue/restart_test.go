package queue_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/queue"
)

// runServer starts a NATS server for opts and shuts it down at the end of
// the test.
func runServer(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("NATS server not ready")
	}
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// TestProcessorResumesAfterServerLostItsPullRequests restarts the server
// the way a whole cluster comes back: clients reconnect before JetStream
// answers, so the pull request sent on reconnect comes back "no responders"
// and the consumer later holds no request of this replica. nats.go's
// iterator still counts that request as pending and would notice only by
// missed heartbeats, which it does not watch across the workers' short Next
// calls: the processor consumed nothing, forever, with jobs waiting. It must
// consume again within Config.StallBound of JetStream answering, and report
// not ready meanwhile.
func TestProcessorResumesAfterServerLostItsPullRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	dir := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	srv := runServer(t, opts)

	ecfg := engine.DefaultConfig()
	ecfg.URL = srv.ClientURL()
	e, err := engine.New(ecfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
	})

	cfg := fastConfig()
	p := newProcessor(t, e, cfg)
	var handled atomic.Int64
	p.Handle("jobs.restart", func(context.Context, queue.Message) error {
		handled.Add(1)
		return nil
	})
	p.run(t)
	publish(t, e, "jobs.restart", 1, jobBody)
	eventually(t, "the first job", func() bool { return handled.Load() == 1 })

	// The cluster goes down; it comes back without JetStream answering yet.
	port := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	back := *opts
	back.Port = port
	back.JetStream = false
	srv = runServer(t, &back)
	eventually(t, "the reconnect and the lost pull", func() bool {
		v, err := srv.Varz(nil)
		return err == nil && e.Conn().IsConnected() && v.InMsgs >= 1
	})

	if err := srv.EnableJetStream(&server.JetStreamConfig{StoreDir: dir}); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	const jobs = 5
	publish(t, e, "jobs.restart", jobs, jobBody)

	bound := cfg.StallBound()
	var sawStalled bool
	for handled.Load() < 1+jobs {
		if errors.Is(p.Ready(), queue.ErrStalled) {
			sawStalled = true
		}
		if time.Since(answered) > bound {
			t.Fatalf("%d of %d jobs handled %s after JetStream answered again, want all within %s (ready: %v)",
				handled.Load()-1, jobs, time.Since(answered).Round(time.Millisecond), bound, p.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(answered)
	t.Logf("consuming again %s after JetStream answered (bound %s)", took.Round(time.Millisecond), bound)
	if !sawStalled {
		t.Errorf("Ready never reported %v while the processor consumed nothing", queue.ErrStalled)
	}
	eventually(t, "readiness after resuming", func() bool { return p.Ready() == nil })
	// Stopped here, while the server it consumes from still runs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}
