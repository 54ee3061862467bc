package host_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// journal is a shared, ordered record of what services and callbacks did.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, s)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

// svc is a configurable plain hosted service.
type svc struct {
	name     string
	j        *journal
	startErr error
	start    func(ctx context.Context) error // overrides startErr when set
	stop     func(ctx context.Context) error
}

func (s *svc) Start(ctx context.Context) error {
	s.j.add("Start " + s.name)
	if s.start != nil {
		return s.start(ctx)
	}
	return s.startErr
}

func (s *svc) Stop(ctx context.Context) error {
	s.j.add("Stop " + s.name)
	if s.stop != nil {
		return s.stop(ctx)
	}
	return nil
}

// lifecycleSvc adds the four hooks.
type lifecycleSvc struct{ svc }

func (s *lifecycleSvc) Starting(context.Context) error { s.j.add("Starting " + s.name); return nil }
func (s *lifecycleSvc) Started(context.Context) error  { s.j.add("Started " + s.name); return nil }
func (s *lifecycleSvc) Stopping(context.Context) error { s.j.add("Stopping " + s.name); return nil }
func (s *lifecycleSvc) Stopped(context.Context) error  { s.j.add("Stopped " + s.name); return nil }

// harness is a host wired to manual signals and a trace recorder.
type harness struct {
	h       *host.Host
	signals *host.ManualSignals
	trace   *host.Recorder
	j       *journal
}

func newHarness(tb testing.TB, opts host.Options, delay time.Duration) *harness {
	tb.Helper()
	hs := &harness{signals: &host.ManualSignals{}, trace: &host.Recorder{}, j: &journal{}}
	opts.Lifetime = host.NewDelayedShutdownLifetime(hs.signals, delay, nil)
	opts.Trace = hs.trace.Record
	hs.h = host.New(opts)
	lt := hs.h.Lifetime()
	lt.OnStarted(func() { hs.j.add("OnStarted") })
	lt.OnStopping(func() { hs.j.add("OnStopping") })
	lt.OnStopped(func() { hs.j.add("OnStopped") })
	return hs
}

// run starts Run in the background and returns a channel with its result.
func (hs *harness) run(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- hs.h.Run(ctx) }()
	return done
}

// sigtermWhenStarted sends SIGTERM once the application has started.
func (hs *harness) sigtermWhenStarted(tb testing.TB) {
	tb.Helper()
	waitClosed(tb, hs.h.Lifetime().Started(), "Started")
	if !hs.signals.Send(syscall.SIGTERM) {
		tb.Fatal("nobody listens for SIGTERM")
	}
}

func waitClosed(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		tb.Fatalf("%s was not closed within 5s", what)
	}
}

func waitResult(tb testing.TB, done <-chan error) error {
	tb.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatal("Run did not return within 5s")
		return nil
	}
}

func assertLines(tb testing.TB, got, want []string) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Fatalf("sequence mismatch\n got: %q\nwant: %q", got, want)
	}
}

func TestRunOrderMixesAllThreeKinds(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	hs.h.Add("a", &lifecycleSvc{svc{name: "a", j: hs.j}})
	hs.h.Add("b", &svc{name: "b", j: hs.j})
	hs.h.AddBackground("c", func(ctx context.Context) error {
		<-ctx.Done()
		hs.j.add("c cancelled")
		return ctx.Err()
	})
	hs.h.Add("d", &lifecycleSvc{svc{name: "d", j: hs.j}})

	done := hs.run(context.Background())
	hs.sigtermWhenStarted(t)
	if err := waitResult(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}

	assertLines(t, hs.j.get(), []string{
		"Starting a", "Starting d",
		"Start a", "Start b", "Start d",
		"Started a", "Started d",
		"OnStarted",
		"OnStopping",
		"Stopping d", "Stopping a",
		"Stop d", "c cancelled", "Stop b", "Stop a",
		"Stopped d", "Stopped a",
		"OnStopped",
	})
	assertLines(t, hs.trace.Strings(), []string{
		"WaitForStart",
		"Starting a", "Starting d",
		"Start a", "Start b", "Start c", "Start d",
		"Started a", "Started d",
		"ApplicationStarted",
		"ApplicationStopping",
		"Stopping d", "Stopping a",
		"Stop d", "Stop c", "Stop b", "Stop a",
		"Stopped d", "Stopped a",
		"ApplicationStopped",
		"LifetimeStop",
	})
	if got, want := hs.h.Lifetime().State(), host.StateStopped; got != want {
		t.Fatalf("State = %v, want %v", got, want)
	}
}

// barrier blocks each caller until n have arrived, or fails after a while:
// services that use it can only all return if they run at the same time.
type barrier struct {
	mu      sync.Mutex
	arrived int
	n       int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return nil
	case <-time.After(500 * time.Millisecond):
		return errors.New("barrier: not all services ran concurrently")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestServicesStartAndStopConcurrently(t *testing.T) {
	// Each phase under test waits at a barrier that only opens when all three
	// services are in it at once; the other phase returns at once.
	noop := func(context.Context) error { return nil }
	tests := []struct {
		name            string
		startConc       bool
		stopConc        bool
		barrierAtStart  bool
		wantErrContains string
	}{
		{"start concurrently", true, false, true, ""},
		{"stop concurrently", false, true, false, ""},
		{"start one at a time by default", false, true, true, "Start a"},
		{"stop one at a time by default", true, false, false, "Stop c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, host.Options{
				ServicesStartConcurrently: tt.startConc,
				ServicesStopConcurrently:  tt.stopConc,
			}, 0)
			b := newBarrier(3)
			for _, name := range []string{"a", "b", "c"} {
				s := &svc{name: name, j: hs.j, start: noop, stop: noop}
				if tt.barrierAtStart {
					s.start = b.wait
				} else {
					s.stop = b.wait
				}
				hs.h.Add(name, s)
			}
			err := waitResult(t, hs.runUntilStarted(t))
			if tt.wantErrContains == "" && err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			if tt.wantErrContains != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrContains)) {
				t.Fatalf("Run = %v, want the barrier to fail %s", err, tt.wantErrContains)
			}
		})
	}
}

// runUntilStarted runs the host and stops it as soon as it has started (or
// failed to start).
func (hs *harness) runUntilStarted(tb testing.TB) <-chan error {
	tb.Helper()
	hs.h.Lifetime().OnStarted(hs.h.Lifetime().StopApplication)
	return hs.run(context.Background())
}

func TestStartFailureStopsExactlyTheStartedServicesInReverse(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	boom := errors.New("boom")
	hs.h.Add("a", &lifecycleSvc{svc{name: "a", j: hs.j}})
	hs.h.Add("b", &svc{name: "b", j: hs.j})
	hs.h.Add("c", &svc{name: "c", j: hs.j, startErr: boom})
	hs.h.Add("d", &svc{name: "d", j: hs.j})

	err := waitResult(t, hs.run(context.Background()))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "Start c") {
		t.Fatalf("Run = %v, want the error of Start c", err)
	}
	if got, want := host.ExitCode(err), host.ExitFailure; got != want {
		t.Fatalf("ExitCode = %d, want %d", got, want)
	}
	assertLines(t, hs.j.get(), []string{
		"Starting a",
		"Start a", "Start b", "Start c",
		"OnStopping",
		"Stopping a",
		"Stop b", "Stop a",
		"Stopped a",
		"OnStopped",
	})
}

func TestStartupTimeoutFailsTheStart(t *testing.T) {
	hs := newHarness(t, host.Options{StartupTimeout: 50 * time.Millisecond}, 0)
	hs.h.Add("fast", &svc{name: "fast", j: hs.j})
	hs.h.Add("slow", &svc{name: "slow", j: hs.j, start: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	hs.h.Add("never", &svc{name: "never", j: hs.j})

	err := waitResult(t, hs.run(context.Background()))
	if err == nil || !strings.Contains(err.Error(), "Start slow") {
		t.Fatalf("Run = %v, want a failure of Start slow", err)
	}
	if got, want := host.ExitCode(err), host.ExitFailure; got != want {
		t.Fatalf("ExitCode = %d, want %d", got, want)
	}
	assertLines(t, hs.j.get(), []string{"Start fast", "Start slow", "OnStopping", "Stop fast", "OnStopped"})
}

func TestStartupTimeoutAbandonsAStartThatIgnoresItsContext(t *testing.T) {
	hs := newHarness(t, host.Options{StartupTimeout: 30 * time.Millisecond, Overrun: 10 * time.Millisecond}, 0)
	release := make(chan struct{})
	defer close(release)
	hs.h.Add("stuck", &svc{name: "stuck", j: hs.j, start: func(context.Context) error {
		<-release
		return nil
	}})
	err := waitResult(t, hs.run(context.Background()))
	if err == nil || !strings.Contains(err.Error(), "Start stuck: did not finish") {
		t.Fatalf("Run = %v, want Start stuck named as unfinished", err)
	}
}

func TestSignalDuringStartStopsWhatStarted(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	hs.h.Add("a", &svc{name: "a", j: hs.j})
	hs.h.Add("b", &svc{name: "b", j: hs.j, start: func(ctx context.Context) error {
		hs.signals.Send(syscall.SIGTERM)
		<-ctx.Done() // a start that honours cancellation
		return ctx.Err()
	}})
	hs.h.Add("c", &svc{name: "c", j: hs.j})

	err := waitResult(t, hs.run(context.Background()))
	if err != nil {
		t.Fatalf("Run = %v, want nil: a stop requested during start is a clean stop", err)
	}
	assertLines(t, hs.j.get(), []string{"Start a", "Start b", "OnStopping", "Stop a", "OnStopped"})
}

func TestSignalDuringStartSkipsTheShutdownDelay(t *testing.T) {
	hs := newHarness(t, host.Options{}, time.Hour) // a delay the test would never outlast
	hs.h.Add("a", &svc{name: "a", j: hs.j})
	hs.h.Add("b", &svc{name: "b", j: hs.j, start: func(ctx context.Context) error {
		hs.signals.Send(syscall.SIGTERM)
		<-ctx.Done()
		return ctx.Err()
	}})
	if err := waitResult(t, hs.run(context.Background())); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	assertLines(t, hs.j.get(), []string{"Start a", "Start b", "OnStopping", "Stop a", "OnStopped"})
}

func TestFirstSignalDuringASelfStopKeepsTheExitCode(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	crash := errors.New("crash")
	stopping := make(chan struct{})
	release := make(chan struct{})
	hs.h.Add("slow", &svc{name: "slow", j: hs.j, stop: func(context.Context) error {
		close(stopping)
		<-release
		return nil
	}})
	hs.h.AddBackground("bg", func(ctx context.Context) error {
		<-hs.h.Lifetime().Started()
		return crash
	})
	done := hs.run(context.Background())
	waitClosed(t, stopping, "Stop slow")
	hs.signals.Send(syscall.SIGTERM) // e.g. kubelet, while the app already stops
	close(release)
	err := waitResult(t, done)
	if got, want := host.ExitCode(err), host.ExitFailure; got != want || !errors.Is(err, crash) {
		t.Fatalf("Run = %v (exit %d), want the background error and exit %d", err, got, want)
	}
}

func TestCallbacksRegisteredLateRunAtOnce(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	if err := waitResult(t, hs.runUntilStarted(t)); err != nil {
		t.Fatal(err)
	}
	ran := 0
	lt := hs.h.Lifetime()
	lt.OnStarted(func() { ran++ })
	lt.OnStopping(func() { ran++ })
	lt.OnStopped(func() { ran++ })
	if ran != 3 {
		t.Fatalf("%d of 3 late callbacks ran, want all at once", ran)
	}
}

func TestShutdownTimeoutNamesTheStuckServiceAndReturnsPromptly(t *testing.T) {
	const timeout, overrun = 100 * time.Millisecond, 20 * time.Millisecond
	hs := newHarness(t, host.Options{ShutdownTimeout: timeout, Overrun: overrun}, 0)
	release := make(chan struct{})
	defer close(release)
	var firstCtxErr error
	hs.h.Add("first", &svc{name: "first", j: hs.j, stop: func(ctx context.Context) error {
		firstCtxErr = ctx.Err() // called after the deadline, with the expired context
		return nil
	}})
	hs.h.Add("stuck", &svc{name: "stuck", j: hs.j, stop: func(context.Context) error {
		<-release // ignores its context
		return nil
	}})
	hs.h.Add("failing", &svc{name: "failing", j: hs.j, stop: func(context.Context) error {
		return errors.New("disk gone")
	}})

	done := hs.run(context.Background())
	hs.sigtermWhenStarted(t)
	began := time.Now()
	err := waitResult(t, done)
	took := time.Since(began)

	if err == nil {
		t.Fatal("Run = nil, want a shutdown timeout error")
	}
	for _, want := range []string{"Stop stuck: did not finish", "Stop failing: disk gone", "shutdown timeout 100ms exceeded"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if got, want := host.ExitCode(err), host.ExitFailure; got != want {
		t.Errorf("ExitCode = %d, want %d", got, want)
	}
	if !errors.Is(firstCtxErr, context.DeadlineExceeded) {
		t.Errorf("Stop first got ctx error %v, want DeadlineExceeded", firstCtxErr)
	}
	// Generous slack for a loaded machine; what matters is that it does not hang.
	if limit := timeout + 2*overrun + 400*time.Millisecond; took > limit {
		t.Errorf("Run returned %v after the signal, want within %v", took, limit)
	}
	assertLines(t, hs.j.get(), []string{"Start first", "Start stuck", "Start failing", "OnStarted", "OnStopping", "Stop failing", "Stop stuck", "Stop first", "OnStopped"})
}

func TestBackgroundServiceErrorStopsTheApplication(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	crash := errors.New("queue gone")
	hs.h.Add("a", &svc{name: "a", j: hs.j})
	hs.h.AddBackground("worker", func(ctx context.Context) error {
		return crash
	})

	err := waitResult(t, hs.run(context.Background()))
	if !errors.Is(err, crash) || !strings.Contains(err.Error(), "background service worker") {
		t.Fatalf("Run = %v, want the background service's error", err)
	}
	if got, want := host.ExitCode(err), host.ExitFailure; got != want {
		t.Fatalf("ExitCode = %d, want %d", got, want)
	}
	if !slices.Contains(hs.j.get(), "Stop a") {
		t.Fatalf("Stop a was not called: %q", hs.j.get())
	}
}

func TestBackgroundServiceReturningNilKeepsTheApplicationRunning(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	finished := make(chan struct{})
	hs.h.AddBackground("once", func(context.Context) error { close(finished); return nil })
	done := hs.run(context.Background())
	waitClosed(t, finished, "background func")
	waitClosed(t, hs.h.Lifetime().Started(), "Started")
	select {
	case err := <-done:
		t.Fatalf("Run returned %v after a background service finished cleanly", err)
	default:
	}
	hs.signals.Send(syscall.SIGTERM)
	if err := waitResult(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestDelayedShutdownKeepsServingThroughTheDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	hs := newHarness(t, host.Options{}, delay)
	served := make(chan struct{})
	hs.h.AddBackground("server", func(ctx context.Context) error {
		<-ctx.Done()
		close(served)
		return nil
	})
	lt := hs.h.Lifetime()
	done := hs.run(context.Background())
	hs.sigtermWhenStarted(t)
	signalled := time.Now()

	waitClosed(t, lt.ShutdownRequested(), "ShutdownRequested")
	if got, want := lt.State(), host.StateShutdownRequested; got != want {
		t.Fatalf("State right after the signal = %v, want %v", got, want)
	}
	select {
	case <-served:
		t.Fatal("services stopped before the delay began")
	case <-lt.Stopping():
		t.Fatal("Stopping closed at the signal, want it after the delay")
	default:
	}
	waitClosed(t, lt.Stopping(), "Stopping")
	if took := time.Since(signalled); took < delay {
		t.Fatalf("stop began %v after the signal, want at least the %v delay", took, delay)
	}
	if err := waitResult(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		second   syscall.Signal
		wantCode int
	}{
		{"during the shutdown delay", time.Hour, syscall.SIGTERM, 128 + 15},
		{"while a service is stopping", 0, syscall.SIGINT, 128 + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, host.Options{}, tt.delay)
			stopping := make(chan struct{})
			release := make(chan struct{})
			defer close(release)
			hs.h.Add("slow", &svc{name: "slow", j: hs.j, stop: func(context.Context) error {
				close(stopping)
				<-release
				return nil
			}})
			done := hs.run(context.Background())
			hs.sigtermWhenStarted(t)
			if tt.delay == 0 {
				waitClosed(t, stopping, "Stop slow")
			} else {
				waitClosed(t, hs.h.Lifetime().ShutdownRequested(), "ShutdownRequested")
			}
			hs.signals.Send(tt.second)
			err := waitResult(t, done)
			if got := host.ExitCode(err); got != tt.wantCode {
				t.Fatalf("ExitCode(%v) = %d, want %d", err, got, tt.wantCode)
			}
		})
	}
}

func TestCancellingRunContextStopsCleanly(t *testing.T) {
	hs := newHarness(t, host.Options{}, time.Hour)
	hs.h.Add("a", &svc{name: "a", j: hs.j})
	ctx, cancel := context.WithCancel(context.Background())
	done := hs.run(ctx)
	waitClosed(t, hs.h.Lifetime().Started(), "Started")
	cancel() // not a signal: no shutdown delay applies
	if err := waitResult(t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	assertLines(t, hs.j.get(), []string{"Start a", "OnStarted", "OnStopping", "Stop a", "OnStopped"})
}

func TestRunTwiceFails(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	if err := waitResult(t, hs.runUntilStarted(t)); err != nil {
		t.Fatalf("first Run = %v", err)
	}
	if err := hs.h.Run(context.Background()); err == nil {
		t.Fatal("second Run = nil, want an error")
	}
}

func TestTraceRecordsTimingAndErrors(t *testing.T) {
	hs := newHarness(t, host.Options{}, 0)
	hs.h.Add("slow", &svc{name: "slow", j: hs.j, start: func(context.Context) error {
		time.Sleep(5 * time.Millisecond) // the work being timed, not a wait for state
		return fmt.Errorf("nope")
	}})
	_ = waitResult(t, hs.run(context.Background()))
	for _, e := range hs.trace.Events() {
		if e.String() != "Start slow" {
			continue
		}
		if e.Duration < 5*time.Millisecond || e.Err == nil || e.At.IsZero() {
			t.Fatalf("Start slow event = %+v, want duration >= 5ms, an error and a time", e)
		}
		return
	}
	t.Fatalf("no Start slow event in %q", hs.trace.Strings())
}
