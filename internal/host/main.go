package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// Program is what a binary hands to Main: its name, its own configuration
// keys, and how to build its services once the configuration is loaded.
type Program struct {
	Name    string
	Version string
	// Config declares the program's keys (the host's own are declared
	// already). The variables it binds hold their loaded values when Build runs.
	Config func(c *Config)
	// Build adds the program's services to h. An error stops the program
	// before anything starts; a *ConfigError exits 2, any other error 1.
	Build func(h *Host) error
	// Usage is printed after the table of keys on --help: subcommands,
	// examples.
	Usage string
	// Signals replaces the process's signals, for tests that run Main
	// in-process. Nil means the real ones.
	Signals SignalSource
	// LogHandler, if set, wraps the handler of the logger Main makes, e.g.
	// to add the active span's ids to every record.
	LogHandler func(slog.Handler) slog.Handler
	// SyncLog writes each log line through before the logging call returns,
	// instead of batching lines off the caller's path. A program whose log
	// lines are records sets it: the worker logs each job before
	// acknowledging it, and a batched line would die with the process on
	// SIGKILL while the acknowledgement it preceded went out.
	SyncLog bool
}

// HostConfig holds the keys every program has.
type HostConfig struct {
	ShutdownTimeout        time.Duration
	ShutdownDelay          time.Duration
	StartupTimeout         time.Duration
	TerminationGracePeriod time.Duration
	LogLevel               string
	LogFormat              string
}

// TerminationMargin is what host.termination_grace_period must hold beyond
// host.shutdown_delay + host.shutdown_timeout. The host itself exits within
// tens of milliseconds of that budget; the margin covers what it does not
// control: the runtime's own latency between its signal and its SIGKILL, a
// preStop hook, a loaded node. The deploy manifests' tests use the same 5s.
const TerminationMargin = 5 * time.Second

// Declare declares the host's keys on c, and the checks that span them.
func (hc *HostConfig) Declare(c *Config) {
	c.Duration(&hc.ShutdownTimeout, "host.shutdown_timeout", DefaultShutdownTimeout,
		"one deadline for stopping every service; past it the process exits 1; must be positive")
	c.Duration(&hc.ShutdownDelay, "host.shutdown_delay", 0,
		"after a termination signal, keep serving (readiness 503) this long before stopping")
	c.Duration(&hc.StartupTimeout, "host.startup_timeout", 0,
		"bound on the start sequence; 0 means none")
	c.Duration(&hc.TerminationGracePeriod, "host.termination_grace_period", 0,
		"time the runtime allows from SIGTERM to SIGKILL (the pod's terminationGracePeriodSeconds, docker --stop-timeout); "+
			"if set, start fails (exit 2) unless shutdown_delay + shutdown_timeout + 5s fit in it; 0: no check")
	c.Check(func() error { return hc.check(c) })
	c.Choice(&hc.LogLevel, "log.level", "info", LogLevels, "minimum log level")
	c.Choice(&hc.LogFormat, "log.format", "auto", LogFormats,
		"auto: tint text on a terminal, JSON otherwise")
}

// check rejects a zero shutdown timeout, which would otherwise have to mean
// either "no deadline" (a stuck Stop hangs until SIGKILL) or a silent
// default, and a shutdown budget the runtime would cut short with SIGKILL.
func (hc *HostConfig) check(c *Config) error {
	if hc.ShutdownTimeout <= 0 {
		return c.Invalid("host.shutdown_timeout", "must be positive: stopping needs a deadline")
	}
	if g := hc.TerminationGracePeriod; g > 0 {
		if need := hc.ShutdownDelay + hc.ShutdownTimeout + TerminationMargin; need > g {
			return c.Invalid("host.termination_grace_period", fmt.Sprintf(
				"host.shutdown_delay %s + host.shutdown_timeout %s + margin %s = %s exceeds host.termination_grace_period %s: "+
					"the process would be killed before it drains; raise the grace period or lower the delay or timeout",
				hc.ShutdownDelay, hc.ShutdownTimeout, TerminationMargin, need, g))
		}
	}
	return nil
}

// Main loads the configuration, builds the program's services and runs them
// until the process is asked to stop. It returns the exit code: 0 after a
// clean stop, 1 for a runtime failure, 2 for invalid configuration or usage,
// 128+n for an exit forced by a second signal n. It never calls os.Exit,
// so tests run it in-process.
func Main(ctx context.Context, args []string, environ func() []string, stderr io.Writer, p Program) int {
	var hc HostConfig
	cfg := NewConfig()
	hc.Declare(cfg)
	if p.Config != nil {
		p.Config(cfg)
	}
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintf(stderr, "%s %s\n", p.Name, p.Version)
		return ExitOK
	}
	if err := cfg.Load(args, environ()); err != nil {
		if errors.Is(err, ErrHelp) {
			cfg.Usage(stderr, p.Name)
			fmt.Fprint(stderr, p.Usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitCode(err)
	}
	logOut := stderr
	if !p.SyncLog && !isTerminal(stderr) {
		// Off the request path: one write per batch of lines, not per line.
		aw := NewAsyncWriter(stderr, DefaultLogBuffer)
		defer flushLog(aw)
		logOut = aw
	}
	log, err := NewLogger(logOut, hc.LogLevel, hc.LogFormat)
	if err != nil { // unreachable: Choice validated both keys
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	if p.LogHandler != nil {
		log = slog.New(p.LogHandler(log.Handler()))
	}
	log = log.With("app", p.Name)
	logEffective(log, p, cfg)
	if ignored := cfg.Ignored(); len(ignored) > 0 {
		log.Warn("environment variables shaped like configuration keys, but of no section this program has; ignored",
			"variables", ignored)
	}

	signals := p.Signals
	if signals == nil {
		signals = OSSignals{}
		ignoreBrokenPipes()
	}
	h := New(Options{
		ShutdownTimeout: hc.ShutdownTimeout,
		StartupTimeout:  hc.StartupTimeout,
		Lifetime:        NewDelayedShutdownLifetime(signals, hc.ShutdownDelay, log),
		Logger:          log,
	})
	if p.Build != nil {
		if err := p.Build(h); err != nil {
			log.Error("build failed", "err", err)
			return ExitCode(err)
		}
	}
	if err := h.Run(ctx); err != nil {
		code := ExitCode(err)
		log.Error("exiting with failure", "code", code, "err", err)
		return code
	}
	return ExitOK
}

// LogFlushTimeout bounds the final flush of the log when Main returns: a log
// sink that stopped reading must not keep the process from exiting.
const LogFlushTimeout = 5 * time.Second

func flushLog(aw *AsyncWriter) {
	ctx, cancel := context.WithTimeout(context.Background(), LogFlushTimeout)
	defer cancel()
	_ = aw.Close(ctx) // nowhere left to report a failing log
}

// ignoreBrokenPipes keeps a log reader that goes away (`| head`, a closed
// `| tee`) from killing the process: Go's runtime raises SIGPIPE on a write
// to a broken stdout or stderr unless the signal is handled. Ignored, the
// write fails with EPIPE instead, which slog drops, and the process goes on
// to drain and exit with its own code.
func ignoreBrokenPipes() { signal.Ignore(syscall.SIGPIPE) }

// logEffective logs every key's value once, at info, so an operator sees
// what the process really runs with; secrets are masked (see Masked).
func logEffective(log *slog.Logger, p Program, cfg *Config) {
	eff := cfg.Effective()
	attrs := make([]any, 0, 2*len(eff)+4)
	attrs = append(attrs, "version", p.Version, "config_file", cfg.File())
	for _, k := range slices.Sorted(maps.Keys(eff)) {
		attrs = append(attrs, k, Masked(k, eff[k]))
	}
	log.Info("effective configuration", attrs...)
}
