package runtest

import (
	"context"
	"testing"
	"time"
)

// interval is how often Poll and Eventually check their condition: often
// enough that a test waiting for a state sees it within a few milliseconds,
// seldom enough that a condition doing I/O (a stream's info, a /metrics
// scrape) does not load a busy machine.
const interval = 5 * time.Millisecond

// Poll checks cond every few milliseconds until it holds. When ctx ends
// first it fails tb, naming what it waited for. Use it where the test has
// one deadline for all its steps (a context with the test's timeout).
//
// cond is checked before ctx is, so a state already reached passes even
// with ctx done. Like tb.Fatalf, Poll must be called from the goroutine
// running the test.
func Poll(ctx context.Context, tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	if err := wait(ctx, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}

// Eventually checks cond every few milliseconds until it holds and returns
// how long that took, for tests that bound the time a state takes to come
// (a lease taken over within its TTL). It fails tb when within passes first.
// Like tb.Fatalf, it must be called from the goroutine running the test.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := wait(ctx, cond); err != nil {
		tb.Fatalf("%s: not within %s", what, within)
	}
	return time.Since(start)
}

// wait checks cond every interval until it holds or ctx ends, and then
// returns ctx's error.
func wait(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
