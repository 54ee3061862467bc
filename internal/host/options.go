package host

import (
	"log/slog"
	"time"
)

// Options configure a Host. The zero value is usable: the defaults are those
// of .NET's HostOptions, except that services stop strictly in reverse.
type Options struct {
	// ShutdownTimeout is the one deadline for the whole stop sequence
	// (default 30s). Every Stop is called even after it passes, with the
	// expired context; the host then returns promptly instead of waiting.
	ShutdownTimeout time.Duration
	// StartupTimeout bounds the whole start sequence; 0 means none.
	StartupTimeout time.Duration
	// ServicesStartConcurrently runs each start phase (Starting, Start,
	// Started) for all services at once instead of in registration order.
	ServicesStartConcurrently bool
	// ServicesStopConcurrently runs each stop phase for all services at once
	// instead of in reverse registration order.
	ServicesStopConcurrently bool
	// Lifetime decides when the host starts and what stops it. Nil means a
	// console lifetime on the process's termination signals (TerminationSignals).
	Lifetime HostLifetime
	// Logger receives the host's own records. Nil discards them.
	Logger *slog.Logger
	// Trace, if set, receives every step of the sequence as it finishes. In
	// concurrent phases it is called from several goroutines.
	Trace func(Event)
	// Overrun is how long the host still waits for a call that ignores its
	// expired deadline before giving up on it (default 50ms).
	Overrun time.Duration
}

// DefaultShutdownTimeout is ShutdownTimeout's default, as in .NET 6 and later.
const DefaultShutdownTimeout = 30 * time.Second

const defaultOverrun = 50 * time.Millisecond

func (o Options) withDefaults() Options {
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Overrun <= 0 {
		o.Overrun = defaultOverrun
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Lifetime == nil {
		o.Lifetime = NewConsoleLifetime(OSSignals{}, o.Logger)
	}
	if o.Trace == nil {
		o.Trace = func(Event) {}
	}
	return o
}
