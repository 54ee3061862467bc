package changefeed

import (
	"hash/fnv"
	"time"
)

// Lease is one partition's lease as an instance sees it in the lease table.
type Lease struct {
	// Partition is the partition the lease grants.
	Partition int
	// Owner is the instance holding the lease; empty when the lease is free
	// (never taken, or released).
	Owner string
	// Revision is the lease's revision in the bucket, which an acquirer passes
	// back to take it over; 0 when free.
	Revision uint64
	// Expires is when the owner's last renewal runs out, by the observing
	// instance's clock.
	Expires time.Time
}

// Balance decides which leases self should try to acquire now. It follows
// the Cosmos DB change feed processor's equal-partitions strategy:
//
//   - the live instances are self and the owners of unexpired leases, and
//     each should hold target = ceil(partitions / live instances);
//   - if self holds fewer, it takes free leases, then expired ones, up to
//     target;
//   - if there are none, it steals one lease from the instance holding the
//     most, if that one holds more than target, or exactly target while self
//     is short by more than one (without that, 16 partitions over 3
//     instances could settle at 6/6/4 instead of 6/5/5).
//
// Stealing one lease per cycle lets the victim notice (at its next renewal)
// before more move, and avoids instances stealing back and forth. Candidates
// are tried from a starting point derived from self, so that instances
// starting together contend for different leases. A lease owned by self
// counts as self's while unexpired; an expired one is a candidate like any
// other (the caller marks leases it finds in its own name but does not hold
// as expired, so a restarted instance takes them back at once).
//
// leases holds one Lease per partition; Balance is pure, so that the
// strategy is testable without a server.
func Balance(leases []Lease, self string, now time.Time) []Lease {
	held := map[string]int{self: 0}
	var free, expired []Lease
	for _, l := range rotate(leases, self) {
		switch {
		case l.Owner == "":
			free = append(free, l)
		case !now.Before(l.Expires):
			expired = append(expired, l)
		default:
			held[l.Owner]++
		}
	}
	target := (len(leases) + len(held) - 1) / len(held)
	need := target - held[self]
	if need <= 0 {
		return nil
	}
	if candidates := append(free, expired...); len(candidates) > 0 {
		return candidates[:min(need, len(candidates))]
	}
	victim := busiest(held, self)
	if most := held[victim]; victim == "" || most < target || (most == target && need == 1) {
		return nil
	}
	for _, l := range rotate(leases, self) {
		if l.Owner == victim && now.Before(l.Expires) {
			return []Lease{l}
		}
	}
	return nil
}

// busiest returns the instance other than self holding the most leases, the
// first by name among equals so that the choice is deterministic; empty if
// there is no other instance.
func busiest(held map[string]int, self string) string {
	var name string
	for owner, n := range held {
		if owner == self {
			continue
		}
		if name == "" || n > held[name] || (n == held[name] && owner < name) {
			name = owner
		}
	}
	return name
}

// rotate returns leases starting at an offset derived from self's name.
func rotate(leases []Lease, self string) []Lease {
	if len(leases) == 0 {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(self))
	start := int(h.Sum32() % uint32(len(leases)))
	return append(leases[start:len(leases):len(leases)], leases[:start]...)
}
