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
	// Release lists held partitions above the instance's fair share.
	Release []int
	// Acquire lists free or expired leases assigned to the instance.
	Acquire []Lease
}

// Balance computes self's step towards a target assignment that every
// member computes alike from the same view, so that the members converge
// in one step each and no partition moves twice:
//
//   - members are the live instances (self among them), sorted by name;
//   - leases held live by instances that are not members (a peer that has
//     just left and not yet released, or a foreign writer) are left alone;
//   - the other partitions are shared out: each member's quota is their
//     count divided by the member count, the remainder going one each to
//     the first members by name, so quotas do not depend on who holds what;
//   - a member above its quota releases the surplus (its highest partitions);
//   - free and expired leases, in partition order, are dealt to the members
//     below their quota in name order, each taking as many as it lacks.
//
// Nothing is ever taken from a live owner: a surplus moves by release, so a
// partition changes owner at most once per membership change, and the
// releasing instance finishes its in-flight change first.
//
// leases holds one Lease per partition, self's held leases with Owner self
// and Expired false. Balance is pure, so that the strategy is testable
// without a server.
func Balance(leases []Lease, members []string, self string) Plan {
	members = slices.Clone(members)
	if !slices.Contains(members, self) {
		members = append(members, self)
	}
	slices.Sort(members)
	members = slices.Compact(members)

	held := map[string][]int{}
	var takeable []Lease
	shared := len(leases)
	for _, l := range leases {
		switch {
		case l.Owner == "" || l.Expired:
			takeable = append(takeable, l)
		case slices.Contains(members, l.Owner):
			held[l.Owner] = append(held[l.Owner], l.Partition)
		default:
			shared-- // a live non-member's: not ours to share
		}
	}

	quota := func(i int) int {
		q := shared / len(members)
		if i < shared%len(members) {
			q++
		}
		return q
	}
	var plan Plan
	next := 0
	for i, m := range members {
		q, have := quota(i), held[m]
		if m == self && len(have) > q {
			surplus := slices.Clone(have)
			slices.Sort(surplus)
			plan.Release = surplus[q:]
		}
		need := q - len(have)
		if need <= 0 {
			continue
		}
		end := min(next+need, len(takeable))
		if m == self {
			plan.Acquire = takeable[next:end]
		}
		next = end
	}
	return plan
}
