package changefeed

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// view is this instance's picture of the lease bucket, kept by a watch of
// the bucket instead of reads: each write reaches every instance once,
// pushed by the server, so the cost of keeping it grows with the writes
// (one renewal per partition and one heartbeat per instance per
// RenewInterval), not with partitions × instances.
type view struct {
	ttl time.Duration
	now func() time.Duration
	log *slog.Logger

	// changed receives a value (without blocking) when an owner or a member
	// appears, changes or goes: what the balancer acts on. Renewals that
	// change only a revision do not signal.
	changed chan struct{}

	mu     sync.Mutex
	synced bool // the watch has delivered the bucket's state once
	// membersChanged is when a member key last appeared or went
	// (monotonic), or when the view was first synced.
	membersChanged time.Duration
	leases         map[int]sighting
	members        map[string]sighting
	// confirmed collects the keys a re-watch replays; keys it does not
	// replay were deleted while the watch was down.
	confirmed map[string]bool
}

// sighting is a key's value, its revision and when this instance first saw
// that revision (monotonic).
type sighting struct {
	value string
	rev   uint64
	seen  time.Duration
}

func newView(ttl time.Duration, now func() time.Duration, log *slog.Logger) *view {
	return &view{ttl: ttl, now: now, log: log, changed: make(chan struct{}, 1),
		leases: map[int]sighting{}, members: map[string]sighting{}}
}

// run watches kv until ctx ends, watching again after a failure.
func (v *view) run(ctx context.Context, kv jetstream.KeyValue, retry time.Duration) {
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			v.log.Warn("change feed lease watch failed; retrying", "err", err, "retry_in", retry)
			sleep(ctx, retry)
			continue
		}
		v.mu.Lock()
		v.confirmed = map[string]bool{}
		v.mu.Unlock()
		for e := range w.Updates() {
			v.apply(e)
		}
		_ = w.Stop()
		if ctx.Err() == nil {
			v.log.Warn("change feed lease watch ended; watching again")
			sleep(ctx, retry)
		}
	}
}

// apply records one watched entry; nil marks the end of the initial state.
func (v *view) apply(e jetstream.KeyValueEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e == nil {
		v.dropUnconfirmed()
		if !v.synced {
			v.membersChanged = v.now()
		}
		v.synced = true
		v.signal()
		return
	}
	if v.confirmed != nil {
		v.confirmed[e.Key()] = true
	}
	deleted := e.Operation() != jetstream.KeyValuePut
	s := sighting{value: string(e.Value()), rev: e.Revision(), seen: v.now()}
	p, member := parseKey(e.Key())
	switch {
	case p >= 0:
		v.leases = record(v, v.leases, p, s, deleted)
	case member != "":
		n := len(v.members)
		v.members = record(v, v.members, member, s, deleted)
		if len(v.members) != n {
			v.membersChanged = s.seen
		}
	}
}

// record keeps what the view needs of key k seen as s: on a delete it
// forgets k; a replayed revision keeps when it was first seen. It signals
// when a value appears, changes or goes.
func record[K comparable](v *view, m map[K]sighting, k K, s sighting, deleted bool) map[K]sighting {
	old, had := m[k]
	switch {
	case deleted:
		delete(m, k)
		if had {
			v.signal()
		}
	case had && old.rev == s.rev:
	default:
		m[k] = s
		if !had || old.value != s.value {
			v.signal()
		}
	}
	return m
}

// dropUnconfirmed forgets the keys a re-watch did not replay.
func (v *view) dropUnconfirmed() {
	if v.confirmed == nil {
		return
	}
	for p := range v.leases {
		if !v.confirmed[leaseKey(p)] {
			delete(v.leases, p)
		}
	}
	for m := range v.members {
		if !v.confirmed[memberKey(m)] {
			delete(v.members, m)
		}
	}
	v.confirmed = nil
}

func (v *view) signal() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// lastMemberChange returns when a member key last appeared or went, by
// the view's clock.
func (v *view) lastMemberChange() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.membersChanged
}

func (v *view) isSynced() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.synced
}

// snapshot is the view at one moment, as Balance takes it.
type snapshot struct {
	leases  []Lease
	members []string
	// revs are the revisions seen per partition, to notice a held lease
	// written by someone else.
	owners map[int]sighting
	// next is when the next key expires, if nothing is written meanwhile.
	next time.Duration
	// expired are the member keys of instances judged dead, with the
	// revision judged, for the lowest live member to delete (see balance).
	expired map[string]uint64
}

// snapshot returns the leases of partitions 0..partitions-1 and the live
// members at monotonic time now. held overrides the view with the leases
// self holds, which it knows better; a lease in self's name it does not
// hold is left over from an earlier run under the same name and reported
// expired, so that Balance offers it back at once.
func (v *view) snapshot(partitions int, self string, held map[int]*lease, now time.Duration) snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := snapshot{leases: make([]Lease, partitions), owners: map[int]sighting{}, next: -1}
	expires := func(seen time.Duration) bool {
		at := seen + v.ttl
		if at > now && (s.next < 0 || at < s.next) {
			s.next = at
		}
		return at <= now
	}
	for p := range s.leases {
		l := &s.leases[p]
		l.Partition = p
		if _, ok := held[p]; ok {
			l.Owner = self
			continue
		}
		seen, ok := v.leases[p]
		if !ok {
			continue
		}
		s.owners[p] = seen
		l.Owner, l.Revision = seen.value, seen.rev
		l.Expired = seen.value == self || expires(seen.seen)
	}
	for p, seen := range v.leases {
		if _, ok := held[p]; ok {
			s.owners[p] = seen
		}
	}
	for m, seen := range v.members {
		switch {
		case m == self:
		case !expires(seen.seen):
			s.members = append(s.members, m)
		default:
			if s.expired == nil {
				s.expired = map[string]uint64{}
			}
			s.expired[m] = seen.rev
		}
	}
	s.members = append(s.members, self)
	slices.Sort(s.members)
	return s
}
