package host

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// HostLifetime is .NET's IHostLifetime: it decides when the host may start
// and what makes the application stop.
type HostLifetime interface {
	// WaitForStart runs first in the start sequence. It may block until the
	// environment is ready and typically arranges for app.StopApplication to
	// be called on some event.
	WaitForStart(ctx context.Context, app *Lifetime) error
	// Stop runs last, after ApplicationStopped.
	Stop(ctx context.Context) error
}

// SignalSource delivers process signals. OSSignals is the real one; tests
// inject ManualSignals and send signals by hand.
type SignalSource interface {
	Notify(c chan<- os.Signal, sig ...os.Signal)
	Stop(c chan<- os.Signal)
}

// OSSignals is the SignalSource of this process, via os/signal.
type OSSignals struct{}

// Notify is signal.Notify.
func (OSSignals) Notify(c chan<- os.Signal, sig ...os.Signal) { signal.Notify(c, sig...) }

// Stop is signal.Stop.
func (OSSignals) Stop(c chan<- os.Signal) { signal.Stop(c) }

// ManualSignals is a SignalSource for tests: Send delivers a signal to every
// channel registered for it, as the runtime would.
type ManualSignals struct {
	mu   sync.Mutex
	subs map[chan<- os.Signal][]os.Signal
}

// Notify registers c for sig.
func (m *ManualSignals) Notify(c chan<- os.Signal, sig ...os.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.subs == nil {
		m.subs = make(map[chan<- os.Signal][]os.Signal)
	}
	m.subs[c] = append(m.subs[c], sig...)
}

// Stop unregisters c.
func (m *ManualSignals) Stop(c chan<- os.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, c)
}

// Send delivers sig without blocking, dropping it for a full channel as the
// runtime does. It reports whether anyone was registered for it.
func (m *ManualSignals) Send(sig os.Signal) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	delivered := false
	for c, sigs := range m.subs {
		for _, s := range sigs {
			if s == sig {
				select {
				case c <- sig:
				default:
				}
				delivered = true
				break
			}
		}
	}
	return delivered
}

// TerminationSignals are the signals the lifetimes stop on gracefully: .NET
// console lifetime's three, and SIGHUP, which a closed terminal or an ssh
// session that drops sends, and whose default action kills at once.
var TerminationSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP}

// SignalLifetime is the console lifetime, optionally with a shutdown delay.
//
// The first termination signal enters the shutdown-requested state at once
// (readiness fails), keeps everything running for the delay so load balancers
// stop sending traffic, then calls StopApplication. A signal during start
// stops at once: nothing serves yet. A second termination signal forces an
// exit with 128 + its number.
type SignalLifetime struct {
	src   SignalSource
	delay time.Duration
	log   *slog.Logger

	ch   chan os.Signal
	done chan struct{}
	once sync.Once
}

// NewConsoleLifetime stops the application on the first termination signal.
func NewConsoleLifetime(src SignalSource, log *slog.Logger) *SignalLifetime {
	return NewDelayedShutdownLifetime(src, 0, log)
}

// NewDelayedShutdownLifetime enters the shutdown-requested state on the first
// termination signal and stops the application delay later.
func NewDelayedShutdownLifetime(src SignalSource, delay time.Duration, log *slog.Logger) *SignalLifetime {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SignalLifetime{src: src, delay: delay, log: log, done: make(chan struct{})}
}

// WaitForStart subscribes to the signals and returns at once.
func (l *SignalLifetime) WaitForStart(ctx context.Context, app *Lifetime) error {
	l.ch = make(chan os.Signal, 2)
	l.src.Notify(l.ch, TerminationSignals...)
	go l.watch(app)
	return nil
}

// watch acts on the signals. Only a second signal forces an exit: an
// application already stopping on its own (a failed background service)
// still exits with its own code after a first SIGTERM.
func (l *SignalLifetime) watch(app *Lifetime) {
	signalled := false
	for {
		select {
		case <-l.done:
			return
		case sig := <-l.ch:
			if signalled {
				l.log.Warn("second termination signal: exiting now", "signal", sig.String())
				app.ForceExit(128 + signalNumber(sig))
				return
			}
			signalled = true
			delay := l.delay
			if !isClosed(app.Started()) {
				delay = 0 // nothing serves yet: no load balancer to wait for
			}
			l.log.Info("termination signal: shutting down", "signal", sig.String(), "delay", delay.String())
			app.RequestShutdown()
			if delay <= 0 {
				app.StopApplication()
				continue
			}
			go l.stopAfterDelay(app)
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (l *SignalLifetime) stopAfterDelay(app *Lifetime) {
	t := time.NewTimer(l.delay)
	defer t.Stop()
	select {
	case <-t.C:
		l.log.Info("shutdown delay over: stopping", "delay", l.delay.String())
	case <-app.stopRequested: // someone else stopped first
	case <-l.done:
	}
	app.StopApplication()
}

// Stop unsubscribes from the signals; from then on the default action of a
// signal applies again.
func (l *SignalLifetime) Stop(ctx context.Context) error {
	l.once.Do(func() {
		if l.ch != nil {
			l.src.Stop(l.ch)
		}
		close(l.done)
	})
	return nil
}

func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 0
}
