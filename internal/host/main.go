package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
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
}

// HostConfig holds the keys every program has.
type HostConfig struct {
	ShutdownTimeout time.Duration
	ShutdownDelay   time.Duration
	StartupTimeout  time.Duration
	LogLevel        string
	LogFormat       string
}

// Declare declares the host's keys on c.
func (hc *HostConfig) Declare(c *Config) {
	c.Duration(&hc.ShutdownTimeout, "host.shutdown_timeout", DefaultShutdownTimeout,
		"one deadline for stopping every service; past it the process exits 1")
	c.Duration(&hc.ShutdownDelay, "host.shutdown_delay", 0,
		"after a termination signal, keep serving (readiness 503) this long before stopping")
	c.Duration(&hc.StartupTimeout, "host.startup_timeout", 0,
		"bound on the start sequence; 0 means none")
	c.Choice(&hc.LogLevel, "log.level", "info", LogLevels, "minimum log level")
	c.Choice(&hc.LogFormat, "log.format", "auto", LogFormats,
		"auto: tint text on a terminal, JSON otherwise")
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
	if !isTerminal(stderr) {
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

func logEffective(log *slog.Logger, p Program, cfg *Config) {
	eff := cfg.Effective()
	attrs := make([]any, 0, 2*len(eff)+4)
	attrs = append(attrs, "version", p.Version, "config_file", cfg.File())
	for _, k := range slices.Sorted(maps.Keys(eff)) {
		attrs = append(attrs, k, eff[k])
	}
	log.Debug("effective configuration", attrs...)
}
