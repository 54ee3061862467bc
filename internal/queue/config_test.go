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

func TestRefillAtHalfWhenItKeepsAJobPerWorkerElseAtEmpty(t *testing.T) {
	for _, tt := range []struct{ concurrency, prefetch, want int }{
		{4, 64, 32}, {4, 8, 4}, {4, 7, 4}, {4, 6, 1}, {4, 4, 1}, {8, 4, 1}, {1, 1, 1}, {1, 2, 1}, {1, 3, 2}, {4, 1, 1},
	} {
		if got := (Config{Concurrency: tt.concurrency, Prefetch: tt.prefetch}).refillBelow(); got != tt.want {
			t.Errorf("refillBelow(concurrency %d, prefetch %d) = %d, want %d", tt.concurrency, tt.prefetch, got, tt.want)
		}
	}
}
