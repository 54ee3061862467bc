package changefeed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// loop runs a balance cycle at once and then every RenewInterval until Stop.
func (pr *Processor) loop(ctx context.Context) {
	defer close(pr.loopDone)
	tick := time.NewTicker(pr.cfg.RenewInterval)
	defer tick.Stop()
	for {
		err := pr.cycle(ctx)
		pr.mu.Lock()
		pr.cycleErr = err
		pr.mu.Unlock()
		select {
		case <-pr.stop:
			return
		case <-tick.C:
		}
	}
}

// cycle renews the held leases, reads them all, acquires what Balance
// decides and refreshes the lag of the owned partitions. It is bounded by
// RenewInterval: with the server unreachable, requests would otherwise
// wait for the client's own timeout and the next renewals, and giving up
// leases that cannot be renewed, would come too late.
func (pr *Processor) cycle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pr.cfg.RenewInterval)
	defer cancel()
	renewErr := pr.renew(ctx)
	leases, err := pr.table.read(ctx, pr.cfg.Partitions, pr.heldLeases())
	if err != nil {
		return errors.Join(renewErr, err)
	}
	var errs []error
	for _, l := range Balance(leases, pr.cfg.Instance, time.Now()) {
		errs = append(errs, pr.acquire(ctx, l))
	}
	pr.reportLag(ctx)
	return errors.Join(append(errs, renewErr)...)
}

// renew rewrites every held lease. A lease found taken over is lost at once.
// A lease that could not be renewed (the server unreachable) is given up
// when it would expire before the next cycle: from then on a peer may
// judge it expired and take the partition, and two replicas must not
// process one partition.
func (pr *Processor) renew(ctx context.Context) error {
	var errs []error
	for p, h := range pr.heldLeases() {
		sent := time.Now()
		rev, err := pr.table.renew(ctx, p, h.rev)
		switch {
		case err == nil:
			h.rev, h.renewed = rev, sent
			pr.mu.Lock()
			pr.held[p] = h
			pr.mu.Unlock()
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			pr.lose(p, "taken over")
		case time.Since(h.renewed)+pr.cfg.RenewInterval >= pr.cfg.LeaseTTL:
			pr.lose(p, "not renewed within the lease TTL")
			errs = append(errs, fmt.Errorf("renew lease %d: %w", p, err))
		default:
			errs = append(errs, fmt.Errorf("renew lease %d: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// lose forgets a held lease and cancels its partition's handler.
func (pr *Processor) lose(p int, reason string) {
	pr.mu.Lock()
	h := pr.held[p]
	delete(pr.held, p)
	n := len(pr.held)
	pr.mu.Unlock()
	h.w.abort()
	pr.metrics.dropPending(p)
	pr.metrics.setOwned(n)
	pr.log.Info("change feed lease lost", "partition", p, "reason", reason, "owned", n)
}

// acquire takes l and starts consuming its partition. Losing the race for
// it to a peer is not an error.
func (pr *Processor) acquire(ctx context.Context, l Lease) error {
	pr.mu.Lock()
	_, held := pr.held[l.Partition]
	pr.mu.Unlock()
	if held {
		return nil
	}
	sent := time.Now()
	rev, err := pr.table.acquire(ctx, l)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		pr.log.Debug("change feed lease taken by a peer first", "partition", l.Partition)
		return nil
	}
	if err != nil {
		return fmt.Errorf("acquire lease %d: %w", l.Partition, err)
	}
	p := l.Partition
	w := pr.startWorker(pr.base, p, pr.lastDone[p])
	pr.lastDone[p] = w.done
	pr.mu.Lock()
	pr.held[p] = heldLease{rev: rev, renewed: sent, w: w}
	n := len(pr.held)
	pr.mu.Unlock()
	pr.metrics.setOwned(n)
	pr.log.Info("change feed lease acquired", "partition", p, "from", l.Owner, "owned", n)
	return nil
}

// reportLag exports the consumer's pending count of each owned partition.
func (pr *Processor) reportLag(ctx context.Context) {
	if pr.metrics == nil {
		return
	}
	for p := range pr.heldLeases() {
		info, err := pr.consumers[p].Info(ctx)
		if err != nil {
			pr.log.Debug("change feed lag unknown", "partition", p, "err", err)
			continue
		}
		pr.metrics.setPending(p, info.NumPending)
	}
}
