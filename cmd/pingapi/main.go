// Command pingapi serves the ping API (GET /pingpong/ping, POST
// /pingpong/jobs) with health and metrics endpoints, and drains gracefully on
// SIGTERM. It only wires: configuration keys, the router, the NATS publisher
// and the HTTP server.
package main

import (
	"context"
	"os"
	"time"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/telemetry"
	"github.com/hostkit/hostkit/internal/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(host.Main(context.Background(), os.Args[1:], os.Environ, os.Stderr, program()))
}

// config holds pingapi's own keys.
type config struct {
	Addr      string
	MaxDelay  time.Duration
	NATSURL   string
	Telemetry telemetry.Config
}

func program() host.Program {
	var cfg config
	return host.Program{
		Name:    "pingapi",
		Version: version,
		Config: func(c *host.Config) {
			c.String(&cfg.Addr, "http.addr", ":8080", "HTTP listen address")
			c.Duration(&cfg.MaxDelay, "ping.max_delay", ping.DefaultMaxDelay, "longest ?delay= a ping may ask for")
			c.String(&cfg.NATSURL, "nats.url", "nats://127.0.0.1:4222", "NATS server that receives jobs")
			cfg.Telemetry.Declare(c)
		},
		LogHandler: telemetry.LogHandler,
		Build:      func(h *host.Host) error { return build(h, cfg) },
	}
}

func build(h *host.Host, cfg config) error {
	log, lt := h.Logger(), h.Lifetime()
	// First, so it stops last: the spans of the last requests are flushed.
	tr, err := telemetry.Add(h, "pingapi", cfg.Telemetry)
	if err != nil {
		return err
	}
	r, err := web.NewRouter(web.RouterOptions{
		Logger: log, Registry: web.NewRegistry(), Lifetime: lt, TracerProvider: tr.TracerProvider(),
	})
	if err != nil {
		return err
	}
	// The publisher connects in the background: pingapi serves while NATS is
	// down and answers jobs with 503 until it is up. Added before the HTTP
	// server, it stops after it, so requests in flight can still publish.
	pub, err := natsclient.NewPublisher(cfg.NATSURL, log)
	if err != nil {
		return &host.ConfigError{Key: "nats.url", Value: cfg.NATSURL, Err: err}
	}
	h.Add("nats-publisher", pub)
	ping.AddRoutes(r, ping.Options{
		MaxDelay: cfg.MaxDelay, Publisher: pub, Unavailable: natsclient.ErrUnavailable, Logger: log,
	})
	h.Add("http", host.NewHTTPServer(cfg.Addr, r, lt, log))
	return nil
}
