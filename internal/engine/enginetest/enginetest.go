// Package enginetest runs real embedded JetStream engines for tests, so
// every package that talks to NATS tests against the real server, on
// loopback or in-process, with a store of its own.
package enginetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/runtest"
)

// Start runs an embedded engine until the test ends. It stores in dir
// (a new temporary directory when empty) and listens on addr: "" is
// in-process only, "127.0.0.1:0" any free loopback port (see
// Engine.ClientURL). log may be nil.
func Start(tb testing.TB, dir, addr string, log *slog.Logger) *engine.Engine {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := engine.DefaultConfig()
	cfg.StoreDir, cfg.Addr = dir, addr
	e, err := engine.New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			tb.Errorf("stop engine: %v", err)
		}
	})
	return e
}

// StreamMsgs returns the number of messages stream holds.
func StreamMsgs(tb testing.TB, e *engine.Engine, stream string) int {
	tb.Helper()
	s, err := e.JetStream().Stream(context.Background(), stream)
	if err != nil {
		tb.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return int(info.State.Msgs)
}

// Eventually is runtest.Eventually with the ten seconds the engine-backed
// tests allow a state to come: it polls cond until it holds, failing tb
// after ten seconds.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	runtest.Eventually(tb, 10*time.Second, what, cond)
}
