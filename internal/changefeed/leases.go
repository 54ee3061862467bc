package changefeed

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The lease bucket holds two kinds of keys:
//
//   - <partition> (0, 1, ...): the partition's lease, valued by the owning
//     instance's name. Its owner rewrites it every RenewInterval with an
//     Update naming the revision it last wrote, so a renewal either proves
//     that nobody took the lease meanwhile or fails.
//   - member.<instance>: the instance's heartbeat, rewritten every
//     RenewInterval, deleted on Stop. The live members share the partitions.
//     The key of an instance that died is deleted by the live member first
//     by name once it judges the key expired: otherwise every instance that
//     starts later would count the dead one as live for its first LeaseTTL
//     (see below), and balance towards another target than its peers.
//
// How a lease expires. Readers judge expiry themselves, from the watched
// view of the bucket: a key whose revision has not changed for LeaseTTL, by
// the reader's own monotonic clock since it first saw that revision, is
// expired (the way Kubernetes' leader election reads its Lease objects).
// The server expires nothing. The alternatives were worse here:
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
// The owner's side of the same rule is the fencing deadline: a renewal sent
// at time s lets the owner use the lease until s + LeaseTTL - Margin, since
// no peer can have seen that revision before s.

// memberPrefix starts the key of an instance's heartbeat.
const memberPrefix = "member."

func leaseKey(p int) string { return strconv.Itoa(p) }

func memberKey(instance string) string { return memberPrefix + instance }

// parseKey tells a lease key (partition >= 0) from a member key (name set).
func parseKey(key string) (partition int, member string) {
	if m, ok := strings.CutPrefix(key, memberPrefix); ok {
		return -1, m
	}
	p, err := strconv.Atoi(key)
	if err != nil || p < 0 {
		return -1, ""
	}
	return p, ""
}

// leaseTable writes the lease bucket for one instance.
type leaseTable struct {
	kv   jetstream.KeyValue
	self string
}

// acquire takes l, free or expired, and returns the new revision. It fails
// with jetstream.ErrKeyExists or jetstream.ErrKeyRevisionMismatch if another
// instance changed the lease since it was seen.
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

// appliedRenewal reads lease p after a renewal naming rev failed: if the
// lease is still in this instance's name at a later revision, an earlier
// renewal whose answer was lost was applied, and its revision is returned.
func (t *leaseTable) appliedRenewal(ctx context.Context, p int, rev uint64) (uint64, bool, error) {
	e, err := t.kv.Get(ctx, leaseKey(p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return e.Revision(), string(e.Value()) == t.self && e.Revision() > rev, nil
}

// release deletes a held lease unless it was taken over meanwhile. A
// renewal applied but unanswered (cut off by Stop, say) has moved the
// revision on: the lease is then deleted at that revision.
func (t *leaseTable) release(ctx context.Context, p int, rev uint64) error {
	err := t.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(rev))
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	latest, mine, err := t.appliedRenewal(ctx, p, rev)
	if err != nil || !mine {
		return err // someone else's now: nothing to release
	}
	err = t.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(latest))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil
	}
	return err
}

// heartbeat announces this instance as a live member.
func (t *leaseTable) heartbeat(ctx context.Context) error {
	_, err := t.kv.Put(ctx, memberKey(t.self), []byte(t.self))
	return err
}

// forget deletes the member key of an instance judged dead, unless it
// has changed since revision rev (a heartbeat, or a peer's delete); it
// reports whether it deleted the key.
func (t *leaseTable) forget(ctx context.Context, instance string, rev uint64) (bool, error) {
	err := t.kv.Delete(ctx, memberKey(instance), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, nil
	}
	return err == nil, err
}

// leave removes this instance from the members.
func (t *leaseTable) leave(ctx context.Context) error {
	return t.kv.Delete(ctx, memberKey(t.self))
}

// lease is a lease this instance holds, shared by the renewer (which moves
// its deadline), the balancer (which acquires and releases it) and the
// partition's worker (which checks it before every handling and ack).
type lease struct {
	partition int
	// token is the revision written by the acquisition: the fencing token.
	// A later owner's acquisition writes a later revision.
	token uint64
	w     *worker

	// deadline is the monotonic time (see Processor.now) after which the
	// lease must not be used unless a renewal moves it.
	deadline atomic.Int64

	mu  sync.Mutex // serialises the lease's writes
	rev uint64     // the revision last written, named by the next write
	// unconfirmed is when the first renewal since the last answered one
	// was sent (monotonic); 0 when every renewal was answered.
	unconfirmed time.Duration
	gone        bool // lost or released: no more writes
}

// fence reports the fencing token and whether the lease may be used at
// monotonic time now.
func (l *lease) fence(now time.Duration) (uint64, bool) {
	return l.token, int64(now) < l.deadline.Load()
}

// extend moves the deadline to a renewal sent at monotonic time sent.
func (l *lease) extend(sent, usable time.Duration) {
	l.deadline.Store(int64(sent + usable))
}
