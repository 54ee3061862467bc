package queue

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	cfg := Config{Backoff: time.Second, MaxBackoff: 10 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10}
	for i, w := range want {
		attempt := i + 1
		if got := cfg.backoff(attempt); got != w*time.Second {
			t.Errorf("backoff(attempt %d) = %s, want %s", attempt, got, w*time.Second)
		}
	}
	if got := (Config{Backoff: 0, MaxBackoff: time.Second}).backoff(3); got != 0 {
		t.Errorf("backoff with a zero base = %s, want 0", got)
	}
}
