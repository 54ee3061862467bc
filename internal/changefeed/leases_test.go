package changefeed_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

func TestTwoProcessorsSplitPartitionsEvenly(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, _ := startProcessor(t, s, testConfig("a"), ignore, nil)
	b, _ := startProcessor(t, s, testConfig("b"), ignore, nil)
	took := runtest.Eventually(t, 5*time.Second, "8/8 split", func() bool {
		return slices.Equal(counts(a, b), []int{8, 8}) && partitionedOnce(16, a, b)
	})
	t.Logf("16 partitions split 8/8 in %s", took)
}

func TestThreeProcessorsShareWithinTarget(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, _ := startProcessor(t, s, testConfig("a"), ignore, nil)
	b, _ := startProcessor(t, s, testConfig("b"), ignore, nil)
	c, _ := startProcessor(t, s, testConfig("c"), ignore, nil)
	took := runtest.Eventually(t, 8*time.Second, "6/5/5 split", func() bool {
		n := counts(a, b, c)
		slices.Sort(n)
		return slices.Equal(n, []int{5, 5, 6}) && partitionedOnce(16, a, b, c)
	})
	t.Logf("16 partitions split %v in %s", counts(a, b, c), took)
}

func TestStoppedProcessorHandsLeasesOverWithinRenewInterval(t *testing.T) {
	t.Parallel()
	// A TTL far above the deadline: only a released lease can be taken
	// in time.
	cfg := func(name string) changefeed.Config {
		c := testConfig(name)
		c.LeaseTTL = 10 * time.Second
		return c
	}
	s := startServer(t)
	a, _ := startProcessor(t, s, cfg("a"), ignore, nil)
	b, _ := startProcessor(t, s, cfg("b"), ignore, nil)
	runtest.Eventually(t, 5*time.Second, "8/8 split", func() bool { return slices.Equal(counts(a, b), []int{8, 8}) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := b.Owned(); len(got) != 0 {
		t.Fatalf("stopped processor owns %v", got)
	}
	took := runtest.Eventually(t, testRenew+slack, "survivor owns all 16", func() bool { return partitionedOnce(16, a) })
	t.Logf("survivor owned all partitions %s after Stop (renew interval %s)", took, testRenew)
}

func TestKilledProcessorsLeasesExpireToPeer(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a, _ := startProcessor(t, s, testConfig("a"), ignore, nil)
	b, bConn := startProcessor(t, s, testConfig("b"), ignore, nil)
	runtest.Eventually(t, 5*time.Second, "8/8 split", func() bool { return slices.Equal(counts(a, b), []int{8, 8}) })

	// Cutting b off the server is what SIGKILL looks like to its peers: no
	// renewal, no release.
	bConn.Close()
	took := runtest.Eventually(t, testTTL+testRenew+slack, "survivor owns all 16", func() bool { return partitionedOnce(16, a) })
	t.Logf("survivor owned all partitions %s after the kill (TTL %s, renew %s)", took, testTTL, testRenew)
	// b, unable to renew, must have given its leases up no later than a
	// could take them.
	if got := b.Owned(); len(got) != 0 {
		t.Fatalf("cut-off processor still claims %v", got)
	}
}

func TestReadyFollowsLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	p, _ := startProcessor(t, s, testConfig("a"), ignore, nil)
	runtest.Eventually(t, 5*time.Second, "ready", func() bool { return p.Ready() == nil })
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Ready(); err == nil {
		t.Fatal("Ready after Stop = nil, want an error")
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
