package changefeed

import (
	"slices"
)

// Lease is one partition's lease as an instance sees it in the lease bucket.
type Lease struct {
	// Partition is the partition the lease grants.
	Partition int
	// Owner is the instance holding the lease; empty when the lease is free
	// (never taken, or released).
	Owner string
	// Revision is the lease's revision in the bucket, which an acquirer passes
	// back to take it over; 0 when free.
	Revision uint64
	// Expired tells that the owner stopped renewing the lease a LeaseTTL ago,
	// by the observer's clock, or that the observer finds a lease in its own
	// name that it does not hold (left over from an earlier run).
	Expired bool
}

// Plan is what one instance does in a balancing step.
type Plan struct {
	// Release lists held partitions that the target gives to others.
	Release []int
	// Acquire lists free or expired leases that the target gives to the
	// instance. Partitions the target gives it that are still held live
	// (by a member releasing its surplus, or by a peer that has left and
	// not yet released) are not listed: they are taken once released, or
	// once expired.
	Acquire []Lease
}

// Balance computes self's step towards the target assignment (see assign)
// of leases among members. Every member computes the same target from the
// same membership and holdings, and the target stays the same while the
// members carry it out (a surplus released, a partition taken by the
// member the target names), so members acting on views that lag each
// other by a few writes still agree: each releases exactly the partitions
// the target gives to others and takes exactly its own, no two members
// race for a lease, and no partition changes owner more than once per
// membership change. Nothing is taken from a live owner: a surplus moves
// by release, and the releasing instance finishes its in-flight change
// first.
//
// leases holds one Lease per partition, self's held leases with Owner self
// and Expired false. Balance is pure, so that the strategy is testable
// without a server.
func Balance(leases []Lease, members []string, self string) Plan {
	members = memberList(members, self)
	target := assign(leases, members)
	var plan Plan
	for i, l := range leases {
		switch {
		case target[i] == self && (l.Owner == "" || l.Expired):
			plan.Acquire = append(plan.Acquire, l)
		case target[i] != self && l.Owner == self && !l.Expired:
			plan.Release = append(plan.Release, l.Partition)
		}
	}
	return plan
}

// memberList returns members with self, sorted, without duplicates.
func memberList(members []string, self string) []string {
	members = slices.Clone(members)
	if !slices.Contains(members, self) {
		members = append(members, self)
	}
	slices.Sort(members)
	return slices.Compact(members)
}

// assign returns the owner the target gives each lease (by index in
// leases), members being sorted by name:
//
//   - every partition is shared out: each member's quota is the partition
//     count divided by the member count, the remainder going one each to
//     the first members by name, so quotas depend on the membership alone;
//   - a member keeps its lowest held partitions up to its quota; the rest
//     of its holdings is its surplus;
//   - the pool is every partition no member keeps: surpluses, free and
//     expired leases, and leases still held by non-members (a peer that has
//     left and is finishing its in-flight changes before it releases them);
//   - the pool, in partition order, is dealt to the members below their
//     quota in name order, each taking a contiguous run as long as it lacks.
//
// Carrying the target out leaves it unchanged: a release turns a surplus
// into a free lease in the same place of the pool, and an acquisition
// removes a partition from the acquirer's own run while lowering what it
// lacks by one, so every run keeps its partitions.
func assign(leases []Lease, members []string) []string {
	target := make([]string, len(leases))
	member := map[string]bool{}
	for _, m := range members {
		member[m] = true
	}
	held := map[string][]int{} // indexes in leases, ascending
	var pool []int
	for i, l := range leases {
		if l.Owner != "" && !l.Expired && member[l.Owner] {
			held[l.Owner] = append(held[l.Owner], i)
		} else {
			pool = append(pool, i)
		}
	}
	quota := func(i int) int {
		q := len(leases) / len(members)
		if i < len(leases)%len(members) {
			q++
		}
		return q
	}
	for i, m := range members {
		have := held[m]
		if q := quota(i); len(have) > q {
			pool = append(pool, have[q:]...)
			have = have[:q]
		}
		for _, j := range have {
			target[j] = m
		}
	}
	slices.SortFunc(pool, func(a, b int) int { return leases[a].Partition - leases[b].Partition })
	next := 0
	for i, m := range members {
		need := quota(i) - len(held[m])
		for ; need > 0 && next < len(pool); need-- {
			target[pool[next]] = m
			next++
		}
	}
	return target
}
