package changefeed_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// TestCrashedPeersLeasesAreTakenWithoutWaitingToSettle kills a peer (its
// connection cut: no renewal, no release) with a renew interval large
// against the TTL, and times each takeover by the server's timestamps: from
// the victim's last write of the lease to the survivor's first. Its member
// entry expires with its leases, and the balancer used to wait the settle
// time (I/2) after that membership change before taking the free leases, so
// a takeover took T + I/2 and, under load, overran the fault suite's bound
// T + I/2 + 250ms. A departure moves nothing from a live owner: the leases
// must be taken at once, within T plus round trips.
func TestCrashedPeersLeasesAreTakenWithoutWaitingToSettle(t *testing.T) {
	t.Parallel()
	cfg := func(name string) changefeed.Config {
		c := testConfig(name)
		c.LeaseTTL = 2 * time.Second
		c.RenewInterval = 1600 * time.Millisecond // settle time 800ms
		return c
	}
	s := startServer(t)
	_, js := connect(t, s)
	a, _ := startProcessor(t, s, cfg("a"), ignore, nil)
	b, bConn := startProcessor(t, s, cfg("b"), ignore, nil)
	runtest.Eventually(t, 10*time.Second, "8/8 split", func() bool { return slices.Equal(counts(a, b), []int{8, 8}) })
	kv, err := js.KeyValue(context.Background(), changefeed.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(context.Background(), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	victim := b.Owned()

	lastByB := map[int]time.Time{}
	takenAfter := map[int]time.Duration{}
	killed := false
	deadline := time.After(15 * time.Second)
	for len(takenAfter) < len(victim) {
		select {
		case e := <-w.Updates():
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			p, err := strconv.Atoi(e.Key())
			if err != nil || !slices.Contains(victim, p) {
				continue
			}
			switch string(e.Value()) {
			case "b":
				lastByB[p] = e.Created()
			case "a":
				if _, done := takenAfter[p]; !done && killed {
					takenAfter[p] = e.Created().Sub(lastByB[p])
				}
			}
		case <-deadline:
			t.Fatalf("%d of b's %d partitions taken over after 15s", len(takenAfter), len(victim))
		}
		if !killed && len(lastByB) == len(victim) {
			// Every lease's renewal is seen: cutting b off now is what
			// SIGKILL looks like to its peers, no renewal, no release.
			bConn.Close()
			killed = true
		}
	}
	c := cfg("a")
	// T after the last renewal, plus the view's and the write's round
	// trips; well below the settle time it must not wait.
	bound := c.LeaseTTL + c.RenewInterval/4
	for p, d := range takenAfter {
		if d > bound {
			t.Errorf("partition %d taken %s after b's last write, want within %s (TTL %s, settle %s)",
				p, d.Round(time.Millisecond), bound, c.LeaseTTL, c.RenewInterval/2)
		}
	}
	t.Logf("takeovers after b's last write: %v", takenAfter)
}

// TestDeadMembersKeyIsDeletedBeforeItMisleadsAJoiner: a member key left
// behind by an instance that died (SIGKILL leaves no time to delete it)
// would be counted as live by every instance started later, for its first
// lease TTL, since a newcomer cannot tell how long a key has gone
// unrenewed: the newcomer would balance towards another target than its
// peers. The live member judging it expired must delete it, so that a
// replica started afterwards splits the partitions with its peer within a
// renew interval (plus slack), well inside the TTL it would otherwise
// wait.
func TestDeadMembersKeyIsDeletedBeforeItMisleadsAJoiner(t *testing.T) {
	t.Parallel()
	cfg := func(name string) changefeed.Config {
		c := testConfig(name)
		c.LeaseTTL = 2 * time.Second // above testRenew + slack
		return c
	}
	s := startServer(t)
	_, js := connect(t, s)
	a, _ := startProcessor(t, s, cfg("a"), ignore, nil)
	kv, err := js.KeyValue(context.Background(), changefeed.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "member.ghost", []byte("ghost")); err != nil {
		t.Fatal(err)
	}
	took := runtest.Eventually(t, cfg("a").LeaseTTL+slack, "the ghost's member key deleted", func() bool {
		_, err := kv.Get(context.Background(), "member.ghost")
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	t.Logf("ghost's key deleted %s after its last write", took)
	runtest.Eventually(t, slack, "a owns all 16", func() bool { return len(a.Owned()) == 16 })

	b, _ := startProcessor(t, s, cfg("b"), ignore, nil)
	took = runtest.Eventually(t, testRenew+slack, "8/8 split", func() bool {
		return slices.Equal(counts(a, b), []int{8, 8}) && partitionedOnce(16, a, b)
	})
	t.Logf("split 8/8 %s after b started", took)
}
