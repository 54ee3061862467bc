package changefeed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// renewConcurrency bounds the renewals in flight at once: enough that a
// replica holding hundreds of leases renews them in a few round trips.
const renewConcurrency = 32

// renewLoop renews the held leases and the heartbeat every RenewInterval
// until ctx ends. It runs on a goroutine of its own and does nothing else,
// so renewals never wait behind balancing, watching or lag reports.
func (pr *Processor) renewLoop(ctx context.Context) {
	defer close(pr.renewDone)
	tick := time.NewTicker(pr.cfg.RenewInterval)
	defer tick.Stop()
	for {
		// The pause is read under renewHold, so that a test pausing
		// renewals can wait out the round in flight (see PauseRenewals).
		pr.renewHold.Lock()
		if !pr.renewPaused.Load() {
			err := pr.renewRound(ctx)
			pr.mu.Lock()
			pr.renewErr = err
			pr.mu.Unlock()
		}
		pr.renewHold.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lapseLoop gives each held lease up the moment its deadline passes
// unrenewed (from then on a peer may judge it expired), whatever the
// renewer is waiting for.
func (pr *Processor) lapseLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := pr.now()
		next := now + pr.cfg.RenewInterval
		for _, l := range pr.heldLeases() {
			d := time.Duration(l.deadline.Load())
			if d <= now {
				pr.loseIf(l, "not renewed within the lease TTL", func() bool {
					// Checked again under the lease's lock, which a
					// renewal in flight holds: one sent before the
					// deadline and answered after it has moved the
					// deadline on, and the lease is kept.
					return time.Duration(l.deadline.Load()) <= pr.now()
				})
				continue
			}
			next = min(next, d)
		}
		timer.Reset(max(next-pr.now(), time.Millisecond))
	}
}

// renewRound writes the heartbeat and renews every held lease. A round
// gives its requests half the lease's usable time (at least a
// RenewInterval), so that a slow answer still counts and a later round can
// try again before the deadline; a request given up may still have been
// applied, which the next round finds out (see renewOne).
func (pr *Processor) renewRound(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(pr.cfg.RenewInterval, pr.usable()/2))
	defer cancel()
	var errs []error
	if !pr.leaving {
		if err := pr.table.heartbeat(ctx); err != nil {
			errs = append(errs, fmt.Errorf("heartbeat: %w", err))
		}
	}
	held := pr.heldLeases()
	results := make(chan error, len(held))
	sem := make(chan struct{}, renewConcurrency)
	var wg sync.WaitGroup
	for _, l := range held {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results <- pr.renewOne(ctx, l)
		})
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// renewOne renews l. A lease found taken over is lost at once.
//
// A renewal whose answer was lost (a timeout, a dropped connection) may
// have been applied: the next one then names a stale revision and fails.
// So a mismatch is checked against the bucket: a lease still in this
// instance's name at a later revision was renewed by that unanswered
// request, which was sent no earlier than unconfirmed, the first renewal
// sent since the last answered one.
func (pr *Processor) renewOne(ctx context.Context, l *lease) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return nil
	}
	sent := pr.now()
	if l.unconfirmed == 0 {
		l.unconfirmed = sent
	}
	rev, err := pr.table.renew(ctx, l.partition, l.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		var mine bool
		if rev, mine, err = pr.table.appliedRenewal(ctx, l.partition, l.rev); err == nil && mine {
			sent = l.unconfirmed
		} else if err == nil {
			err = jetstream.ErrKeyRevisionMismatch
		}
	}
	switch {
	case err == nil:
		l.rev, l.unconfirmed = rev, 0
		l.extend(sent, pr.usable())
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound),
		errors.Is(err, jetstream.ErrKeyDeleted):
		l.mu.Unlock()
		pr.lose(l, "taken over")
		l.mu.Lock()
		return nil
	}
	return fmt.Errorf("renew lease %d: %w", l.partition, err)
}

// usable is how long after a renewal is sent the lease may be used.
func (pr *Processor) usable() time.Duration {
	return pr.cfg.LeaseTTL - Margin(pr.cfg.LeaseTTL)
}

// lose forgets a held lease and cancels its partition's handler.
func (pr *Processor) lose(l *lease, reason string) { pr.loseIf(l, reason, nil) }

// loseIf is lose if cond, called under the lease's lock, holds (or is nil).
func (pr *Processor) loseIf(l *lease, reason string, cond func() bool) {
	l.mu.Lock()
	if l.gone || (cond != nil && !cond()) {
		l.mu.Unlock()
		return
	}
	l.gone = true
	l.deadline.Store(0) // taken over: unusable at once, whatever the deadline was
	l.mu.Unlock()
	pr.mu.Lock()
	if pr.held[l.partition] == l {
		delete(pr.held, l.partition)
	}
	n := len(pr.held)
	pr.mu.Unlock()
	l.w.abort()
	pr.log.Info("change feed lease lost", "partition", l.partition, "reason", reason, "owned", n)
	pr.metrics.dropPending(l.partition)
	pr.syncOwned()
}
