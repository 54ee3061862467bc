package changefeed_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/runtest"
)

// Timings of the lease simulation: the renew interval is the unit the
// figures are given in; the rest is scaled from the defaults (TTL = 3 ×
// interval).
const (
	simRenew = 250 * time.Millisecond
	simTTL   = 3 * simRenew
)

// BenchmarkLeaseBalance runs replicas of the change feed in one process
// against a real embedded NATS server and measures, per membership change,
// how many renew intervals pass until every replica holds its fair share
// (intervals-to-balance), the most times one partition changed owner
// (max-moves), and the lease requests per renew interval cluster-wide in
// the steady state after (req/interval: KV writes, KV reads and consumer
// info requests, counted on the server by a monitoring subscription).
//
// The membership changes when the server sees it: the last joiner's
// heartbeat, the leaver's member key deleted by its Stop (which then
// releases its leases), or, for a replica killed (its connection cut: no
// renewal, no release), the lease TTL after the kill, when its leases
// expire. The last line, max, is the worst of the cases run. Nothing is
// asserted here: TestBalanceStepsAgreeWhileViewsLag holds the promises.
//
//	go test -run '^$' -bench LeaseBalance -benchtime 1x ./internal/changefeed/
func BenchmarkLeaseBalance(b *testing.B) {
	cases := []struct {
		name       string
		partitions int
		before     int // replicas running and balanced before the change
		after      int // replicas after it
		how        changeKind
	}{
		{"P=16/1→2", 16, 1, 2, atOnce},
		{"P=256/2→3", 256, 2, 3, atOnce},
		{"P=256/0→2-back-to-back", 256, 0, 2, backToBack},
		{"P=256/3→16-at-once", 256, 3, 16, atOnce},
		{"P=256/16→15-stop", 256, 16, 15, stop},
		{"P=256/16→15-kill", 256, 16, 15, kill},
	}
	var worst membershipResult
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var sum membershipResult
			for range b.N {
				r := runMembershipChange(b, c.partitions, c.before, c.after, c.how)
				sum.intervals += r.intervals
				sum.maxMoves = max(sum.maxMoves, r.maxMoves)
				sum.reqPerInterval += r.reqPerInterval
			}
			r := membershipResult{sum.intervals / float64(b.N), sum.maxMoves, sum.reqPerInterval / float64(b.N)}
			report(b, r)
			worst = membershipResult{max(worst.intervals, r.intervals), max(worst.maxMoves, r.maxMoves),
				max(worst.reqPerInterval, r.reqPerInterval)}
		})
	}
	b.Run("max", func(b *testing.B) { report(b, worst) })
}

func report(b *testing.B, r membershipResult) {
	b.ReportMetric(r.intervals, "intervals-to-balance")
	b.ReportMetric(float64(r.maxMoves), "max-moves")
	b.ReportMetric(r.reqPerInterval, "req/interval")
	b.ReportMetric(0, "ns/op") // the figures above are what counts
}

// changeKind is how the membership changes.
type changeKind int

const (
	atOnce     changeKind = iota // the new replicas start at the same time
	backToBack                   // the new replicas start one after the other
	stop                         // the leaving replicas stop gracefully
	kill                         // the leaving replicas are cut off
)

type membershipResult struct {
	intervals      float64
	maxMoves       int
	reqPerInterval float64
}

// runMembershipChange starts `before` replicas, waits for their balance,
// then changes the membership to `after` replicas and measures.
func runMembershipChange(b *testing.B, partitions, before, after int, how changeKind) membershipResult {
	b.Helper()
	e := enginetest.Start(b, "", "127.0.0.1:0", nil)
	url := e.ClientURL()
	cfg := func(i int) changefeed.Config {
		c := testConfig(name(i))
		c.Partitions = partitions
		c.LeaseTTL, c.RenewInterval = simTTL, simRenew
		c.FetchWait = time.Second
		return c
	}
	var ps []*changefeed.Processor
	var conns []*nats.Conn
	start := func(i int) (*changefeed.Processor, *nats.Conn) {
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		m, _ := changefeed.NewMetrics(prometheus.NewRegistry(), nil)
		p, err := changefeed.New(cfg(i), func() jetstream.JetStream { return js }, ignore, m, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Stop(ctx) // fails for a replica whose connection was cut
		})
		return p, nc
	}
	for i := range before {
		p, nc := start(i)
		ps, conns = append(ps, p), append(conns, nc)
	}
	if before > 0 {
		waitBalanced(b, partitions, ps, time.Minute)
	}
	mon := newLeaseMonitor(b, url, partitions)
	began := time.Now()
	mon.reset()
	var changed time.Time
	switch how {
	case stop:
		for _, p := range ps[after:] {
			if err := p.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		changed = mon.membersChanged(b, before, after)
	case kill:
		for _, nc := range conns[after:] {
			nc.Close()
		}
		changed = mon.leasesExpire(before, after)
	case backToBack:
		for i := before; i < after; i++ {
			p, _ := start(i)
			ps = append(ps, p)
		}
		changed = mon.membersChanged(b, before, after)
	case atOnce:
		joined := make([]*changefeed.Processor, after-before)
		var wg sync.WaitGroup
		for i := range joined {
			wg.Go(func() { joined[i], _ = start(before + i) })
		}
		wg.Wait()
		ps = append(ps, joined...)
		changed = mon.membersChanged(b, before, after)
	}
	ps = ps[:after]
	waitBalanced(b, partitions, ps, time.Minute)
	took := time.Since(changed)
	// Two more intervals to catch a partition moving again (thrash).
	time.Sleep(2 * simRenew)
	maxMoves := mon.maxMoves()
	mon.resetRequests()
	const window = 4 * simRenew
	time.Sleep(window)
	reqs := float64(mon.requests.Load()) / float64(window/simRenew)
	b.Logf("%d→%d replicas, P=%d: balanced in %.2f intervals (%.2f counting from the first start, stop or kill), max %d owner changes per partition, %.0f lease requests per interval after",
		before, after, partitions, float64(took)/float64(simRenew), float64(time.Since(began)-2*simRenew-window)/float64(simRenew), maxMoves, reqs)
	return membershipResult{intervals: float64(took) / float64(simRenew), maxMoves: maxMoves, reqPerInterval: reqs}
}

func name(i int) string { return fmt.Sprintf("r%02d", i) }

// waitBalanced waits until the replicas own every partition once, each
// floor or ceil of its fair share, and returns how long that took.
func waitBalanced(tb testing.TB, partitions int, ps []*changefeed.Processor, within time.Duration) time.Duration {
	tb.Helper()
	lo, hi := partitions/len(ps), (partitions+len(ps)-1)/len(ps)
	return runtest.Eventually(tb, within, "fair shares", func() bool {
		for _, n := range counts(ps...) {
			if n < lo || n > hi {
				return false
			}
		}
		return partitionedOnce(partitions, ps...)
	})
}

// leaseMonitor watches the lease bucket for owner changes and counts the
// lease requests every replica sends.
type leaseMonitor struct {
	mu      sync.Mutex
	current map[int]string   // the owner of each partition now
	owners  map[int][]string // owners since reset, free gaps left out
	// members holds when each member key was last put, or deleted (then
	// deleted is set).
	members map[string]memberEvent
	// written holds when each instance last wrote a lease, by the server.
	written  map[string]time.Time
	requests atomic.Int64
}

type memberEvent struct {
	at      time.Time
	deleted bool
}

func newLeaseMonitor(tb testing.TB, url string, partitions int) *leaseMonitor {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	m := &leaseMonitor{current: map[int]string{}, owners: map[int][]string{}, members: map[string]memberEvent{},
		written: map[string]time.Time{}}
	count := func(*nats.Msg) { m.requests.Add(1) }
	for _, subject := range []string{
		"$KV." + changefeed.LeaseBucket + ".>",                   // writes
		"$JS.API.DIRECT.GET.KV_" + changefeed.LeaseBucket + ".>", // reads
		"$JS.API.DIRECT.GET.KV_" + changefeed.LeaseBucket,        // reads
		"$JS.API.STREAM.MSG.GET.KV_" + changefeed.LeaseBucket,    // reads
		"$JS.API.CONSUMER.INFO." + changefeed.StreamName + ".>",  // lag
	} {
		if _, err := nc.Subscribe(subject, count); err != nil {
			tb.Fatal(err)
		}
	}
	js, _ := jetstream.New(nc)
	// Created here if no replica runs yet; the first one updates it.
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: changefeed.LeaseBucket, History: 1})
	if err != nil {
		tb.Fatal(err)
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Stop() })
	synced := make(chan struct{}) // the bucket as it was has been seen
	go func() {
		for e := range w.Updates() {
			if e == nil {
				close(synced)
				continue
			}
			p, err := strconv.Atoi(e.Key())
			m.mu.Lock()
			if err != nil {
				if member, ok := strings.CutPrefix(e.Key(), "member."); ok {
					deleted := e.Operation() != jetstream.KeyValuePut
					if ev, had := m.members[member]; !had || ev.deleted != deleted {
						m.members[member] = memberEvent{at: time.Now(), deleted: deleted}
					}
				}
				m.mu.Unlock()
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				delete(m.current, p)
			} else if o := string(e.Value()); o != m.current[p] {
				m.current[p] = o
				m.owners[p] = append(m.owners[p], o)
			}
			if e.Operation() == jetstream.KeyValuePut {
				m.written[string(e.Value())] = e.Created() // the server's clock is this process's
			}
			m.mu.Unlock()
		}
	}()
	select {
	case <-synced:
	case <-time.After(time.Minute):
		tb.Fatal("lease bucket not replayed within a minute")
	}
	return m
}

func (m *leaseMonitor) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.owners)
	for p, o := range m.current {
		m.owners[p] = []string{o}
	}
	m.requests.Store(0)
}

func (m *leaseMonitor) resetRequests() { m.requests.Store(0) }

// maxMoves is the most owner changes of one partition since reset (taking
// a partition that was free at reset is no change).
func (m *leaseMonitor) maxMoves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	most := 0
	for _, o := range m.owners {
		most = max(most, len(slices.Compact(slices.Clone(o)))-1)
	}
	return most
}

// membersChanged waits until the server has seen replicas 0..after-1 as
// members and before..after-1 gone (for a shrink), and returns when the
// last of those changes reached the monitor.
func (m *leaseMonitor) membersChanged(tb testing.TB, before, after int) time.Time {
	tb.Helper()
	var last time.Time
	runtest.Eventually(tb, time.Minute, "the membership change", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		last = time.Time{}
		for i := range max(before, after) {
			ev, ok := m.members[name(i)]
			if !ok || ev.deleted != (i >= after) {
				return false
			}
			if (i >= before) != (i >= after) && ev.at.After(last) {
				last = ev.at
			}
		}
		return true
	})
	return last
}

// leasesExpire returns when the leases of replicas after..before-1, cut
// off, expire at the earliest: a lease TTL after the server stored the
// last lease write from them (their peers saw it no earlier).
func (m *leaseMonitor) leasesExpire(before, after int) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var last time.Time
	for i := after; i < before; i++ {
		if w := m.written[name(i)]; w.After(last) {
			last = w
		}
	}
	return last.Add(simTTL)
}
