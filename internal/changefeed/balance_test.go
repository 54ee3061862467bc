package changefeed_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hostkit/hostkit/internal/changefeed"
)

// run is a range of consecutive partitions in one state.
type run struct {
	owner   string // empty: free
	n       int
	expired bool
}

// leaseTable lays runs out over consecutive partitions. Revisions are
// 100+partition so that a test can see which revision an acquirer is given.
func leaseTable(runs ...run) []changefeed.Lease {
	var leases []changefeed.Lease
	for _, r := range runs {
		for range r.n {
			p := len(leases)
			l := changefeed.Lease{Partition: p}
			if r.owner != "" {
				l.Owner, l.Revision, l.Expired = r.owner, uint64(100+p), r.expired
			}
			leases = append(leases, l)
		}
	}
	return leases
}

func TestBalance(t *testing.T) {
	tests := []struct {
		name    string
		leases  []changefeed.Lease
		members []string
		self    string
		acquire []int
		release []int
	}{
		{"alone takes every free lease", leaseTable(run{"", 16, false}), nil, "a", seq(0, 16), nil},
		{"nothing to balance", nil, nil, "a", nil, nil},
		{"even split is stable", leaseTable(run{"a", 8, false}, run{"b", 8, false}), []string{"a", "b"}, "a", nil, nil},
		{"sole owner releases half to a newcomer", leaseTable(run{"b", 16, false}), []string{"a", "b"}, "b", nil, seq(8, 16)},
		{"newcomer takes nothing live", leaseTable(run{"b", 16, false}), []string{"a", "b"}, "a", nil, nil},
		{"newcomer takes the released", leaseTable(run{"b", 8, false}, run{"", 8, false}), []string{"a", "b"}, "a", seq(8, 16), nil},
		{"remainder goes to the first names", leaseTable(run{"", 16, false}), []string{"a", "b", "c"}, "a", seq(0, 6), nil},
		{"second name deals after the first", leaseTable(run{"", 16, false}), []string{"a", "b", "c"}, "b", seq(6, 11), nil},
		{"last name deals last", leaseTable(run{"", 16, false}), []string{"a", "b", "c"}, "c", seq(11, 16), nil},
		{"above quota releases its highest", leaseTable(run{"c", 8, false}, run{"a", 4, false}, run{"b", 4, false}), []string{"a", "b", "c"}, "c", nil, seq(5, 8)},
		{"expired leases go to the live", leaseTable(run{"b", 8, false}, run{"c", 8, true}), []string{"a", "b"}, "a", seq(8, 16), nil},
		{"takes back its own leftover", leaseTable(run{"a", 1, true}), nil, "a", []int{0}, nil},
		{"a live non-member's lease is left alone", leaseTable(run{"x", 2, false}, run{"", 14, false}), []string{"a", "b"}, "b", seq(9, 16), nil},
		{"waits for releases when short of free leases", leaseTable(run{"", 2, false}, run{"b", 14, false}), []string{"a", "b"}, "a", []int{0, 1}, seq(8, 14)[:0]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := changefeed.Balance(tt.leases, tt.members, tt.self)
			var got []int
			for _, l := range plan.Acquire {
				got = append(got, l.Partition)
				if in := tt.leases[l.Partition]; l != in {
					t.Errorf("acquire %+v, want the lease as read: %+v", l, in)
				}
			}
			if !slices.Equal(got, tt.acquire) {
				t.Errorf("Acquire = %v, want %v", got, tt.acquire)
			}
			if !slices.Equal(plan.Release, tt.release) {
				t.Errorf("Release = %v, want %v", plan.Release, tt.release)
			}
		})
	}
}

// TestBalanceConvergesInOneStepWithoutThrash plays balancing steps of every
// member against a shared table, as if every write succeeded, for
// membership changes up to 256 partitions and 16 members. Each member acts
// once per round (releases land before the next round's acquisitions). The
// table must be balanced after two rounds (release, then take) and no
// partition may change owner more than once.
func TestBalanceConvergesInOneStepWithoutThrash(t *testing.T) {
	names := func(n int) []string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("w%02d", i))
		}
		return s
	}
	tests := []struct {
		partitions int
		before     []string // members that split the table evenly before
		after      []string
	}{
		{16, nil, names(1)},
		{16, nil, names(2)},
		{256, nil, names(16)},
		{256, names(2), names(3)},
		{256, names(3), names(16)},
		{256, names(16), names(15)},
		{256, names(16), names(16)[1:]},
		{17, names(4), names(5)},
		{5, names(2), names(7)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("P=%d,%d→%d", tt.partitions, len(tt.before), len(tt.after)), func(t *testing.T) {
			leases := leaseTable(run{"", tt.partitions, false})
			if len(tt.before) > 0 {
				play(leases, tt.before, 3)
			}
			moves := map[int]int{}
			start := slices.Clone(leases)
			rounds := play(leases, tt.after, 10)
			if rounds > 2 {
				t.Errorf("balanced after %d rounds, want at most 2", rounds)
			}
			held := map[string]int{}
			for i, l := range leases {
				held[l.Owner]++
				if l.Owner != start[i].Owner && start[i].Owner != "" {
					moves[i]++
				}
			}
			lo, hi := tt.partitions/len(tt.after), (tt.partitions+len(tt.after)-1)/len(tt.after)
			for _, m := range tt.after {
				if held[m] < lo || held[m] > hi {
					t.Errorf("%s holds %d, want %d..%d (%v)", m, held[m], lo, hi, held)
				}
			}
			for p, n := range moves {
				if n > 1 {
					t.Errorf("partition %d moved %d times", p, n)
				}
			}
		})
	}
}

// play runs rounds until nothing changes (or max), returning how many
// rounds changed something. A member that left drops its leases to free.
func play(leases []changefeed.Lease, members []string, max int) int {
	for i := range leases {
		if o := leases[i].Owner; o != "" && !slices.Contains(members, o) {
			leases[i] = changefeed.Lease{Partition: i}
		}
	}
	rounds := 0
	for range max {
		snapshot := slices.Clone(leases)
		changed := false
		for _, self := range members {
			plan := changefeed.Balance(snapshot, members, self)
			for _, p := range plan.Release {
				leases[p] = changefeed.Lease{Partition: p}
				changed = true
			}
			for _, l := range plan.Acquire {
				if leases[l.Partition] != l {
					panic(fmt.Sprintf("%s acquires %d, which another member took in the same round", self, l.Partition))
				}
				leases[l.Partition] = changefeed.Lease{Partition: l.Partition, Owner: self, Revision: l.Revision + 1}
				changed = true
			}
		}
		if !changed {
			break
		}
		rounds++
	}
	return rounds
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
