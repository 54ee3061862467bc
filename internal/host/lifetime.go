package host

import (
	"errors"
	"sync"
)

// State is where the application is in its life, as readiness probes and
// metrics see it.
type State int

// The states in the order an application passes through them.
const (
	StateStarting          State = iota // starting services
	StateRunning                        // every service started
	StateShutdownRequested              // a stop was requested; still serving (shutdown delay)
	StateStopping                       // stopping services
	StateStopped                        // every service stopped
)

// String returns the state's lower-case name, as used in metrics labels.
func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateShutdownRequested:
		return "shutdown_requested"
	case StateStopping:
		return "stopping"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// States lists every State, for callers that export one series per state.
func States() []State {
	return []State{StateStarting, StateRunning, StateShutdownRequested, StateStopping, StateStopped}
}

// Lifetime is the application lifetime, .NET's IHostApplicationLifetime.
// Any service may hold it to learn when the application has started or is
// stopping, and to ask it to stop.
//
// Each signal is both a channel, closed once, and a list of callbacks the host
// runs synchronously at that point of its sequence, so an ordered trace of
// callbacks is deterministic. The host owns the transitions; services only
// read them and call StopApplication or RequestShutdown.
type Lifetime struct {
	mu    sync.Mutex
	state State

	started           chan struct{}
	shutdownRequested chan struct{}
	stopRequested     chan struct{}
	stopping          chan struct{}
	stopped           chan struct{}
	forced            chan int

	onStarted, onStopping, onStopped []func()
}

// NewLifetime returns a Lifetime in StateStarting. Host.New makes one; tests
// of services that only need a lifetime may make their own.
func NewLifetime() *Lifetime {
	return &Lifetime{
		started:           make(chan struct{}),
		shutdownRequested: make(chan struct{}),
		stopRequested:     make(chan struct{}),
		stopping:          make(chan struct{}),
		stopped:           make(chan struct{}),
		forced:            make(chan int, 1),
	}
}

// Started is closed once every service has started (ApplicationStarted).
func (l *Lifetime) Started() <-chan struct{} { return l.started }

// ShutdownRequested is closed the moment a stop is requested: at the
// termination signal, before any shutdown delay, or at StopApplication.
// Readiness reads it so the pod leaves the load balancer while it still serves.
func (l *Lifetime) ShutdownRequested() <-chan struct{} { return l.shutdownRequested }

// Stopping is closed when the host begins to stop services (ApplicationStopping).
func (l *Lifetime) Stopping() <-chan struct{} { return l.stopping }

// Stopped is closed when every service has stopped (ApplicationStopped).
func (l *Lifetime) Stopped() <-chan struct{} { return l.stopped }

// State returns the current state.
func (l *Lifetime) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// OnStarted registers f to run when the application has started.
// Callbacks run in registration order on the host's goroutine; keep them
// short. Registered after the fact, as in .NET, f runs at once on the
// caller's goroutine.
func (l *Lifetime) OnStarted(f func()) { l.register(l.started, &l.onStarted, f) }

// OnStopping registers f to run when the application begins to stop; late,
// it runs at once.
func (l *Lifetime) OnStopping(f func()) { l.register(l.stopping, &l.onStopping, f) }

// OnStopped registers f to run when every service has stopped; late, it
// runs at once.
func (l *Lifetime) OnStopped(f func()) { l.register(l.stopped, &l.onStopped, f) }

func (l *Lifetime) register(ch chan struct{}, list *[]func(), f func()) {
	l.mu.Lock()
	select {
	case <-ch:
		l.mu.Unlock()
		f()
		return
	default:
	}
	*list = append(*list, f)
	l.mu.Unlock()
}

// RequestShutdown enters the shutdown-requested state without stopping yet:
// readiness fails while every service keeps running. The delayed-shutdown
// lifetime calls it at the signal and StopApplication after the delay.
// Calling it more than once is harmless.
func (l *Lifetime) RequestShutdown() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requestShutdownLocked()
}

func (l *Lifetime) requestShutdownLocked() {
	select {
	case <-l.shutdownRequested:
		return
	default:
	}
	close(l.shutdownRequested)
	if l.state < StateShutdownRequested {
		l.state = StateShutdownRequested
	}
}

// StopApplication asks the host to stop. It returns at once; the host then
// runs the stop sequence. During start it cancels the start phase. Calling it
// more than once is harmless.
func (l *Lifetime) StopApplication() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requestShutdownLocked()
	select {
	case <-l.stopRequested:
	default:
		close(l.stopRequested)
	}
}

// IsStopRequested reports whether StopApplication has been called.
func (l *Lifetime) IsStopRequested() bool {
	select {
	case <-l.stopRequested:
		return true
	default:
		return false
	}
}

// ForceExit makes Host.Run return at once with an *ExitError carrying code,
// abandoning whatever is still stopping. Host lifetimes call it on a second
// termination signal; only the first call counts.
func (l *Lifetime) ForceExit(code int) {
	select {
	case l.forced <- code:
	default:
	}
}

// markStarted, markStopping and markStopped are the host's transitions. They
// return the panics of callbacks, joined.
//
// markStarted refuses once a stop is requested: the check and the
// transition share the lock StopApplication takes, so ApplicationStarted
// either fires before the stop request or never.
func (l *Lifetime) markStarted() error {
	return l.transition(StateRunning, l.started, &l.onStarted, l.stopRequested)
}

func (l *Lifetime) markStopping() error {
	return l.transition(StateStopping, l.stopping, &l.onStopping, nil)
}

func (l *Lifetime) markStopped() error {
	return l.transition(StateStopped, l.stopped, &l.onStopped, nil)
}

// transition moves to state (never backwards: a stop requested during start
// stays visible), closes ch and runs the callbacks outside the lock so they
// may read the lifetime. If unless is closed, it does nothing and returns
// errStopRequested. Every callback
// runs even if one panics; the panics come back as errors.
func (l *Lifetime) transition(state State, ch chan struct{}, callbacks *[]func(), unless chan struct{}) error {
	l.mu.Lock()
	if unless != nil && isClosed(unless) {
		l.mu.Unlock()
		return errStopRequested
	}
	if l.state < state {
		l.state = state
	}
	select {
	case <-ch:
		l.mu.Unlock()
		return nil
	default:
	}
	close(ch)
	fns := append([]func(){}, *callbacks...)
	l.mu.Unlock()
	var errs []error
	for _, f := range fns {
		errs = append(errs, catch(func() error { f(); return nil }))
	}
	return errors.Join(errs...)
}
