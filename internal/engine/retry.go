package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Backoff bounds of Retry: the first retry comes after retryFirst, and the
// delay doubles up to retryMax, so a leader election of a few seconds costs
// about as much again, not a restart of the pod.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 2 * time.Second
	// retryAttempt bounds one attempt, so that a request to a server that
	// stopped answering is retried rather than waited on until ctx ends.
	retryAttempt = 5 * time.Second
)

// Transient reports whether err is one a JetStream cluster returns while it
// recovers (no responders, JetStream temporarily unavailable during a leader
// election, a request timeout, a connection being re-established), as
// opposed to a mistake that retrying cannot fix.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503 covers 10008 (JetStream system temporarily unavailable, during
		// leader elections), missing quorum and a JetStream that is still
		// starting; 408 is a request that timed out inside the cluster.
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	for _, target := range []error{
		nats.ErrNoResponders, jetstream.ErrNoStreamResponse, nats.ErrTimeout, context.DeadlineExceeded,
		nats.ErrDisconnected, nats.ErrConnectionReconnecting,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// Retry calls f until it succeeds, returns an error that is not Transient,
// or ctx ends (the host's startup timeout). Each attempt gets a context of
// its own bounded by a few seconds. what names the step in logs and errors.
func Retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	delay := retryFirst
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, retryAttempt)
		err := f(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info(what+" succeeded after retries", "attempts", attempt)
			}
			return nil
		}
		if !Transient(err) || ctx.Err() != nil {
			if ctx.Err() != nil && Transient(err) {
				return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, err)
			}
			return err
		}
		log.Warn(what+" failed; retrying", "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, retryMax)
	}
}
