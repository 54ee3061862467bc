package host

import (
	"context"
	"errors"
	"sync"
)

// Service is a hosted service, .NET's IHostedService. Start must return once
// the service is running (long work belongs in a goroutine it owns, or in a
// background service); Stop must return once it has let go of everything.
// Both receive a context that carries the phase's deadline.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// The lifecycle hooks of .NET's IHostedLifecycleService. A Service may
// implement any of them; the host finds them by type assertion and calls each
// in its own phase, for every service, before the next phase begins.
type (
	// StartingHook runs before any service's Start.
	StartingHook interface {
		Starting(ctx context.Context) error
	}
	// StartedHook runs after every service's Start.
	StartedHook interface {
		Started(ctx context.Context) error
	}
	// StoppingHook runs before any service's Stop.
	StoppingHook interface {
		Stopping(ctx context.Context) error
	}
	// StoppedHook runs after every service's Stop.
	StoppedHook interface {
		Stopped(ctx context.Context) error
	}
)

// LifecycleService is a Service with all four hooks.
type LifecycleService interface {
	Service
	StartingHook
	StartedHook
	StoppingHook
	StoppedHook
}

// BackgroundFunc is the body of a background service, .NET's
// BackgroundService.ExecuteAsync: it runs in its own goroutine from Start
// until its context is cancelled at Stop. Returning an error before then
// stops the application and makes the process exit non-zero.
type BackgroundFunc func(ctx context.Context) error

// background adapts a BackgroundFunc to Service.
type background struct {
	fn     BackgroundFunc
	failed func(err error) // reports an error returned before Stop

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error // what fn returned, unless already reported as failed
}

// Start launches fn. Its context is detached from ctx, which only bounds the
// start phase, so the service outlives Start.
func (b *background) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.mu.Lock()
	b.cancel, b.done = cancel, make(chan struct{})
	b.mu.Unlock()
	go func() {
		defer close(b.done)
		err := catch(func() error { return b.fn(runCtx) })
		if err == nil || (runCtx.Err() != nil && errors.Is(err, context.Canceled)) {
			return
		}
		if runCtx.Err() == nil {
			b.failed(err) // still running as far as the host knows: stop the app
			return
		}
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}()
	return nil
}

// Stop cancels fn's context and waits for it to return, or for ctx to end.
func (b *background) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
