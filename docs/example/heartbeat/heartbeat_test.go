package heartbeat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/docs/example/heartbeat"
	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
)

var discard = slog.New(slog.DiscardHandler)

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     heartbeat.Config
		wantErr string
	}{
		{"no instance", heartbeat.Config{Every: time.Second}, "heartbeat.instance"},
		{"dotted instance", heartbeat.Config{Instance: "box.local", Every: time.Second}, "heartbeat.instance"},
		{"blank in instance", heartbeat.Config{Instance: "my box", Every: time.Second}, "heartbeat.instance"},
		{"no interval", heartbeat.Config{Instance: "box"}, "heartbeat.every"},
		{"negative interval", heartbeat.Config{Instance: "box", Every: -time.Second}, "heartbeat.every"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			beat, err := heartbeat.New(&fakePublisher{}, tt.cfg, discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || beat != nil {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

// The host name may be dotted (box.local on a Mac); the default must still
// be a valid change key, or `go run` would exit 2 on such machines.
func TestDefaultConfigIsValid(t *testing.T) {
	cfg := heartbeat.DefaultConfig()
	if _, err := heartbeat.New(&fakePublisher{}, cfg, discard); err != nil {
		t.Fatalf("New(DefaultConfig() = %+v): %v", cfg, err)
	}
}

// The heartbeat inside a real host, publishing into a real change feed
// stream, stopped by SIGTERM like a pod.
func TestBeatsLandOnTheChangeFeedUntilSIGTERM(t *testing.T) {
	eng := startEngine(t)
	pub, err := natsclient.NewPublisher(eng.ClientURL(), discard)
	if err != nil {
		t.Fatal(err)
	}
	beat, err := heartbeat.New(pub, heartbeat.Config{Instance: "box-1", Every: 10 * time.Millisecond}, discard)
	if err != nil {
		t.Fatal(err)
	}
	h, signals := newHost()
	h.Add("nats-publisher", pub)
	h.AddBackground("heartbeat", beat)
	done := runHost(t, h)

	stream, err := eng.JetStream().Stream(context.Background(), changefeed.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "three beats in the stream", func() bool {
		info, err := stream.Info(context.Background())
		return err == nil && info.State.Msgs >= 3
	})
	signals.Send(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("Run after SIGTERM = %v, want nil (exit 0)", err)
	}

	// The service has returned: what the stream holds now is every beat.
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= info.State.Msgs; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		var b heartbeat.Beat
		if err := json.Unmarshal(m.Data, &b); err != nil {
			t.Fatalf("beat %d: %v: %s", seq, err, m.Data)
		}
		if b.Instance != "box-1" || b.Seq != int(seq) || b.At.IsZero() {
			t.Errorf("beat %d = %+v, want instance box-1, seq %d and a time", seq, b, seq)
		}
		// The stream files changes.<key> under changes.<partition>.<key>.
		if !strings.HasPrefix(m.Subject, "changes.") || !strings.HasSuffix(m.Subject, ".box-1") {
			t.Errorf("beat %d subject = %q, want changes.<partition>.box-1", seq, m.Subject)
		}
	}
}

// NATS away for a while: beats fail, the application keeps running, and the
// beats resume with a gap in Seq.
func TestFailedBeatsDoNotStopTheApplication(t *testing.T) {
	pub := &fakePublisher{failFirst: 2, published: make(chan heartbeat.Beat, 100)}
	beat, err := heartbeat.New(pub, heartbeat.Config{Instance: "box-1", Every: 5 * time.Millisecond}, discard)
	if err != nil {
		t.Fatal(err)
	}
	h, signals := newHost()
	h.AddBackground("heartbeat", beat)
	done := runHost(t, h)

	select {
	case b := <-pub.published:
		if b.Seq != 3 {
			t.Errorf("first beat published = %+v, want seq 3 after two failures", b)
		}
	case <-h.Lifetime().Stopping():
		t.Fatal("the application is stopping after failed beats")
	case <-time.After(10 * time.Second):
		t.Fatal("no beat published after the failures")
	}
	signals.Send(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("Run after SIGTERM = %v, want nil", err)
	}
}

// A beat in flight when the host stops is abandoned at once: the service
// honours its context instead of holding the shutdown for a whole interval.
func TestStopInterruptsABeatInFlight(t *testing.T) {
	pub := &fakePublisher{block: true, published: make(chan heartbeat.Beat, 1)}
	beat, err := heartbeat.New(pub, heartbeat.Config{Instance: "box-1", Every: time.Hour}, discard)
	if err != nil {
		t.Fatal(err)
	}
	h, signals := newHost()
	h.AddBackground("heartbeat", beat)
	done := runHost(t, h)
	<-pub.published // the first beat is in flight
	signals.Send(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM = %v, want nil", err)
		}
	case <-time.After(10 * time.Second): // twice the shutdown timeout
		t.Fatal("the host did not stop while a beat was in flight")
	}
}

// newHost returns a host whose signals the test sends by hand, with a short
// shutdown timeout so that a stuck service fails the test quickly.
func newHost() (*host.Host, *host.ManualSignals) {
	signals := &host.ManualSignals{}
	return host.New(host.Options{
		ShutdownTimeout: 5 * time.Second,
		Lifetime:        host.NewConsoleLifetime(signals, nil),
	}), signals
}

// runHost runs h until it returns, waits for it to have started and returns
// the channel Run's result arrives on.
func runHost(tb testing.TB, h *host.Host) <-chan error {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	select {
	case <-h.Lifetime().Started():
	case err := <-done:
		tb.Fatalf("host stopped while starting: %v", err)
	case <-time.After(10 * time.Second):
		tb.Fatal("host did not start")
	}
	tb.Cleanup(func() { h.Lifetime().StopApplication() })
	return done
}

// startEngine runs an embedded JetStream on a free loopback port with the
// change feed's stream, as the worker creates it, until the test ends.
func startEngine(tb testing.TB) *engine.Engine {
	tb.Helper()
	eng := enginetest.Start(tb, "", "127.0.0.1:0", discard)
	sc := changefeed.StreamConfig(changefeed.DefaultConfig())
	if _, err := eng.JetStream().CreateOrUpdateStream(context.Background(), sc); err != nil {
		tb.Fatal(err)
	}
	return eng
}

// fakePublisher fails its first failFirst calls, or blocks each call until
// its context ends, and sends the beats it was given to published while
// there is room.
type fakePublisher struct {
	failFirst int
	block     bool
	published chan heartbeat.Beat

	mu    sync.Mutex
	calls int
}

func (p *fakePublisher) Publish(ctx context.Context, subject string, data []byte) error {
	p.mu.Lock()
	p.calls++
	calls := p.calls
	p.mu.Unlock()
	if calls <= p.failFirst {
		return fmt.Errorf("publish %s: %w", subject, natsclient.ErrUnavailable)
	}
	var b heartbeat.Beat
	if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	select {
	case p.published <- b:
	default: // the test has seen enough beats
	}
	if p.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
