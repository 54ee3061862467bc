package fenced_test

import (
	"errors"
	"testing"

	"github.com/hostkit/hostkit/docs/example/fenced"
	"github.com/hostkit/hostkit/internal/changefeed"
)

// TestStoreRefusesAStaleOwner: after the new owner (token 9) has written,
// the old owner (token 5), resumed from a pause, cannot overwrite the key
// with its older change; the new owner goes on writing.
func TestStoreRefusesAStaleOwner(t *testing.T) {
	s := fenced.NewStore()
	steps := []struct {
		token uint64
		data  string
		stale bool
	}{
		{5, "n=1", false},
		{9, "n=2", false},
		{5, "n=1 again", true},
		{9, "n=3", false},
	}
	for _, st := range steps {
		err := s.Apply(changefeed.Change{Key: "k", Partition: 3, Data: []byte(st.data), FencingToken: st.token})
		if got := errors.Is(err, fenced.ErrStale); got != st.stale {
			t.Fatalf("Apply(token %d, %s) = %v, want stale = %v", st.token, st.data, err, st.stale)
		}
	}
	if got, want := string(s.Value("k")), "n=3"; got != want {
		t.Fatalf("k = %q, want %q", got, want)
	}
}
