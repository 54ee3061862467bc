package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Host runs a set of services through the start and stop sequences of the
// .NET Generic Host. Make one with New, Add services, then Run it once.
type Host struct {
	opts     Options
	lifetime *Lifetime
	services []namedService

	mu      sync.Mutex
	bgErrs  []error // background services that failed while running
	running bool
}

type namedService struct {
	name string
	svc  Service
}

// New returns a Host with opts; zero fields take their defaults.
func New(opts Options) *Host {
	return &Host{opts: opts.withDefaults(), lifetime: NewLifetime()}
}

// Lifetime returns the application lifetime services use to follow and end
// the application.
func (h *Host) Lifetime() *Lifetime { return h.lifetime }

// Logger returns the host's logger, for services built alongside it.
func (h *Host) Logger() *slog.Logger { return h.opts.Logger }

// Add registers a hosted service under name, which the trace and errors use.
// Services start in the order added and stop in reverse.
func (h *Host) Add(name string, svc Service) {
	h.services = append(h.services, namedService{name: name, svc: svc})
}

// AddBackground registers fn as a background service under name.
func (h *Host) AddBackground(name string, fn BackgroundFunc) {
	h.Add(name, &background{fn: fn, failed: func(err error) { h.backgroundFailed(name, err) }})
}

// backgroundFailed is .NET's BackgroundServiceExceptionBehavior.StopHost, with
// the difference that the failure also decides the exit code.
func (h *Host) backgroundFailed(name string, err error) {
	h.opts.Logger.Error("background service failed: stopping the application",
		append([]any{"service", name, "err", err}, panicAttrs(err)...)...)
	h.mu.Lock()
	h.bgErrs = append(h.bgErrs, fmt.Errorf("background service %s: %w", name, err))
	h.mu.Unlock()
	h.lifetime.StopApplication()
}

// Run starts every service, waits until the application is asked to stop
// (by the host lifetime, StopApplication, a failed background service, or ctx
// being cancelled), then stops what was started. It returns nil after a clean
// stop; otherwise the errors of every step that failed, joined. A forced exit
// returns at once with an *ExitError. Run may be called only once.
func (h *Host) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.running {
		h.mu.Unlock()
		return errors.New("host: Run called twice")
	}
	h.running = true
	h.mu.Unlock()

	// AfterFunc runs in a goroutine of its own even for a ctx cancelled
	// already; asking for the stop here first makes that case deterministic.
	if ctx.Err() != nil {
		h.lifetime.StopApplication()
	}
	unwatch := context.AfterFunc(ctx, h.lifetime.StopApplication)
	defer unwatch()

	result := make(chan error, 1)
	go func() { result <- h.run(ctx) }()
	select {
	case err := <-result:
		return err
	case code := <-h.lifetime.forced:
		return &ExitError{Code: code, Err: errors.New("forced exit during shutdown")}
	}
}

func (h *Host) run(ctx context.Context) error {
	began := time.Now()
	started, startErr := h.start(ctx)
	if startErr == nil {
		h.opts.Logger.Info("application started", "services", len(h.services), "took", time.Since(began).Round(time.Microsecond).String())
		<-h.lifetime.stopRequested
	} else if h.lifetime.IsStopRequested() && errors.Is(startErr, context.Canceled) {
		// Asked to stop while starting (a signal, or ctx): not a failure.
		h.opts.Logger.Info("stop requested during start", "started", len(started))
		startErr = nil
	} else {
		h.opts.Logger.Error("start failed: stopping what started", "err", startErr, "started", len(started))
		startErr = fmt.Errorf("start: %w", startErr)
	}

	stopErr := h.stop(context.WithoutCancel(ctx), started)

	h.mu.Lock()
	bgErr := errors.Join(h.bgErrs...)
	h.mu.Unlock()
	err := errors.Join(startErr, bgErr, stopErr)
	if err == nil {
		h.opts.Logger.Info("application stopped")
	}
	return err
}

// start runs the start sequence and returns the services whose Start
// succeeded, in registration order, so a failure stops exactly those.
func (h *Host) start(parent context.Context) ([]namedService, error) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	go func(ctx context.Context) {
		select {
		case <-h.lifetime.stopRequested:
			cancel(context.Canceled)
		case <-ctx.Done():
		}
	}(ctx)
	if t := h.opts.StartupTimeout; t > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, t, fmt.Errorf("startup timeout %s: %w", t, context.DeadlineExceeded))
		defer stop()
	}

	if err := h.call(ctx, PhaseWaitForStart, "", func(ctx context.Context) error {
		return h.opts.Lifetime.WaitForStart(ctx, h.lifetime)
	}); err != nil {
		return nil, err
	}
	if _, err := h.phase(ctx, PhaseStarting, h.services, false, h.opts.ServicesStartConcurrently, starting); err != nil {
		return nil, err
	}
	started, err := h.phase(ctx, PhaseStart, h.services, false, h.opts.ServicesStartConcurrently, start)
	if err != nil {
		return started, err
	}
	if _, err := h.phase(ctx, PhaseStarted, started, false, h.opts.ServicesStartConcurrently, startedHook); err != nil {
		return started, err
	}
	if err := context.Cause(ctx); err != nil {
		return started, err // a stop request or the timeout arrived during the last step
	}
	// markStarted refuses under the lifetime's lock once a stop is
	// requested, so ApplicationStarted never fires after StopApplication.
	if err := h.hostEvent(PhaseApplicationStarted, h.lifetime.markStarted); err != nil {
		return started, err
	}
	return started, nil
}

// errStopRequested ends a start sequence that was asked to stop. It wraps
// context.Canceled, as a start cancelled by the request does.
var errStopRequested = fmt.Errorf("stop requested: %w", context.Canceled)

// stop runs the stop sequence for started, under one deadline for all of it.
func (h *Host) stop(parent context.Context, started []namedService) error {
	ctx, cancel := context.WithTimeout(parent, h.opts.ShutdownTimeout)
	defer cancel()
	h.lifetime.StopApplication() // a start failure also ends in stopping
	var errs []error
	if err := h.hostEvent(PhaseApplicationStopping, h.lifetime.markStopping); err != nil {
		errs = append(errs, err)
	}

	conc := h.opts.ServicesStopConcurrently
	for _, p := range []struct {
		phase Phase
		step  step
	}{{PhaseStopping, stopping}, {PhaseStop, stop}, {PhaseStopped, stoppedHook}} {
		if _, err := h.phase(ctx, p.phase, started, true, conc, p.step); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.hostEvent(PhaseApplicationStopped, h.lifetime.markStopped); err != nil {
		errs = append(errs, err)
	}
	if err := h.call(ctx, PhaseLifetimeStop, "", h.opts.Lifetime.Stop); err != nil {
		errs = append(errs, err)
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("shutdown timeout %s exceeded", h.opts.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// step returns what a phase calls on a service, or nil when the service has
// no such step (a plain Service has no lifecycle hooks).
type step func(Service) func(context.Context) error

// phase calls step for each service, in order (reverse for a stop phase) or
// all at once. A start phase ends at the first error; a stop phase calls every
// service whatever happens, as .NET 6+ does. It returns the services for which
// the step succeeded, in registration order.
func (h *Host) phase(ctx context.Context, p Phase, svcs []namedService, stopping, concurrent bool, st step) ([]namedService, error) {
	order := slices.Clone(svcs)
	if stopping {
		slices.Reverse(order)
	}
	errs := make([]error, len(order))
	called := make([]bool, len(order))
	run := func(i int) {
		if !stopping && h.lifetime.IsStopRequested() {
			// Checked here, not only through ctx, whose cancellation
			// follows the request from another goroutine: once a stop
			// is requested, no further step of the start runs.
			errs[i] = fmt.Errorf("%s %s: %w", p, order[i].name, errStopRequested)
			return
		}
		called[i] = true
		if fn := st(order[i].svc); fn != nil {
			errs[i] = h.call(ctx, p, order[i].name, fn)
		}
	}
	if concurrent {
		var wg sync.WaitGroup
		for i := range order {
			wg.Go(func() { run(i) })
		}
		wg.Wait()
	} else {
		for i := range order {
			if cause := context.Cause(ctx); cause != nil && !stopping {
				errs[i] = fmt.Errorf("%s %s: %w", p, order[i].name, cause)
				break
			}
			if run(i); errs[i] != nil && !stopping {
				break
			}
		}
	}
	var ok []namedService
	for i, s := range order {
		if called[i] && errs[i] == nil {
			ok = append(ok, s)
		}
	}
	if stopping {
		slices.Reverse(ok)
	}
	return ok, errors.Join(errs...)
}

// call runs one step and records it. It waits for fn until ctx ends plus the
// overrun allowance; a call still running then is abandoned and named in the
// error, so a stuck service cannot hang the host. An abandoned Start that
// succeeds later is not stopped: the process is on its way out by then.
func (h *Host) call(ctx context.Context, p Phase, name string, fn func(context.Context) error) error {
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- catch(func() error { return fn(ctx) }) }()

	var err error
	overran := false
	select {
	case err = <-done:
	case <-ctx.Done():
		grace := time.NewTimer(h.opts.Overrun)
		select {
		case err = <-done:
		case <-grace.C:
			overran = true
			err = fmt.Errorf("did not finish: %w", context.Cause(ctx))
		}
		grace.Stop()
	}
	if err != nil {
		err = fmt.Errorf("%s %s: %w", p, describe(name), err)
	}
	h.opts.Trace(Event{Phase: p, Service: name, At: began, Duration: time.Since(began), Err: err, Overran: overran})
	h.log(p, name, began, err, overran)
	return err
}

// hostEvent runs a lifetime transition and its callbacks; a callback that
// panics is the event's error, and the other callbacks still run.
func (h *Host) hostEvent(p Phase, transition func() error) error {
	began := time.Now()
	err := transition()
	if err != nil && !errors.Is(err, errStopRequested) {
		err = fmt.Errorf("%s callback: %w", p, err)
		h.log(p, "", began, err, false)
	}
	h.opts.Trace(Event{Phase: p, At: began, Duration: time.Since(began), Err: err})
	return err
}

func (h *Host) log(p Phase, name string, began time.Time, err error, overran bool) {
	attrs := []any{"phase", string(p), "took", time.Since(began).Round(time.Microsecond).String()}
	if name != "" {
		attrs = append(attrs, "service", name)
	}
	switch _, panicked := asPanic(err); {
	case overran:
		h.opts.Logger.Error("service did not finish in time", append(attrs, "err", err)...)
	case panicked:
		h.opts.Logger.Error("step panicked", append(append(attrs, "err", err), panicAttrs(err)...)...)
	case err != nil:
		h.opts.Logger.Warn("step failed", append(attrs, "err", err)...)
	default:
		h.opts.Logger.Debug("step done", attrs...)
	}
}

func describe(name string) string {
	if name == "" {
		return "host"
	}
	return strings.TrimSpace(name)
}

func starting(s Service) func(context.Context) error {
	if hook, ok := s.(StartingHook); ok {
		return hook.Starting
	}
	return nil
}

func start(s Service) func(context.Context) error { return s.Start }

func startedHook(s Service) func(context.Context) error {
	if hook, ok := s.(StartedHook); ok {
		return hook.Started
	}
	return nil
}

func stopping(s Service) func(context.Context) error {
	if hook, ok := s.(StoppingHook); ok {
		return hook.Stopping
	}
	return nil
}

func stop(s Service) func(context.Context) error { return s.Stop }

func stoppedHook(s Service) func(context.Context) error {
	if hook, ok := s.(StoppedHook); ok {
		return hook.Stopped
	}
	return nil
}
