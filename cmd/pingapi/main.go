// Command pingapi serves the ping API (GET /pingpong/ping, POST
// /pingpong/jobs) with health and metrics endpoints, and drains gracefully on
// SIGTERM. It only wires: configuration keys, the router, the NATS publisher
// and the HTTP server.
package main

import (
	"context"
	"errors"
	"os"
	"strconv"
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
	HTTP      web.Config
	NATSURL   string
	NATS      natsclient.Options
	Telemetry telemetry.Config
	// example:begin
	MaxDelay time.Duration
	// example:end
}

func program() host.Program {
	var cfg config
	return host.Program{
		Name:    "pingapi",
		Version: version,
		Config: func(c *host.Config) {
			cfg.HTTP.Declare(c, ":8080", "HTTP listen address")
			// example:begin
			c.Duration(&cfg.MaxDelay, "ping.max_delay", ping.DefaultMaxDelay, "longest ?delay= a ping may ask for")
			// example:end
			c.String(&cfg.NATSURL, "nats.url", "nats://127.0.0.1:4222",
				"NATS servers that receive jobs (nats://host:4222, comma-separated)")
			c.Duration(&cfg.NATS.PingInterval, "nats.ping_interval", natsclient.DefaultPingInterval,
				"how often pingapi pings its NATS server; a server that stops answering is left after ping_interval × (max_pings_outstanding+1)")
			c.Int(&cfg.NATS.MaxPingsOutstanding, "nats.max_pings_outstanding", natsclient.DefaultMaxPingsOutstanding,
				"unanswered pings before pingapi gives its NATS server up and moves to another node")
			c.Check(func() error { return checkNATS(&cfg) })
			cfg.Telemetry.Declare(c)
		},
		LogHandler: telemetry.LogHandler,
		Build:      func(h *host.Host) error { return build(h, cfg) },
	}
}

// checkNATS rejects NATS settings that cannot work, naming the key (exit 2).
func checkNATS(cfg *config) error {
	if err := natsclient.ValidateURL(cfg.NATSURL); err != nil {
		return &host.ConfigError{Key: "nats.url", Value: natsclient.RedactURL(cfg.NATSURL), Err: err}
	}
	if cfg.NATS.PingInterval <= 0 {
		return &host.ConfigError{Key: "nats.ping_interval", Value: cfg.NATS.PingInterval.String(), Err: errors.New("must be positive")}
	}
	if cfg.NATS.MaxPingsOutstanding < 1 {
		return &host.ConfigError{Key: "nats.max_pings_outstanding", Value: strconv.Itoa(cfg.NATS.MaxPingsOutstanding), Err: errors.New("must be at least 1")}
	}
	return nil
}

func build(h *host.Host, cfg config) error {
	log, lt := h.Logger(), h.Lifetime()
	// First, so it stops last: the spans of the last requests are flushed.
	tr, err := telemetry.Add(h, "pingapi", cfg.Telemetry)
	if err != nil {
		return err
	}
	reg := web.NewRegistry()
	metrics, err := natsclient.NewMetrics(reg)
	if err != nil {
		return err
	}
	// The publisher connects in the background: pingapi serves while NATS is
	// down and answers jobs with 503 until it is up. Added before the HTTP
	// server, it stops after it, so requests in flight can still publish.
	cfg.NATS.Name = "pingapi"
	pub, err := natsclient.NewPublisherWith(cfg.NATSURL, natsclient.PublisherOptions{Conn: cfg.NATS, Metrics: metrics}, log)
	if err != nil {
		return &host.ConfigError{Key: "nats.url", Value: natsclient.RedactURL(cfg.NATSURL), Err: err}
	}
	// NATS only degrades readiness: every replica shares it, so failing
	// readiness would not send a request anywhere better, and it would take
	// GET /pingpong/ping down with the jobs. The body says what is wrong,
	// and nats_connection_status and nats_publish_total show it.
	r, err := web.NewRouter(web.RouterOptions{
		Logger: log, Registry: reg, Lifetime: lt, TracerProvider: tr.TracerProvider(),
		ReadTimeout: cfg.HTTP.ReadTimeout, MaxInFlight: cfg.HTTP.MaxInFlight,
		Checks: []web.Check{{Name: "nats", Probe: func(context.Context) error { return pub.Health() }, DegradeOnly: true}},
	})
	if err != nil {
		pub.Close()
		return err
	}
	h.Add("nats-publisher", pub)
	// Routes: the example's; add yours (tools/strip removes the example).
	// example:begin
	ping.AddRoutes(r, ping.Options{MaxDelay: cfg.MaxDelay, Publisher: pub, Logger: log})
	// example:end
	h.Add("http", host.NewHTTPServer(cfg.HTTP.Addr, r, lt, log))
	return nil
}
