package main_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
)

// The change feed's lease requirement, checked with two real worker
// processes sharing one engine: the leases split evenly; a peer stopped
// with SIGTERM hands its partitions over within one renew interval; the
// partitions of a peer killed with SIGKILL are taken over once its leases
// expire, within lease TTL + renew interval.

const (
	// partitions is the feed's default partition count, spelled out so the
	// even split is 8 each.
	partitions = 16
	// renewInterval is short so the split (one stolen lease per cycle) and a
	// takeover take a fraction of a second each.
	renewInterval = 200 * time.Millisecond
	// slack covers what the worker does not promise: scheduling on a loaded
	// 2-core machine, the balance cycle's own round trips, process start and
	// the 5 ms polling of /metrics.
	slack = 1500 * time.Millisecond
)

// leasePair is process A, which runs the embedded engine, and process B,
// which connects to it; both run the change feed with the given lease TTL.
type leasePair struct {
	a, b *rollout.Instance
	url  string // the engine's NATS URL
}

// leaseArgs are one instance's change-feed flags.
func leaseArgs(instance string, ttl time.Duration) []string {
	return []string{
		"--changefeed.instance=" + instance,
		"--changefeed.partitions=" + strconv.Itoa(partitions),
		"--changefeed.lease_ttl=" + ttl.String(),
		"--changefeed.renew_interval=" + renewInterval.String(),
		// Bounds how long a stopping instance waits for its outstanding
		// pulls before it releases its leases.
		"--changefeed.fetch_wait=100ms",
	}
}

// startPair starts A, waits until it owns every partition, then starts B and
// waits until the leases are split evenly, logging how long that took.
func startPair(ctx context.Context, t *testing.T, ttl time.Duration) leasePair {
	t.Helper()
	a := start(ctx, t, append(leaseArgs("a", ttl),
		"--nats.embedded.addr=127.0.0.1:0",
		"--nats.embedded.store_dir="+filepath.Join(t.TempDir(), "nats"))...)
	url := natsURL(t, a)
	runtest.Poll(ctx, t, "A to own every partition", func() bool { return leasesOwned(a) == partitions })

	launched := time.Now()
	b := start(ctx, t, append(leaseArgs("b", ttl), "--nats.url="+url)...)
	ready := time.Now()
	runtest.Poll(ctx, t, "an even split", func() bool {
		return leasesOwned(a) == partitions/2 && leasesOwned(b) == partitions/2
	})
	t.Logf("split %d/%d reached %s after B was launched (%s after it was ready); B stole %d leases from A",
		partitions/2, partitions/2, time.Since(launched).Round(time.Millisecond),
		time.Since(ready).Round(time.Millisecond), len(acquiredFrom(b, 0, "a")))
	return leasePair{a: a, b: b, url: url}
}

// TestSIGTERMedPeerReleasesItsLeasesWithinARenewInterval: after the split,
// B is stopped with SIGTERM; it exits 0 having released its leases, and A
// owns every partition within one renew interval of the release. The lease
// TTL is 10 s, far beyond the bound, so that only released leases, not
// expired ones, can explain the takeover; A's log confirms it took free
// leases, not B's.
func TestSIGTERMedPeerReleasesItsLeasesWithinARenewInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 10 * time.Second
	p := startPair(ctx, t, ttl)
	seen := len(records(p.a, "change feed lease acquired"))
	exited := exitTime(p.b)

	signalled := time.Now()
	if err := p.b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	runtest.Poll(ctx, t, "A to own every partition", func() bool { return leasesOwned(p.a) == partitions })
	owned := time.Now()
	if code, err := p.b.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("B exit after SIGTERM = %d, %v; want 0", code, err)
	}

	released := releaseTime(t, p.b, partitions/2)
	t.Logf("A owned all %d partitions %s after B released its leases (%s after the SIGTERM, %s after B exited)",
		partitions, owned.Sub(released).Round(time.Millisecond), owned.Sub(signalled).Round(time.Millisecond),
		owned.Sub(<-exited).Round(time.Millisecond))
	if d := owned.Sub(released); d > renewInterval+slack {
		t.Errorf("A owned every partition %s after B released its leases, want within one renew interval (%s) + %s slack",
			d, renewInterval, slack)
	}
	if d := owned.Sub(signalled); d >= ttl {
		t.Errorf("takeover took %s from the SIGTERM: as long as the lease TTL (%s), so no release was seen", d, ttl)
	}
	// A free lease has no owner: "from" is empty. A lease taken from "b"
	// would mean B's lease expired or was stolen instead of released. The
	// log reaches the test through a pipe: wait for the lines to arrive.
	runtest.Poll(ctx, t, "A's acquisitions logged", func() bool {
		return len(records(p.a, "change feed lease acquired")) >= seen+partitions/2
	})
	taken := acquiredFrom(p.a, seen, "")
	if fromB := acquiredFrom(p.a, seen, "b"); len(fromB) > 0 || len(taken) != partitions/2 {
		t.Errorf("after the SIGTERM A acquired %v released and %v of B's leases, want %d released and none of B's",
			taken, fromB, partitions/2)
	}
	processesEveryPartition(ctx, t, p.a, p.url, taken)
}

// TestSIGKILLedPeersLeasesAreTakenOverAfterTheTTL: after the split, B is
// killed with SIGKILL, so it releases nothing; A owns every partition within
// lease TTL + renew interval, and not before the leases could have expired.
func TestSIGKILLedPeersLeasesAreTakenOverAfterTheTTL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 2 * time.Second
	p := startPair(ctx, t, ttl)
	seen := len(records(p.a, "change feed lease acquired"))

	killed := time.Now()
	if err := p.b.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, err := p.b.Wait(ctx); err != nil || code != -1 {
		t.Fatalf("B exit after SIGKILL = %d, %v; want -1 (killed by a signal)", code, err)
	}
	runtest.Poll(ctx, t, "A to own every partition", func() bool { return leasesOwned(p.a) == partitions })
	took := time.Since(killed)
	t.Logf("A owned all %d partitions %s after B was killed (lease TTL %s, renew interval %s)",
		partitions, took.Round(time.Millisecond), ttl, renewInterval)

	if most := ttl + renewInterval + slack; took > most {
		t.Errorf("takeover took %s after the SIGKILL, want within lease TTL + renew interval (%s) + %s slack",
			took, ttl+renewInterval, slack)
	}
	// A judges expiry by its own clock: a lease expires LeaseTTL after A
	// first read its latest revision (leases.go). B renewed every renew
	// interval until the kill, so A read its last revision at the earliest
	// about one renew interval before the kill, and the takeover cannot come
	// before ttl - renewInterval (1.8 s) after it, give or take a cycle. A
	// released lease would be taken within about one renew interval. ttl/2
	// lies between the two and leaves room for a B that was starved of CPU
	// for a while before the kill.
	if least := ttl / 2; took < least {
		t.Errorf("takeover took %s after the SIGKILL, before the leases could expire (at least %s): not by expiry", took, least)
	}
	// The gauge moves after each line is written, but the log reaches the
	// test through a pipe: wait for the lines to arrive.
	runtest.Poll(ctx, t, "A's acquisitions logged", func() bool {
		return len(records(p.a, "change feed lease acquired")) >= seen+partitions/2
	})
	taken := acquiredFrom(p.a, seen, "b")
	if free := acquiredFrom(p.a, seen, ""); len(free) > 0 || len(taken) != partitions/2 {
		t.Errorf("after the SIGKILL A acquired %v of B's expired leases and %v free ones, want %d of B's and no free one",
			taken, free, partitions/2)
	}
	processesEveryPartition(ctx, t, p.a, p.url, taken)
}

// processesEveryPartition publishes changes of enough keys to reach every
// partition, as `worker publish` does, and checks that inst handles them
// all, including those of the partitions in taken.
func processesEveryPartition(ctx context.Context, t *testing.T, inst *rollout.Instance, url string, taken []int) {
	t.Helper()
	// These 64 keys hash into all 16 partitions.
	const keys = 64
	before := changesProcessed(t, inst)
	seen := len(records(inst, "change"))
	pub, err := natsclient.NewPublisher(url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	runtest.Poll(ctx, t, "publisher connected", func() bool { return pub.Ready() == nil })
	for i := range keys {
		if err := pub.Publish(ctx, fmt.Sprintf("changes.key-%d", i), []byte(`{"v":1}`)); err != nil {
			t.Fatalf("publish change %d: %v", i, err)
		}
	}
	runtest.Poll(ctx, t, "the changes processed", func() bool { return changesProcessed(t, inst)-before >= keys })

	// The metric can run ahead of the log lines still in the pipe: wait,
	// within ctx, for a line from every partition taken over.
	handled := map[int]bool{}
	handledAll := func() bool {
		for _, rec := range records(inst, "change")[seen:] {
			if p, ok := rec["partition"].(float64); ok {
				handled[int(p)] = true
			}
		}
		for _, p := range taken {
			if !handled[p] {
				return false
			}
		}
		return true
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for !handledAll() && waitCtx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	for _, p := range taken {
		if !handled[p] {
			t.Errorf("partition %d, taken over from B, handled no change (handled: %v)", p, handled)
		}
	}
}

// exitTime returns a channel that receives the time inst's process exited.
func exitTime(inst *rollout.Instance) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		<-inst.Exited()
		at <- time.Now()
	}()
	return at
}

// releaseTime returns when inst logged that it released its leases, and
// checks it released want of them.
func releaseTime(t *testing.T, inst *rollout.Instance, want int) time.Time {
	t.Helper()
	recs := records(inst, "change feed leases released")
	if len(recs) != 1 {
		t.Fatalf("B logged %d lease releases, want 1", len(recs))
	}
	if n, _ := recs[0]["count"].(float64); int(n) != want {
		t.Errorf("B released %v leases, want %d", recs[0]["count"], want)
	}
	s, _ := recs[0]["time"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time of the release record: %v", err)
	}
	return at
}

// acquiredFrom returns the partitions inst logged acquiring from owner
// ("" for a free lease), skipping its first skip acquisitions.
func acquiredFrom(inst *rollout.Instance, skip int, owner string) []int {
	var ps []int
	for _, rec := range records(inst, "change feed lease acquired")[skip:] {
		if rec["from"] == owner {
			if p, ok := rec["partition"].(float64); ok {
				ps = append(ps, int(p))
			}
		}
	}
	return ps
}

// leasesOwned reads worker_changefeed_leases_owned from inst's /metrics, as
// an operator sees it; -1 if it cannot.
func leasesOwned(inst *rollout.Instance) int {
	for line := range strings.Lines(scrape(inst)) {
		if v, ok := strings.CutPrefix(line, "worker_changefeed_leases_owned "); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return -1
}

// changesProcessed sums worker_messages_processed_total of the change feed
// with result ok over every partition.
func changesProcessed(tb testing.TB, inst *rollout.Instance) int {
	tb.Helper()
	total := 0
	for line := range strings.Lines(scrape(inst)) {
		if !strings.HasPrefix(line, "worker_messages_processed_total{") ||
			!strings.Contains(line, `processor="changefeed"`) || !strings.Contains(line, `result="ok"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}

// scrape returns inst's /metrics, or "" if it does not answer.
func scrape(inst *rollout.Instance) string {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(inst.URL + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(body)
}
