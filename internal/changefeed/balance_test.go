package changefeed_test

import (
	"fmt"
	"math/rand/v2"
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
		// x has left and not yet released: its leases are dealt like the
		// rest, and taken once free.
		{"a live non-member's lease is dealt, not taken", leaseTable(run{"x", 2, false}, run{"", 14, false}), []string{"a", "b"}, "a", seq(2, 8), nil},
		{"a live non-member's lease does not shift the others' runs", leaseTable(run{"x", 2, false}, run{"", 14, false}), []string{"a", "b"}, "b", seq(8, 16), nil},
		// The target counts a surplus still held: the newcomer waits for
		// exactly the partitions the holder releases to it, so two
		// newcomers never pick the same free lease.
		{"newcomers' runs count the surplus not yet released", leaseTable(run{"a", 8, false}, run{"", 4, false}, run{"a", 4, false}), []string{"a", "b", "c"}, "c", seq(11, 12), nil},
		{"first newcomer takes the free leases in its run", leaseTable(run{"a", 8, false}, run{"", 4, false}, run{"a", 4, false}), []string{"a", "b", "c"}, "b", seq(8, 11), nil},
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

// TestBalanceStepsAgreeWhileViewsLag plays a membership change one write
// at a time, in random order, each member acting on a view of the table
// that lags up to maxLag writes behind (as the watched views of replicas
// do), knowing only its own holdings exactly. Whatever the order, every
// step must agree with the target computed when the membership changed:
// a member releases only what the target gives to others and acquires
// only what it gives to it, so no two members race for a lease (an
// acquisition of a lease that changed since it was seen fails, as in the
// bucket), no partition changes owner twice, and the table ends at the
// target with every member holding its fair share.
func TestBalanceStepsAgreeWhileViewsLag(t *testing.T) {
	names := func(from, to int) []string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprintf("w%02d", i))
		}
		return s
	}
	const maxLag = 16
	tests := []struct {
		name          string
		partitions    int
		before, after []string
		killed        bool // the leavers' leases expire instead of being released
	}{
		{"P=256,0→16", 256, nil, names(0, 16), false},
		{"P=256,2→3", 256, names(0, 2), names(0, 3), false},
		{"P=256,3→16", 256, names(0, 3), names(0, 16), false},
		{"P=256,16→15 stopped", 256, names(0, 16), names(0, 15), false},
		{"P=256,16→15 killed", 256, names(0, 16), names(0, 15), true},
		{"P=256,16→15 first name stopped", 256, names(0, 16), names(1, 16), false},
		{"P=256,8→6 stopped while 2 join", 256, names(0, 8), append(names(2, 8), names(8, 10)...), false},
		{"P=17,4→5", 17, names(0, 4), names(0, 5), false},
		{"P=5,2→7", 5, names(0, 2), names(0, 7), false},
	}
	for _, tt := range tests {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("%s/seed=%d", tt.name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 1))
				table := leaseTable(run{"", tt.partitions, false})
				if len(tt.before) > 0 {
					play(table, tt.before, 3)
				}
				var leavers []string
				for _, m := range tt.before {
					if !slices.Contains(tt.after, m) {
						leavers = append(leavers, m)
					}
				}
				for i, l := range table {
					if slices.Contains(leavers, l.Owner) {
						table[i].Expired = tt.killed
					}
				}
				start := slices.Clone(table)
				target := changefeed.Assign(table, tt.after)
				history := [][]changefeed.Lease{slices.Clone(table)}
				rev := uint64(1000)
				actors := append(slices.Clone(tt.after), leavers...)
				for step := 0; !done(table, target); step++ {
					if step > 100_000 {
						t.Fatalf("not at the target after %d steps: %v", step, owners(table))
					}
					self := actors[rng.IntN(len(actors))]
					var releases []int
					var acquires []changefeed.Lease
					if slices.Contains(leavers, self) {
						if tt.killed {
							continue
						}
						releases = heldBy(table, self) // stopping: its leases go back
					} else {
						view := lagged(history, rng.IntN(min(maxLag, len(history))), table, self)
						plan := changefeed.Balance(view, tt.after, self)
						for _, p := range plan.Release {
							if target[p] == self {
								t.Fatalf("step %d: %s releases %d, which the target gives to it", step, self, p)
							}
						}
						for _, l := range plan.Acquire {
							if target[l.Partition] != self {
								t.Fatalf("step %d: %s acquires %d, which the target gives to %q", step, self, l.Partition, target[l.Partition])
							}
						}
						releases, acquires = plan.Release, plan.Acquire
					}
					if n := len(releases) + len(acquires); n > 0 {
						if i := rng.IntN(n); i < len(releases) {
							table[releases[i]] = changefeed.Lease{Partition: releases[i]}
						} else {
							l := acquires[i-len(releases)]
							if now := table[l.Partition]; now.Owner != l.Owner || now.Revision != l.Revision {
								t.Fatalf("step %d: %s acquires %d as %+v, but it is now %+v: two members raced for it", step, self, l.Partition, l, now)
							}
							rev++
							table[l.Partition] = changefeed.Lease{Partition: l.Partition, Owner: self, Revision: rev}
						}
						history = append(history, slices.Clone(table))
					}
				}
				for p := range table {
					// Owners a partition had, free gaps left out: at most
					// one change.
					var seen []string
					for _, h := range history {
						if o := h[p].Owner; o != "" && (len(seen) == 0 || seen[len(seen)-1] != o) {
							seen = append(seen, o)
						}
					}
					if start[p].Owner != "" && len(seen) > 2 || start[p].Owner == "" && len(seen) > 1 {
						t.Errorf("partition %d changed owner more than once: %v", p, seen)
					}
				}
				lo, hi := tt.partitions/len(tt.after), (tt.partitions+len(tt.after)-1)/len(tt.after)
				for _, m := range tt.after {
					if n := len(heldBy(table, m)); n < lo || n > hi {
						t.Errorf("%s holds %d, want %d..%d", m, n, lo, hi)
					}
				}
			})
		}
	}
}

// lagged is the table as member self sees it lag writes back: the view of
// the others' leases is old, its own holdings are exact, and a lease the
// view shows in its name that it no longer holds is reported expired, as
// the processor's snapshot does.
func lagged(history [][]changefeed.Lease, lag int, now []changefeed.Lease, self string) []changefeed.Lease {
	view := slices.Clone(history[len(history)-1-lag])
	for p := range view {
		switch {
		case now[p].Owner == self:
			view[p] = now[p]
		case view[p].Owner == self:
			view[p].Expired = true
		}
	}
	return view
}

func heldBy(leases []changefeed.Lease, owner string) []int {
	var ps []int
	for _, l := range leases {
		if l.Owner == owner && !l.Expired {
			ps = append(ps, l.Partition)
		}
	}
	return ps
}

func owners(leases []changefeed.Lease) []string {
	o := make([]string, len(leases))
	for i, l := range leases {
		o[i] = l.Owner
	}
	return o
}

func done(leases []changefeed.Lease, target []string) bool {
	for i, l := range leases {
		if l.Owner != target[i] || l.Expired {
			return false
		}
	}
	return true
}
