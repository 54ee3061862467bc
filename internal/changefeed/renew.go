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
// until ctx ends, and gives each held lease up the moment its deadline
// passes unrenewed. It runs on a goroutine of its own and does nothing
// else, so renewals never wait behind balancing, watching or lag reports.
func (pr *Processor) renewLoop(ctx context.Context) {
	defer close(pr.renewDone)
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := pr.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if now := pr.now(); now >= next {
			next = now + pr.cfg.RenewInterval
			if !pr.renewPaused.Load() {
				pr.renewHold.Lock()
				err := pr.renewRound(ctx)
				pr.renewHold.Unlock()
				pr.mu.Lock()
				pr.renewErr = err
				pr.mu.Unlock()
			}
		}
		wake := pr.dropLapsed(next)
		timer.Reset(max(wake-pr.now(), time.Millisecond))
	}
}

// dropLapsed loses the held leases whose deadline has passed (from then on
// a peer may judge them expired) and returns the earlier of next and the
// earliest deadline still ahead.
func (pr *Processor) dropLapsed(next time.Duration) time.Duration {
	now := pr.now()
	for _, l := range pr.heldLeases() {
		d := time.Duration(l.deadline.Load())
		if d <= now {
			pr.lose(l, "not renewed within the lease TTL")
			continue
		}
		next = min(next, d)
	}
	return next
}

// renewRound writes the heartbeat and renews every held lease, each request
// bounded by RenewInterval so that an unreachable server does not hold up
// the next round.
func (pr *Processor) renewRound(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pr.cfg.RenewInterval)
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

// renewOne renews l. A lease found taken over is lost at once; one that
// could not be renewed is lost once its deadline has passed, since from then
// on a peer may judge it expired.
func (pr *Processor) renewOne(ctx context.Context, l *lease) error {
	l.mu.Lock()
	if l.gone {
		l.mu.Unlock()
		return nil
	}
	sent := pr.now()
	rev, err := pr.table.renew(ctx, l.partition, l.rev)
	if err == nil {
		l.rev = rev
		l.extend(sent, pr.usable())
	}
	l.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound),
		errors.Is(err, jetstream.ErrKeyDeleted):
		pr.lose(l, "taken over")
		return nil
	}
	return fmt.Errorf("renew lease %d: %w", l.partition, err)
}

// usable is how long after a renewal is sent the lease may be used.
func (pr *Processor) usable() time.Duration {
	return pr.cfg.LeaseTTL - Margin(pr.cfg.LeaseTTL)
}

// lose forgets a held lease and cancels its partition's handler.
func (pr *Processor) lose(l *lease, reason string) {
	l.mu.Lock()
	already := l.gone
	l.gone = true
	l.deadline.Store(0) // taken over: unusable at once, whatever the deadline was
	l.mu.Unlock()
	if already {
		return
	}
	pr.mu.Lock()
	if pr.held[l.partition] == l {
		delete(pr.held, l.partition)
	}
	n := len(pr.held)
	pr.mu.Unlock()
	l.w.abort()
	pr.log.Info("change feed lease lost", "partition", l.partition, "reason", reason, "owned", n)
	pr.metrics.dropPending(l.partition)
	pr.metrics.setOwned(n)
}
