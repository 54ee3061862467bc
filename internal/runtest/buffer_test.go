package runtest_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hostkit/hostkit/internal/runtest"
)

// TestBufferKeepsConcurrentWritesWhole writes lines from several goroutines
// while reading: every read sees whole lines only, and the end result holds
// every line once. Run with -race, an unlocked buffer also fails as a race.
func TestBufferKeepsConcurrentWritesWhole(t *testing.T) {
	const writers, lines = 8, 200
	var b runtest.Buffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		if s := b.String(); s != "" && !strings.HasSuffix(s, "\n") {
			t.Fatalf("a read saw part of a write: %q", s[max(0, len(s)-40):])
		}
	}
	seen := map[string]int{}
	for line := range strings.Lines(b.String()) {
		seen[line]++
	}
	for w := range writers {
		for i := range lines {
			if line := fmt.Sprintf("writer %d line %d\n", w, i); seen[line] != 1 {
				t.Errorf("%q written %d times, want 1", line, seen[line])
			}
		}
	}
	if got, want := len(seen), writers*lines; got != want {
		t.Errorf("%d distinct lines, want %d", got, want)
	}
}
