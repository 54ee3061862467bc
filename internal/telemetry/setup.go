package telemetry

import (
	"context"
	"fmt"

	"github.com/hostkit/hostkit/internal/host"
)

// Config holds the telemetry keys every binary declares.
type Config struct {
	// DebugAddr is the pprof listener's address; empty turns it off.
	DebugAddr string
}

// Declare declares the telemetry keys on c.
func (cfg *Config) Declare(c *host.Config) {
	c.String(&cfg.DebugAddr, "debug.addr", "",
		"pprof listener (/debug/pprof/), e.g. 127.0.0.1:6060; empty = off; never expose it beyond the pod")
}

// Add builds the tracing service from the environment (see NewTracing) and
// adds it to h, then the pprof listener if cfg asks for one. Call it before
// adding any other service: the host stops services in reverse, so tracing
// stops last and flushes the spans of everything that stopped before it.
func Add(h *host.Host, service string, cfg Config) (*Tracing, error) {
	t, err := NewTracing(context.Background(), service)
	if err != nil {
		return nil, &host.ConfigError{Err: fmt.Errorf("tracing from the OTEL_* environment: %w", err)}
	}
	h.Add("tracing", t)
	if t.Enabled() {
		h.Logger().Info("tracing on", "exporter", t.Exporter())
	}
	if cfg.DebugAddr != "" {
		h.Add("debug", host.NewHTTPServer(cfg.DebugAddr, DebugHandler(), h.Lifetime(), h.Logger()))
	}
	return t, nil
}
