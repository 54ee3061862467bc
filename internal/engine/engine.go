// Package engine provides the worker's message engine: a connection to NATS
// JetStream, either to a server embedded in the same process or to an external
// cluster.
//
// With an empty URL the engine runs an embedded JetStream server that keeps its
// streams in a directory on disk, so `go run ./cmd/worker` needs no setup and
// nothing acknowledged is lost across a restart. The embedded server listens on
// a TCP address (so that `worker publish` and other tools can reach it) or, with
// an empty address, only in-process. With a URL the engine connects to an
// external cluster, as in Kubernetes, and keeps reconnecting when the
// connection drops.
//
// An Engine is a host service: Start starts the embedded server (if any) and
// connects; Stop drains the connection and shuts the embedded server down. The
// processors that consume through the engine must be registered after it, so
// that the host, which stops services in reverse order, stops them first.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/natsclient"
)

// Config describes which engine to run or connect to. The zero value is not
// valid: start from DefaultConfig.
type Config struct {
	// URL of an external NATS cluster (comma-separated for several seeds).
	// Empty runs the embedded server.
	URL string
	// StoreDir is where the embedded server keeps its streams.
	StoreDir string
	// Addr is the host:port the embedded server listens on for clients.
	// Empty means in-process only: nothing outside this process can connect.
	// Port 0 picks a free port.
	Addr string
	// SyncAlways makes the embedded server fsync every write. Without it,
	// writes reach the operating system at once (they survive a crash of the
	// process) and are fsynced every two minutes (a crash of the machine may
	// lose the last ones).
	SyncAlways bool
	// Replicas is the replica count of the streams the processors create.
	// It must be 1 for the embedded server; Kubernetes uses 3 with a 3-node
	// cluster.
	Replicas int
	// ConnectTimeout bounds how long Start waits for an external cluster to
	// become reachable before it fails.
	ConnectTimeout time.Duration
	// Name is the client connection name shown in the server's monitoring.
	Name string
	// PingInterval and MaxPingsOutstanding bound how long the connection to
	// an external cluster stays on a server that stopped answering:
	// PingInterval × (MaxPingsOutstanding+1), then it moves to another node.
	PingInterval        time.Duration
	MaxPingsOutstanding int
}

// DefaultConfig returns the configuration of `go run ./cmd/worker`: an
// embedded server on 127.0.0.1:4222 storing in ./data/nats.
func DefaultConfig() Config {
	return Config{
		StoreDir:       "./data/nats",
		Addr:           "127.0.0.1:4222",
		Replicas:       1,
		ConnectTimeout: 10 * time.Second,
		Name:           "hostkit-worker",

		PingInterval:        natsclient.DefaultPingInterval,
		MaxPingsOutstanding: natsclient.DefaultMaxPingsOutstanding,
	}
}

// Validate reports configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("nats.replicas = %d: must be between 1 and 5", c.Replicas))
	}
	if c.URL != "" {
		if err := natsclient.ValidateURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("nats.url: %w", err))
		}
	}
	if c.PingInterval <= 0 {
		errs = append(errs, fmt.Errorf("nats.ping_interval = %s: must be positive", c.PingInterval))
	}
	if c.MaxPingsOutstanding < 1 {
		errs = append(errs, fmt.Errorf("nats.max_pings_outstanding = %d: must be at least 1", c.MaxPingsOutstanding))
	}
	if c.URL == "" {
		if c.StoreDir == "" {
			errs = append(errs, errors.New("nats.embedded.store_dir must not be empty when nats.url is empty"))
		}
		if c.Replicas > 1 {
			errs = append(errs, fmt.Errorf("nats.replicas = %d needs an external cluster (nats.url); the embedded server holds one replica", c.Replicas))
		}
		if _, _, err := splitAddr(c.Addr); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("nats.connect_timeout = %s: must be positive", c.ConnectTimeout))
	}
	return errors.Join(errs...)
}

// ErrNotConnected is returned by Ready while the engine has no live connection.
var ErrNotConnected = errors.New("engine: not connected to NATS")

// Engine owns the embedded server (if any) and the connection to it.
type Engine struct {
	cfg Config
	log *slog.Logger

	mu  sync.Mutex
	srv *server.Server // nil when connected to an external cluster
	nc  *nats.Conn
	js  jetstream.JetStream
}

// New returns an engine for cfg; nothing runs until Start.
func New(cfg Config, log *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, log: log}, nil
}

// Start starts the embedded server when no URL is configured, then connects.
// With an external cluster it waits up to Config.ConnectTimeout (or until ctx
// ends) for the first connection.
func (e *Engine) Start(ctx context.Context) error {
	if e.cfg.URL == "" {
		srv, err := startEmbedded(e.cfg, e.log)
		if err != nil {
			return err
		}
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name(e.cfg.Name), natsclient.ErrorHandler(e.log))
		if err != nil {
			shutdownEmbedded(context.Background(), srv)
			return fmt.Errorf("connect to embedded NATS: %w", err)
		}
		return e.setConn(srv, nc)
	}
	nc, err := natsclient.Dial(e.cfg.URL, e.ConnOptions(), e.log)
	if err != nil {
		return err
	}
	if err := natsclient.WaitConnected(ctx, nc, e.cfg.ConnectTimeout); err != nil {
		nc.Close()
		return fmt.Errorf("connect to NATS at %s: %w", natsclient.RedactURL(e.cfg.URL), err)
	}
	return e.setConn(nil, nc)
}

func (e *Engine) setConn(srv *server.Server, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		if srv != nil {
			shutdownEmbedded(context.Background(), srv)
		}
		return fmt.Errorf("jetstream: %w", err)
	}
	e.mu.Lock()
	e.srv, e.nc, e.js = srv, nc, js
	e.mu.Unlock()
	return nil
}

// Stop drains the connection (pending acknowledgements are flushed) and shuts
// the embedded server down, both bounded by ctx.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	srv, nc := e.srv, e.nc
	e.mu.Unlock()
	var errs []error
	if nc != nil {
		if err := natsclient.Drain(ctx, nc); err != nil {
			errs = append(errs, err)
		}
	}
	if srv != nil {
		if err := shutdownEmbedded(ctx, srv); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// JetStream returns the JetStream API of the connection; nil before Start.
func (e *Engine) JetStream() jetstream.JetStream {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.js
}

// Conn returns the NATS connection; nil before Start.
func (e *Engine) Conn() *nats.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nc
}

// ConnOptions are the options of the connection to an external cluster.
func (e *Engine) ConnOptions() natsclient.Options {
	return natsclient.Options{
		Name: e.cfg.Name, PingInterval: e.cfg.PingInterval, MaxPingsOutstanding: e.cfg.MaxPingsOutstanding,
	}
}

// Replicas is the replica count for streams created through this engine.
func (e *Engine) Replicas() int { return e.cfg.Replicas }

// ClientURL is the URL other processes use to reach the engine: the embedded
// server's listen address, or the configured external URL. It is empty for an
// in-process-only embedded server and before Start.
func (e *Engine) ClientURL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		if e.nc == nil {
			return ""
		}
		return e.cfg.URL
	}
	if e.cfg.Addr == "" {
		return ""
	}
	return e.srv.ClientURL()
}

// Ready reports whether the engine has a live connection.
func (e *Engine) Ready() error {
	nc := e.Conn()
	if nc == nil || !nc.IsConnected() {
		return ErrNotConnected
	}
	return nil
}
