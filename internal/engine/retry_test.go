package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/engine"
)

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no responders", fmt.Errorf("create stream: %w", nats.ErrNoResponders), true},
		{"JetStream temporarily unavailable (10008)", &jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{"request timeout", nats.ErrTimeout, true},
		{"deadline", context.DeadlineExceeded, true},
		{"reconnecting", nats.ErrConnectionReconnecting, true},
		{"bad stream config", &jetstream.APIError{Code: 400, ErrorCode: 10052}, false},
		{"other", errors.New("subjects overlap"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := engine.Transient(tt.err); got != tt.want {
				t.Fatalf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryRetriesTransientErrorsUntilSuccess(t *testing.T) {
	calls := 0
	err := engine.Retry(context.Background(), slog.New(slog.DiscardHandler), "test", func(context.Context) error {
		calls++
		if calls < 3 {
			return &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Retry() = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestRetryStopsAtPermanentErrorAndAtContextEnd(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	calls := 0
	bad := errors.New("invalid config")
	if err := engine.Retry(context.Background(), log, "test", func(context.Context) error { calls++; return bad }); !errors.Is(err, bad) || calls != 1 {
		t.Fatalf("Retry(permanent) = %v after %d calls, want the error after 1", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := engine.Retry(ctx, log, "test", func(context.Context) error { return nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("Retry(until ctx) = %v, want the last transient error", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Retry returned %s after its context ended (300ms)", took)
	}
}
