package changefeed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// balanceLoop acts on the watched view until Stop: whenever an owner or a
// member appears, changes or goes, when a key is due to expire, and at
// least every RenewInterval.
func (pr *Processor) balanceLoop(ctx context.Context) {
	defer close(pr.loopDone)
	var b balancer
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-pr.stop:
			return
		case <-ctx.Done():
			return
		case <-pr.view.changed:
		case <-timer.C:
		}
		pr.balanceHold.Lock() // a test hook stalls balancing by holding it
		wait := pr.balance(ctx, &b)
		pr.balanceHold.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// balancer is the balance loop's memory between steps.
type balancer struct {
	members   []string      // the membership last seen
	changedAt time.Duration // when it last changed (monotonic)
	settled   []string      // the membership of the last settled step
}

// onlyLeft reports whether the membership changed since the last settled
// step only by members leaving (or expiring): the leases they left behind
// are then taken at once rather than after the settle time, since taking a
// free lease moves nothing from a live owner (a crashed replica's
// partitions wait T, not T + I/2).
func (b *balancer) onlyLeft() bool {
	if b.settled == nil {
		return false
	}
	for _, m := range b.members {
		if !slices.Contains(b.settled, m) {
			return false
		}
	}
	return true
}

// settle is how long the membership must stay unchanged before the
// balancer acts on it: replicas that start or stop together then count
// each other in one step, instead of moving partitions twice.
func (pr *Processor) settle() time.Duration { return pr.cfg.RenewInterval / 2 }

// balance runs one step: it drops held leases the view shows taken over,
// and once the membership has settled releases surplus leases or acquires
// its share of the free ones. It returns when to look again.
func (pr *Processor) balance(ctx context.Context, b *balancer) time.Duration {
	if !pr.view.isSynced() {
		return pr.cfg.RenewInterval
	}
	now := pr.now()
	held := pr.heldLeases()
	snap := pr.view.snapshot(pr.cfg.Partitions, pr.cfg.Instance, held, now)
	for p, l := range held {
		if s, ok := snap.owners[p]; ok && s.value != pr.cfg.Instance && s.rev > l.token {
			pr.lose(l, "taken over")
		}
	}
	if len(snap.expired) > 0 && snap.members[0] == pr.cfg.Instance {
		pr.forgetMembers(ctx, snap.expired)
	}
	if !slices.Equal(snap.members, b.members) {
		b.members, b.changedAt = snap.members, now
		if b.settled == nil {
			// The first step: the view was watched while this instance
			// provisioned its consumers, and the membership has been
			// settling since it last changed there.
			b.changedAt = pr.view.lastMemberChange()
		}
		pr.log.Info("change feed members", "members", len(snap.members), "instances", snap.members)
	}
	wait := pr.cfg.RenewInterval
	if snap.next >= 0 {
		wait = min(wait, snap.next-now+time.Millisecond)
	}
	if left := b.changedAt + pr.settle() - now; left > 0 {
		if !b.onlyLeft() {
			return min(wait, left)
		}
		// Departures only: take their free leases now; releases (none are
		// due to a departure alone) wait for the membership to settle.
		plan := Balance(snap.leases, snap.members, pr.cfg.Instance)
		if len(plan.Acquire) > 0 {
			actx, cancel := context.WithTimeout(ctx, pr.cfg.RenewInterval)
			pr.acquireAll(actx, plan.Acquire)
			cancel()
		}
		return min(wait, left)
	}
	b.settled = snap.members
	plan := Balance(snap.leases, snap.members, pr.cfg.Instance)
	// A release waits for the in-flight change, which may take up to
	// AckWait; an acquisition is one round trip.
	rctx, cancel := context.WithTimeout(ctx, pr.cfg.AckWait)
	defer cancel()
	pr.releaseSurplus(rctx, plan.Release)
	actx, cancel := context.WithTimeout(ctx, pr.cfg.RenewInterval)
	defer cancel()
	pr.acquireAll(actx, plan.Acquire)
	if len(plan.Release)+len(plan.Acquire) > 0 {
		// Look again soon: the step may have lost races to peers.
		return min(wait, pr.settle())
	}
	return wait
}

// forgetMembers deletes the member keys of instances judged dead.
func (pr *Processor) forgetMembers(ctx context.Context, expired map[string]uint64) {
	ctx, cancel := context.WithTimeout(ctx, pr.cfg.RenewInterval)
	defer cancel()
	for m, rev := range expired {
		switch deleted, err := pr.table.forget(ctx, m, rev); {
		case err != nil:
			pr.log.Warn("change feed expired member not deleted", "member", m, "err", err)
		case deleted:
			pr.log.Info("change feed member expired", "member", m)
		}
	}
}

// acquireAll acquires leases concurrently and waits for them.
func (pr *Processor) acquireAll(ctx context.Context, leases []Lease) {
	sem := make(chan struct{}, renewConcurrency)
	var wg sync.WaitGroup
	for _, l := range leases {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := pr.acquire(ctx, l); err != nil {
				pr.log.Warn("change feed lease not acquired", "partition", l.Partition, "err", err)
			}
		})
	}
	wg.Wait()
}

// acquire takes l and starts consuming its partition. Losing the race for
// it to a peer is not an error.
func (pr *Processor) acquire(ctx context.Context, l Lease) error {
	sent := pr.now()
	rev, err := pr.table.acquire(ctx, l)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		pr.log.Debug("change feed lease taken by a peer first", "partition", l.Partition)
		return nil
	}
	if err != nil {
		// The write may have been applied with its answer lost or late (a
		// loaded server, a leader election): then the lease is already in
		// this instance's name and is kept, rather than left to the next
		// step to write again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pr.cfg.RenewInterval)
		applied, mine, gerr := pr.table.appliedRenewal(rctx, l.Partition, l.Revision)
		cancel()
		if gerr != nil || !mine {
			return fmt.Errorf("acquire lease %d: %w", l.Partition, err)
		}
		pr.log.Info("change feed lease acquisition applied though unanswered", "partition", l.Partition, "err", err)
		rev = applied
	}
	p := l.Partition
	nl := &lease{partition: p, token: rev, rev: rev}
	nl.extend(sent, pr.usable())
	pr.mu.Lock()
	prev := pr.lastDone[p]
	w := pr.startWorker(nl, prev)
	pr.lastDone[p] = w.done
	pr.held[p] = nl
	n := len(pr.held)
	pr.mu.Unlock()
	// Logged before the gauge moves, so that whoever sees the gauge finds
	// the line.
	pr.log.Info("change feed lease acquired", "partition", p, "from", l.Owner, "fencing_token", rev, "owned", n)
	pr.syncOwned()
	return nil
}

// releaseSurplus hands the given held partitions back, concurrently: each
// finishes its in-flight change, then its lease is deleted.
func (pr *Processor) releaseSurplus(ctx context.Context, partitions []int) {
	if len(partitions) == 0 {
		return
	}
	held := pr.heldLeases()
	var wg sync.WaitGroup
	for _, p := range partitions {
		if l, ok := held[p]; ok {
			wg.Go(func() { pr.release(ctx, l, "balance") })
		}
	}
	wg.Wait()
	pr.log.Info("change feed leases released", "instance", pr.cfg.Instance, "count", len(partitions), "reason", "balance")
}

// release stops l's worker, waits for its in-flight change (bounded by
// ctx: on timeout the handler is cancelled and its change handed back),
// then deletes the lease so that a peer may take it at once.
func (pr *Processor) release(ctx context.Context, l *lease, reason string) {
	l.w.stopFetch()
	select {
	case <-l.w.done:
	case <-ctx.Done():
		l.w.abort()
		<-l.w.done
	}
	l.mu.Lock()
	gone := l.gone
	l.gone = true
	l.deadline.Store(0)
	var err error
	if !gone {
		rctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), releaseGrace)
			defer cancel()
		}
		// The next owner starts at the ack floor: it must count every
		// change handled here before the lease is free.
		if cerr := l.w.acks.all(rctx); cerr != nil {
			pr.log.Warn("change feed acknowledgements not confirmed before the release; the next owner may handle the last change again",
				"partition", l.partition, "err", cerr)
		}
		err = pr.table.release(rctx, l.partition, l.rev)
	}
	l.mu.Unlock()
	l.w.acks.close()
	pr.mu.Lock()
	if pr.held[l.partition] == l {
		delete(pr.held, l.partition)
	}
	pr.mu.Unlock()
	pr.metrics.dropPending(l.partition)
	pr.syncOwned()
	if err != nil {
		pr.log.Warn("change feed lease not released; it expires after the lease TTL",
			"partition", l.partition, "lease_ttl", pr.cfg.LeaseTTL.String(), "reason", reason, "err", err)
	}
}
