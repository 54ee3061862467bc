package runtest_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/runtest"
)

// recorder is a testing.TB whose Fatalf records the failure and ends the
// calling goroutine, as the real one does, without failing the test.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on a goroutine of its own, so that the
// recorder's Fatalf can end it, and returns the failure, if any, and how long
// f ran.
func run(f func(tb testing.TB)) (failure string, took time.Duration) {
	r := &recorder{}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.failure, time.Since(start)
}

// after returns a condition that holds from d on.
func after(d time.Duration) func() bool {
	at := time.Now().Add(d)
	return func() bool { return !time.Now().Before(at) }
}

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var calls atomic.Int32
	failure, took := run(func(tb testing.TB) {
		runtest.Poll(ctx, tb, "the third call", func() bool { return calls.Add(1) == 3 })
	})
	if failure != "" {
		t.Fatalf("Poll failed: %s", failure)
	}
	if got, want := calls.Load(), int32(3); got != want {
		t.Errorf("cond called %d times, want %d", got, want)
	}
	if took > 5*time.Second {
		t.Errorf("Poll took %s for a condition true on the third call", took)
	}
}

func TestPollFailsWhenTheContextEnds(t *testing.T) {
	const deadline = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	failure, took := run(func(tb testing.TB) {
		runtest.Poll(ctx, tb, "a state never reached", func() bool { return false })
	})
	if want := "waiting for a state never reached: context deadline exceeded"; failure != want {
		t.Errorf("failure = %q, want %q", failure, want)
	}
	if took < deadline {
		t.Errorf("Poll failed after %s, before the context's %s deadline", took, deadline)
	}
}

func TestPollPassesAStateReachedWithTheContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if failure, _ := run(func(tb testing.TB) {
		runtest.Poll(ctx, tb, "a state reached", func() bool { return true })
	}); failure != "" {
		t.Errorf("Poll failed for a condition that holds: %s", failure)
	}
}

func TestEventuallyReturnsHowLongTheStateTook(t *testing.T) {
	const comes = 100 * time.Millisecond
	var took time.Duration
	failure, _ := run(func(tb testing.TB) {
		took = runtest.Eventually(tb, 10*time.Second, "the state", after(comes))
	})
	if failure != "" {
		t.Fatalf("Eventually failed: %s", failure)
	}
	if took < comes || took > 5*time.Second {
		t.Errorf("Eventually returned %s for a state that came after %s", took, comes)
	}
}

func TestEventuallyFailsAtItsDeadline(t *testing.T) {
	const within = 80 * time.Millisecond
	failure, took := run(func(tb testing.TB) {
		runtest.Eventually(tb, within, "a state too late", after(time.Hour))
	})
	if want := "a state too late: not within 80ms"; failure != want {
		t.Errorf("failure = %q, want %q", failure, want)
	}
	if took < within {
		t.Errorf("Eventually failed after %s, before its %s", took, within)
	}
}
