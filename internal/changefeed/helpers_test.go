package changefeed_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
)

// Short durations for tests: the lease TTL is a multiple of the renew
// interval, so a dead owner's lease is judged expired within TTL + renew.
//
// The TTL bounds how long the whole test process may stand still (every
// goroutine, the embedded server's too, descheduled or stopped by the
// garbage collector) before its owners rightly give their leases up: a
// renewal must land within the usable 0.9 × TTL. On a 2-core machine
// running other packages' tests beside this one, such stalls last a few
// hundred milliseconds, which a 400ms TTL did not survive (all leases of
// both processors lapsed at once, and the tests that count on keeping them
// failed). A 1s TTL keeps every test's figure a multiple of the configured
// durations and survives stalls up to ~0.9s.
const (
	testTTL   = time.Second
	testRenew = testTTL / 4
	// slack covers scheduling and round trips on a loaded machine under
	// -race: a few renew intervals' worth of balancing steps.
	slack = 6 * testRenew
)

// startServer runs an embedded JetStream server on a random loopback port.
func startServer(tb testing.TB) *server.Server {
	tb.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		tb.Fatalf("new server: %v", err)
	}
	s.Start()
	tb.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		tb.Fatal("server not ready")
	}
	return s
}

// connect opens a connection of its own, so that a test can cut one
// processor off by closing it.
func connect(tb testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

func testConfig(instance string) changefeed.Config {
	cfg := changefeed.DefaultConfig()
	cfg.Instance = instance
	cfg.LeaseTTL = testTTL
	cfg.RenewInterval = testRenew
	cfg.AckWait = 5 * time.Second
	cfg.RetryDelay = 20 * time.Millisecond
	cfg.FetchWait = 50 * time.Millisecond
	cfg.MaxAge = 0
	return cfg
}

// startProcessor starts a processor on a connection of its own and stops
// it when the test ends.
func startProcessor(tb testing.TB, s *server.Server, cfg changefeed.Config, h changefeed.Handler, m *changefeed.Metrics) (*changefeed.Processor, *nats.Conn) {
	tb.Helper()
	nc, js := connect(tb, s)
	p, err := changefeed.New(cfg, func() jetstream.JetStream { return js }, h, m, testLog(tb, cfg.Instance))
	if err != nil {
		tb.Fatalf("new processor: %v", err)
	}
	if err := p.Start(context.Background()); err != nil {
		tb.Fatalf("start %s: %v", cfg.Instance, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Stop(ctx) // fails for a processor whose connection a test closed
	})
	return p, nc
}

// ignore is a handler for tests about leases only.
func ignore(context.Context, changefeed.Change) error { return nil }

func publish(tb testing.TB, js jetstream.JetStream, key, data string) {
	tb.Helper()
	subject, err := changefeed.Subject(key)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), subject, []byte(data)); err != nil {
		tb.Fatalf("publish %s: %v", subject, err)
	}
}

// counts returns how many partitions each processor owns.
func counts(ps ...*changefeed.Processor) []int {
	n := make([]int, len(ps))
	for i, p := range ps {
		n[i] = len(p.Owned())
	}
	return n
}

// partitionedOnce reports whether the processors together own every
// partition exactly once.
func partitionedOnce(partitions int, ps ...*changefeed.Processor) bool {
	seen := map[int]bool{}
	for _, p := range ps {
		for _, part := range p.Owned() {
			if seen[part] {
				return false
			}
			seen[part] = true
		}
	}
	return len(seen) == partitions
}

// testLog logs through tb when CHANGEFEED_TEST_LOG is set, else nowhere.
func testLog(tb testing.TB, instance string) *slog.Logger {
	if os.Getenv("CHANGEFEED_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", instance)
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
