package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

// connectEngine connects an engine to the NATS server at url, as the worker
// does to an external cluster; it is stopped at the end of the test unless
// the test stops it first.
func connectEngine(tb testing.TB, url string) *engine.Engine {
	tb.Helper()
	cfg := engine.DefaultConfig()
	cfg.URL = url
	e, err := engine.New(cfg, testLogger())
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeEngine(tb, e) })
	return e
}

// closeEngine stops e as the host does after the processors, with what is
// left of its deadline: the connection is closed, and what it still held
// for a server it could not reach is gone. A silent server cannot confirm
// the drain; that error is the engine's, not under test here.
func closeEngine(tb testing.TB, e *engine.Engine) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		tb.Logf("stop engine: %v", err)
	}
}

// serverOpts are the options of a loopback JetStream server storing in dir.
func serverOpts(dir string) *server.Options {
	return &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
}

// TestStopWithServerUnreachableReturnsPromptly stops a processor whose NATS
// server became unreachable while two handlers were running (one to succeed,
// one to fail for good, to be dead-lettered) and six fetched jobs waited in
// its buffer, as when the whole cluster is down at a rollout:
// either the server is gone (the connection is down) or it is silent (the
// connection is still up: a frozen node, a partition). Stop can neither hand
// anything back nor have an acknowledgement or a dead letter confirmed, and
// must not wait for that beyond StopConfirmWait after the handlers finished,
// far before the host's deadline. Nothing may be lost: once the server
// answers again, every job is done, at most the one whose acknowledgement
// never reached it twice.
func TestStopWithServerUnreachableReturnsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	for _, tt := range []struct {
		name string
		// connected is the connection's state Stop must cope with: down
		// after the server shut down, up through a silencer.
		connected bool
	}{{
		name: "server down",
	}, {
		name:      "server silent",
		connected: true,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := serverOpts(dir)
			srv := runServer(t, opts)
			url := srv.ClientURL()
			var sil *runtest.Silencer
			if tt.connected {
				sil, url = runtest.SilenceURL(t, srv.ClientURL())
			}
			e := connectEngine(t, url)
			cut := func() {
				if tt.connected {
					sil.Silence(nil)
					return
				}
				srv.Shutdown()
				srv.WaitForShutdown()
				eventually(t, "the connection lost", func() bool { return e.Conn().Status() == nats.RECONNECTING })
			}
			back := func() string {
				if tt.connected {
					return srv.ClientURL()
				}
				srv = runServer(t, opts)
				return srv.ClientURL()
			}
			stopUnreachable(t, e, cut, back, tt.connected)
		})
	}
}

// stopUnreachable runs the scenario of
// TestStopWithServerUnreachableReturnsPromptly on e: cut makes the server
// unreachable, back brings it back and returns its URL.
func stopUnreachable(t *testing.T, e *engine.Engine, cut func(), back func() string, connected bool) {
	cfg := fastConfig()
	cfg.Concurrency, cfg.Prefetch = 2, 8
	// The jobs left unacknowledged come back this long after their delivery.
	cfg.AckWait = 3 * time.Second
	// Each worker tries this long to have its job's acknowledgement
	// confirmed, in parallel with the others. The slack covers scheduling on
	// a loaded machine.
	cfg.StopConfirmWait = 500 * time.Millisecond
	const (
		jobs  = 20
		slack = time.Second
		// deadline stands for host.shutdown_timeout, far longer.
		deadline = 5 * time.Second
	)
	var rec recorder
	running := make(chan struct{}, jobs)
	release := make(chan struct{})
	var failed atomic.Bool
	first := newProcessor(t, e, cfg)
	first.Handle("jobs.down", func(ctx context.Context, msg queue.Message) error {
		running <- struct{}{}
		<-release
		if failed.CompareAndSwap(false, true) {
			// Its copy to DLQ cannot be confirmed either.
			return queue.Permanent(errors.New("malformed job"))
		}
		return rec.handle(ctx, msg)
	})
	publish(t, e, "jobs.down", jobs, jobBody)
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-running
	<-running
	eventually(t, "the buffer full", func() bool { return ackPending(t, e) == cfg.Prefetch })

	cut()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- first.Stop(ctx) }()
	eventually(t, "Stop to begin", func() bool { return first.Ready() != nil })
	released := time.Now()
	close(release)
	err := <-stopped
	afterRelease, took := time.Since(released), time.Since(began)
	t.Logf("Stop returned %s after the handlers were released (%s in all): %v",
		afterRelease.Round(time.Millisecond), took.Round(time.Millisecond), err)
	if bound := cfg.StopConfirmWait + slack; afterRelease > bound {
		t.Errorf("Stop returned %s after the handlers finished (err %v), want within StopConfirmWait %s + %s",
			afterRelease.Round(time.Millisecond), err, cfg.StopConfirmWait, slack)
	}
	// The process exits 1: the job done and the one failed will come again.
	if want := fmt.Sprintf("%d jobs finished while stopping", cfg.Concurrency); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Stop() = %v, want an error counting the unconfirmed jobs (%q)", err, want)
	}
	if got := e.Conn().IsConnected(); got != connected {
		t.Errorf("connection up = %t when Stop returned, want %t: not the case under test", got, connected)
	}
	if got, want := rec.calls(), cfg.Concurrency-1; got != want {
		t.Fatalf("first processor finished %d jobs, want %d: the running ones but the failed one", got, want)
	}
	closeEngine(t, e)

	// The server answers again with its store; a new worker consumes, and
	// succeeds with the job that failed (its input fixed, say).
	e = connectEngine(t, back())
	second := newProcessor(t, e, cfg)
	second.Handle("jobs.down", rec.handle)
	second.run(t)
	eventually(t, "JOBS empty", func() bool { return streamMsgs(t, e, queue.JobsStream) == 0 })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var twice int
	for _, n := range rec.seqs {
		twice += n - 1
	}
	t.Logf("%d jobs, %d done, %d of them twice", jobs, len(rec.seqs), twice)
	if len(rec.seqs) != jobs {
		t.Errorf("%d of %d jobs done: %d lost", len(rec.seqs), jobs, jobs-len(rec.seqs))
	}
	if want := cfg.Concurrency - 1; twice > want {
		t.Errorf("%d jobs done twice, want at most the %d done while the server was unreachable", twice, want)
	}
}

// An idle processor whose server is gone has nothing to hand back or
// acknowledge, and nothing can reach it through a connection that is down:
// Stop returns at once, not after StopConfirmWait.
func TestStopIdleWithServerDownReturnsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("shuts a NATS server down")
	}
	srv := runServer(t, serverOpts(t.TempDir()))
	e := connectEngine(t, srv.ClientURL())
	cfg := fastConfig()
	cfg.StopConfirmWait = 5 * time.Second
	p := newProcessor(t, e, cfg)
	p.Handle("jobs.idle", (&recorder{}).handle)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, "the connection lost", func() bool { return e.Conn().Status() == nats.RECONNECTING })

	// A worker looks every refillCheck (20ms); a second covers a loaded
	// machine and is far below StopConfirmWait.
	stopCleanly(t, p, 2*cfg.StopConfirmWait, time.Second, "nothing was left unconfirmed")
}

// stopCleanly stops p with a deadline and fails the test unless Stop
// returns nil within bound; why says why nil is due.
func stopCleanly(t *testing.T, p *testProcessor, deadline, bound time.Duration, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	began := time.Now()
	err := p.Stop(ctx)
	took := time.Since(began)
	t.Logf("Stop returned %s after it began: %v", took.Round(time.Millisecond), err)
	if err != nil {
		t.Errorf("Stop() = %v, want nil: %s", err, why)
	}
	if took > bound {
		t.Errorf("Stop took %s, want within %s", took.Round(time.Millisecond), bound)
	}
}

// A processor whose consumer went away consumes again once it has created
// the consumer anew; Stop must not wait for that creation, which a server
// that does not answer holds until its own timeout (10 s).
func TestStopWhileConsumingAgainWithServerSilentReturnsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("silences a NATS server")
	}
	srv := runServer(t, serverOpts(t.TempDir()))
	sil, silenced := runtest.SilenceURL(t, srv.ClientURL())
	e := connectEngine(t, silenced)
	p := newProcessor(t, e, fastConfig())
	p.Handle("jobs.again", (&recorder{}).handle)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Deleted while a pull waits, the iterator hears of it at once.
	eventually(t, "a pull waiting", func() bool {
		c, err := e.JetStream().Consumer(context.Background(), queue.JobsStream, queue.JobsConsumer)
		return err == nil && c.CachedInfo().NumWaiting > 0
	})
	if err := e.JetStream().DeleteConsumer(context.Background(), queue.JobsStream, queue.JobsConsumer); err != nil {
		t.Fatal(err)
	}
	// The processor notices at once, then pauses a second before creating
	// the consumer again: the server goes silent meanwhile.
	eventually(t, "the processor not consuming", func() bool {
		err := p.Ready()
		return err != nil && strings.Contains(err.Error(), "not consuming")
	})
	swallowed := sil.Silence([]byte("$JS.API.STREAM."))
	select {
	case <-swallowed:
	case <-time.After(10 * time.Second):
		t.Fatal("the processor never asked to create its stream again")
	}

	stopCleanly(t, p, 5*time.Second, time.Second, "no job was running")
}
