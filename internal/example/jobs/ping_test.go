package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/example/jobs"
	"github.com/hostkit/hostkit/internal/queue"
)

func TestPing(t *testing.T) {
	tests := []struct {
		name          string
		data          string
		wantErr       error // matched with errors.Is; nil for success
		wantPermanent bool
	}{
		{"no work", `{"id":"1"}`, nil, false},
		{"some work", `{"id":"2","work":"20ms"}`, nil, false},
		{"unknown fields are ignored", `{"id":"3","extra":true}`, nil, false},
		{"malformed JSON", `{"id":`, errAny, true},
		{"not an object", `[1,2]`, errAny, true},
		{"bad duration", `{"id":"4","work":"soon"}`, errAny, true},
		{"negative duration", `{"id":"5","work":"-1s"}`, errAny, true},
		{"asked to fail", `{"id":"6","fail":"on purpose"}`, jobs.ErrPingFailed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := jobs.Ping(context.Background(), queue.Message{Subject: "jobs.ping", Data: []byte(tt.data)})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Ping(%s) = %v, want nil", tt.data, err)
			case tt.wantErr == nil:
			case err == nil:
				t.Fatalf("Ping(%s) = nil, want an error", tt.data)
			case tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("Ping(%s) = %v, want %v", tt.data, err, tt.wantErr)
			}
			if got := queue.IsPermanent(err); got != tt.wantPermanent {
				t.Fatalf("IsPermanent(%v) = %v, want %v", err, got, tt.wantPermanent)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestPingTakesItsWork(t *testing.T) {
	began := time.Now()
	if err := jobs.Ping(context.Background(), queue.Message{Data: []byte(`{"work":"30ms"}`)}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 30*time.Millisecond {
		t.Fatalf("Ping returned after %s, want at least 30ms", d)
	}
}

func TestPingStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- jobs.Ping(ctx, queue.Message{Data: []byte(`{"id":"long","work":"1h"}`)}) }()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping() = %v, want context.Canceled", err)
	}
	if queue.IsPermanent(err) {
		t.Fatal("an interrupted job must be retried, not dead-lettered")
	}
}

func TestPingCapsWork(t *testing.T) {
	h := jobs.PingUpTo(20 * time.Millisecond)
	began := time.Now()
	if err := h(context.Background(), queue.Message{Subject: "jobs.ping", Data: []byte(`{"id":"long","work":"24h"}`)}); err != nil {
		t.Fatalf("handler = %v, want nil", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("a 24h job took %s with work capped at 20ms", took)
	}
}
