package changefeed_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// recorder is a handler that records the changes it is given and can hold
// the first change of a key until released.
type recorder struct {
	mu      sync.Mutex
	changes []changefeed.Change
	hold    string        // data of the change to hold
	started chan struct{} // closed when the held change reaches the handler
	release chan struct{}
}

func newRecorder(hold string) *recorder {
	return &recorder{hold: hold, started: make(chan struct{}), release: make(chan struct{})}
}

func (r *recorder) handle(_ context.Context, c changefeed.Change) error {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	first := string(c.Data) == r.hold && r.count(r.hold) == 1
	r.mu.Unlock()
	if first {
		close(r.started)
		<-r.release
	}
	return nil
}

// count returns how often data was handled; r.mu held.
func (r *recorder) count(data string) int {
	n := 0
	for _, c := range r.changes {
		if string(c.Data) == data {
			n++
		}
	}
	return n
}

func (r *recorder) handled() []changefeed.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

func data(cs []changefeed.Change) []string {
	var s []string
	for _, c := range cs {
		s = append(s, string(c.Data))
	}
	return s
}

// TestPausedProcessorNeitherHandlesNorAcksPastItsDeadline simulates a
// process stopped (SIGSTOP) beyond the lease TTL while a change is in its
// handler: the clock jumps by the TTL and no renewal has run since. The
// handler's change must not be acknowledged and the next change of the key,
// already fetched or not, must not reach the handler until a renewal (here
// a re-acquisition, since the lapsed leases are given up) proves the lease
// still this instance's; then both come in order, under a new fencing token.
func TestPausedProcessorNeitherHandlesNorAcksPastItsDeadline(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	r := newRecorder("1")
	p, _ := startProcessor(t, s, testConfig("a"), r.handle, nil)
	runtest.Eventually(t, 5*time.Second, "processor owns all", func() bool { return len(p.Owned()) == 16 })

	publish(t, js, "k", "1")
	receive(t, r.started, 5*time.Second, "handler start")
	first := r.handled()[0]
	// Nothing ran while the process stood still: not the renewals, not
	// the balancing that would re-acquire lapsed leases.
	resumeRenewals := changefeed.PauseRenewals(p)
	resumeBalancing := changefeed.StallBalancing(p)
	changefeed.SkewClock(p, testTTL)
	publish(t, js, "k", "2")
	close(r.release)

	// Lost leases are dropped within a millisecond of the deadline; the
	// window covers that and a few fetches.
	deadline := time.Now().Add(testRenew * 3)
	for time.Now().Before(deadline) {
		if got := data(r.handled()); len(got) > 1 {
			t.Fatalf("handled %v past the lease deadline, want only the held change", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if info := consumerInfo(t, js, first.Partition); info.AckFloor.Stream >= first.Seq {
		t.Fatalf("ack floor %d: change %d acknowledged past the lease deadline", info.AckFloor.Stream, first.Seq)
	}
	if got := p.Owned(); len(got) != 0 {
		t.Errorf("owns %v past every deadline, want none", got)
	}

	resumeRenewals()
	resumeBalancing()
	runtest.Eventually(t, 5*time.Second, "both changes handled again", func() bool { return len(r.handled()) >= 3 })
	got := r.handled()
	if want := []string{"1", "1", "2"}; !slices.Equal(data(got), want) {
		t.Fatalf("handled %v, want %v", data(got), want)
	}
	if got[1].FencingToken <= first.FencingToken || got[2].FencingToken != got[1].FencingToken {
		t.Errorf("fencing tokens %d, %d, %d: want the re-acquired lease's, above the first",
			first.FencingToken, got[1].FencingToken, got[2].FencingToken)
	}
}

// TestFencingTokenIsTheLeaseRevision: a change carries the revision that
// acquired its partition's lease, which a stale owner's can only be below.
func TestFencingTokenIsTheLeaseRevision(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	r := newRecorder("")
	p, _ := startProcessor(t, s, testConfig("a"), r.handle, nil)
	runtest.Eventually(t, 5*time.Second, "processor owns all", func() bool { return len(p.Owned()) == 16 })
	publish(t, js, "k", "1")
	runtest.Eventually(t, 5*time.Second, "change handled", func() bool { return len(r.handled()) == 1 })
	c := r.handled()[0]

	kv, err := js.KeyValue(context.Background(), changefeed.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := kv.History(context.Background(), strconv.Itoa(c.Partition))
	if err != nil {
		t.Fatal(err)
	}
	// History 1 keeps the latest renewal only: the token is the revision
	// of the acquisition, at most the latest and in a's name.
	last := hist[len(hist)-1]
	if c.FencingToken == 0 || c.FencingToken > last.Revision() || string(last.Value()) != "a" {
		t.Fatalf("fencing token %d, lease revision %d owned by %q: want 0 < token <= revision, owner a",
			c.FencingToken, last.Revision(), last.Value())
	}
}

// TestRenewalsDoNotWaitBehindBalancing: with its balancing stalled for
// three lease TTLs (as if starved of CPU, or blocked on slow requests), a
// replica keeps renewing: its peer takes none of its leases.
func TestRenewalsDoNotWaitBehindBalancing(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, _ := startProcessor(t, s, testConfig("a"), ignore, nil)
	b, _ := startProcessor(t, s, testConfig("b"), ignore, nil)
	runtest.Eventually(t, 5*time.Second, "8/8 split", func() bool { return slices.Equal(counts(a, b), []int{8, 8}) })
	owned := a.Owned()

	resume := changefeed.StallBalancing(a)
	defer resume()
	deadline := time.Now().Add(3 * testTTL)
	for time.Now().Before(deadline) {
		if got := a.Owned(); !slices.Equal(got, owned) {
			t.Fatalf("a owns %v with balancing stalled, want %v kept", got, owned)
		}
		if n := len(b.Owned()); n != 8 {
			t.Fatalf("b owns %d with a's balancing stalled, want its 8", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTakeoverOfAPausedOwnerKeepsKeyOrder: a holds change 1 of key k in
// its handler when it stops renewing and balancing (as if paused). b takes
// the partitions over once a's leases expire, gets change 1 again after
// AckWait and handles 1, 2, 3 under larger fencing tokens. When a resumes,
// it handles and acknowledges nothing more of the partitions it lost: the
// key's changes after its own 1 are b's 1, 2, 3 and then 4, in order.
func TestTakeoverOfAPausedOwnerKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	var mu sync.Mutex
	var log []string // instance:data
	var tokens = map[string]uint64{}
	held := make(chan struct{})
	release := make(chan struct{})
	handler := func(instance string) changefeed.Handler {
		return func(_ context.Context, c changefeed.Change) error {
			mu.Lock()
			log = append(log, instance+":"+string(c.Data))
			tokens[instance+":"+string(c.Data)] = c.FencingToken
			first := instance == "a" && len(log) == 1
			mu.Unlock()
			if first {
				close(held)
				<-release
			}
			return nil
		}
	}
	cfg := func(name string) changefeed.Config {
		c := testConfig(name)
		c.AckWait = time.Second
		return c
	}
	a, _ := startProcessor(t, s, cfg("a"), handler("a"), nil)
	runtest.Eventually(t, 5*time.Second, "a owns all", func() bool { return len(a.Owned()) == 16 })
	publish(t, js, "k", "1")
	receive(t, held, 5*time.Second, "a handling 1")
	resumeRenewals := changefeed.PauseRenewals(a)
	resumeBalancing := changefeed.StallBalancing(a)

	b, _ := startProcessor(t, s, cfg("b"), handler("b"), nil)
	publish(t, js, "k", "2")
	publish(t, js, "k", "3")
	runtest.Eventually(t, 10*time.Second, "b handles 1, 2, 3", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(log, []string{"a:1", "b:1", "b:2", "b:3"})
	})
	close(release)
	resumeRenewals()
	resumeBalancing()
	runtest.Eventually(t, 5*time.Second, "a back in the membership", func() bool { return len(a.Owned()) == 8 && len(b.Owned()) == 8 })
	publish(t, js, "k", "4")
	runtest.Eventually(t, 5*time.Second, "4 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(log) == 5
	})
	mu.Lock()
	defer mu.Unlock()
	if got := log[4]; got != "a:4" && got != "b:4" {
		t.Fatalf("handled %v, want 4 last", log)
	}
	if tokens["b:1"] <= tokens["a:1"] {
		t.Errorf("b's fencing token %d not above the stale owner's %d", tokens["b:1"], tokens["a:1"])
	}
}
