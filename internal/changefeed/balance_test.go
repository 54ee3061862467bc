package changefeed_test

import (
	"slices"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/changefeed"
)

var now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

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
				l.Owner, l.Revision = r.owner, uint64(100+p)
				l.Expires = now.Add(time.Second)
				if r.expired {
					l.Expires = now.Add(-time.Second)
				}
			}
			leases = append(leases, l)
		}
	}
	return leases
}

func TestBalance(t *testing.T) {
	tests := []struct {
		name   string
		leases []changefeed.Lease
		self   string
		want   []int // partitions to acquire
	}{
		{"alone takes every free lease", leaseTable(run{"", 16, false}), "a", seq(0, 16)},
		{"nothing to balance", nil, "a", nil},
		{"even split is stable", leaseTable(run{"a", 8, false}, run{"b", 8, false}), "a", nil},
		{"newcomer steals one from a sole owner", leaseTable(run{"b", 16, false}), "a", []int{-1}},
		{"steals from an owner above target", leaseTable(run{"a", 7, false}, run{"b", 9, false}), "a", []int{-1}},
		{"holder above target takes nothing", leaseTable(run{"a", 10, false}, run{"b", 6, false}), "a", nil},
		{"short by two steals from an owner at target", leaseTable(run{"a", 4, false}, run{"b", 6, false}, run{"c", 6, false}), "a", []int{-1}},
		{"short by one leaves owners at target alone", leaseTable(run{"a", 5, false}, run{"b", 6, false}, run{"c", 5, false}), "a", nil},
		{"expired leases go to the live", leaseTable(run{"b", 8, false}, run{"c", 8, true}), "a", seq(8, 16)},
		{"owner with only expired leases is not live", leaseTable(run{"a", 8, false}, run{"c", 8, true}), "a", seq(8, 16)},
		{"free before expired", leaseTable(run{"a", 1, false}, run{"b", 1, false}, run{"c", 1, true}, run{"", 1, false}), "a", []int{3}},
		{"no steal while free leases fall short", leaseTable(run{"", 2, false}, run{"b", 14, false}), "a", []int{0, 1}},
		{"takes back its own expired lease", leaseTable(run{"a", 1, true}), "a", []int{0}},
		{"lease expiring now is expired", []changefeed.Lease{{Partition: 0, Owner: "b", Revision: 7, Expires: now}}, "a", []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := changefeed.Balance(tt.leases, tt.self, now)
			if slices.Equal(tt.want, []int{-1}) {
				assertSteal(t, tt.leases, tt.self, got)
				return
			}
			var parts []int
			for _, l := range got {
				parts = append(parts, l.Partition)
				if in := tt.leases[l.Partition]; l != in {
					t.Errorf("acquire %+v, want the lease as read: %+v", l, in)
				}
			}
			slices.Sort(parts)
			if !slices.Equal(parts, tt.want) {
				t.Errorf("Balance = %v, want %v", parts, tt.want)
			}
		})
	}
}

// assertSteal checks that got is one live lease of the instance holding the
// most leases other than self.
func assertSteal(t *testing.T, leases []changefeed.Lease, self string, got []changefeed.Lease) {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("Balance = %v, want one lease stolen", got)
	}
	held := map[string]int{}
	for _, l := range leases {
		held[l.Owner]++
	}
	l := got[0]
	if l.Owner == self || l.Owner == "" || !now.Before(l.Expires) {
		t.Fatalf("stole %+v, want a live lease of another instance", l)
	}
	for owner, n := range held {
		if owner != self && owner != "" && n > held[l.Owner] {
			t.Fatalf("stole from %s (%d leases), but %s holds %d", l.Owner, held[l.Owner], owner, n)
		}
	}
	if l != leases[l.Partition] {
		t.Fatalf("steal %+v, want the lease as read: %+v", l, leases[l.Partition])
	}
}

// TestBalanceConverges plays balance cycles of three instances against a
// shared table until nothing changes, as if every acquisition succeeded,
// and checks that they settle as evenly as target allows.
func TestBalanceConverges(t *testing.T) {
	tests := []struct {
		name  string
		start []changefeed.Lease
	}{
		{"from a fresh table", leaseTable(run{"", 16, false})},
		{"from one owner of all", leaseTable(run{"a", 16, false})},
		{"from 6/6/4", leaseTable(run{"a", 6, false}, run{"b", 6, false}, run{"c", 4, false})},
		{"from a dead owner's leases", leaseTable(run{"x", 10, true}, run{"a", 6, false})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leases := slices.Clone(tt.start)
			for round := 0; settle(leases, "a", "b", "c"); round++ {
				if round > 100 {
					t.Fatal("no balance within 100 rounds")
				}
			}
			held := map[string]int{}
			for _, l := range leases {
				held[l.Owner]++
			}
			got := []int{held["a"], held["b"], held["c"]}
			slices.Sort(got)
			if want := []int{5, 5, 6}; !slices.Equal(got, want) {
				t.Fatalf("settled at %v, want %v", got, want)
			}
		})
	}
}

// settle runs one balance cycle per instance and reports whether any lease
// changed hands.
func settle(leases []changefeed.Lease, instances ...string) bool {
	changed := false
	for _, self := range instances {
		for _, l := range changefeed.Balance(leases, self, now) {
			leases[l.Partition] = changefeed.Lease{Partition: l.Partition, Owner: self, Revision: l.Revision + 1, Expires: now.Add(time.Second)}
			changed = true
		}
	}
	return changed
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
