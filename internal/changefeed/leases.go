package changefeed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseTable reads and writes the lease bucket for one instance.
//
// How a lease expires. A renewal is an Update that must name the revision
// last written, so it either creates a new revision or fails. Readers judge
// expiry themselves: a lease whose revision has not changed for LeaseTTL, by
// the reader's own clock since it first saw that revision, is expired (the
// way Kubernetes' leader election reads its Lease objects). The server does
// not expire anything. The alternatives were worse here:
//
//   - bucket TTL (the stream's MaxAge) is at least 100ms, but the server
//     checks ages at most every 250ms, so leases would outlive their TTL by a
//     varying amount, and an expired lease would vanish without notice;
//   - per-key TTL (Nats-TTL) is whole seconds, at least 1s, and can only be
//     set on create, not on the Update that renews;
//   - an owner+timestamp value compares clocks of different machines.
//
// Observed expiry needs no clock agreement and no server timer; its cost is
// that an instance that has just started treats every lease it sees as live
// for one LeaseTTL, which only delays taking over a crashed peer's leases
// (released leases are free at once).
//
// leaseTable is used by the balance loop's goroutine only.
type leaseTable struct {
	kv   jetstream.KeyValue
	self string
	ttl  time.Duration
	// seen records, per partition, the revision last read and when it was
	// first read.
	seen map[int]sighting
}

type sighting struct {
	rev uint64
	at  time.Time
}

func newLeaseTable(kv jetstream.KeyValue, self string, ttl time.Duration) *leaseTable {
	return &leaseTable{kv: kv, self: self, ttl: ttl, seen: map[int]sighting{}}
}

func leaseKey(p int) string { return strconv.Itoa(p) }

// read returns one Lease per partition. held gives the revision and renewal
// time of the leases this instance holds: those expire LeaseTTL after their
// renewal was sent, the earliest any reader can judge them expired. A lease
// in this instance's name that it does not hold is left over from an
// earlier run under the same name; it is reported expired so that Balance
// offers it back at once.
func (t *leaseTable) read(ctx context.Context, partitions int, held map[int]heldLease) ([]Lease, error) {
	leases := make([]Lease, partitions)
	for p := range leases {
		leases[p].Partition = p
		e, err := t.kv.Get(ctx, leaseKey(p))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			delete(t.seen, p)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read lease %d: %w", p, err)
		}
		now := time.Now()
		l := &leases[p]
		l.Owner, l.Revision = string(e.Value()), e.Revision()
		if s, ok := t.seen[p]; !ok || s.rev != l.Revision {
			t.seen[p] = sighting{rev: l.Revision, at: now}
		}
		switch h, ok := held[p]; {
		case ok && h.rev == l.Revision:
			l.Expires = h.renewed.Add(t.ttl)
		case l.Owner == t.self:
			l.Expires = time.Time{}
		default:
			l.Expires = t.seen[p].at.Add(t.ttl)
		}
	}
	return leases, nil
}

// acquire takes l, free or someone else's, and returns the new revision. It
// fails with jetstream.ErrKeyExists or jetstream.ErrKeyRevisionMismatch if
// another instance changed the lease since it was read.
func (t *leaseTable) acquire(ctx context.Context, l Lease) (uint64, error) {
	if l.Owner == "" {
		// Create also succeeds over a released (deleted) lease.
		return t.kv.Create(ctx, leaseKey(l.Partition), []byte(t.self))
	}
	return t.kv.Update(ctx, leaseKey(l.Partition), []byte(t.self), l.Revision)
}

// renew rewrites a held lease; jetstream.ErrKeyRevisionMismatch means it was
// taken over.
func (t *leaseTable) renew(ctx context.Context, p int, rev uint64) (uint64, error) {
	return t.kv.Update(ctx, leaseKey(p), []byte(t.self), rev)
}

// release deletes a held lease unless it was taken over meanwhile.
func (t *leaseTable) release(ctx context.Context, p int, rev uint64) error {
	err := t.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // someone else's now: nothing to release
	}
	return err
}
