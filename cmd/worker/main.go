// Command worker processes jobs and changes from NATS JetStream, with health
// and metrics endpoints on http.addr (default :8090).
//
// It runs two processors over one engine:
//
//   - the queue processor: jobs published on jobs.<type> (stream JOBS) are
//     shared among the replicas; each job runs once per success, is retried
//     with growing delays on failure and lands in stream DLQ (dlq.<subject>)
//     after queue.max_deliver attempts;
//   - the change-feed processor: changes published on changes.<key> (stream
//     CHANGES) are processed in order per key, each partition by one replica.
//
// With nats.url empty (the default) the worker runs an embedded JetStream
// server storing in nats.embedded.store_dir and listening on
// nats.embedded.addr (127.0.0.1:4222), so `go run ./cmd/worker` needs
// nothing else. With nats.url set it connects to that cluster.
//
// Usage:
//
//	worker [--config FILE] [--key=value ...]   run the worker; see --help for the keys
//	worker publish [flags] SUBJECT [PAYLOAD]    publish test jobs or changes
//	worker version                              print the version
//
// publish writes PAYLOAD (default {"id":"{{n}}","work":"50ms"}) on SUBJECT,
// --count times, replacing {{n}} with 1, 2, ... Examples:
//
//	worker publish --count 100 jobs.ping
//	worker publish jobs.ping '{"id":"slow","work":"5s"}'
//	worker publish jobs.ping '{"id":"bad","fail":"on purpose"}'   retried, then DLQ
//	worker publish jobs.ping 'not json'                            DLQ at once
//	worker publish --count 10 changes.order-42 '{"v":{{n}}}'
//
// Every key can be set in the YAML file, as an environment variable
// (QUEUE__CONCURRENCY=8) or as a flag (--queue.concurrency=8).
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/example/jobs"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/telemetry"
	"github.com/hostkit/hostkit/internal/web"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ, os.Stdout, os.Stderr))
}

// run dispatches between the publish subcommand and the worker itself.
func run(ctx context.Context, args []string, environ func() []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "publish" {
		return publish(ctx, args[1:], environ(), stdout, stderr)
	}
	if len(args) > 0 && args[0] == "dlq" {
		return dlq(ctx, args[1:], environ(), stdout, stderr)
	}
	return host.Main(ctx, args, environ, stderr, program())
}

const subcommands = `
Subcommands:
  worker publish [--count N] [--url URL] SUBJECT [PAYLOAD]   publish test jobs or changes (publish --help)
  worker dlq list | replay (--all | ID...)                   inspect and replay dead letters (dlq --help)
  worker version                                             print the version
`

func program() host.Program {
	var cfg config
	return host.Program{
		Name:       "worker",
		Version:    version,
		Config:     cfg.declare,
		Usage:      subcommands,
		LogHandler: telemetry.LogHandler,
		// A job's line is written before its acknowledgement, so that a
		// SIGKILL leaves a job run twice in the log, never run and unlogged.
		SyncLog: true,
		Build:   func(h *host.Host) error { return build(h, cfg) },
	}
}

// build wires the services. The host starts them in the order added and
// stops them in reverse: HTTP first, so that /healthz/live answers while the
// engine recovers its store and /metrics stays up while the processors drain;
// the engine before the processors, so that it stops after them and their
// last acknowledgements are flushed before its connection closes.
func build(h *host.Host, cfg config) error {
	log, lt := h.Logger(), h.Lifetime()
	reg := web.NewRegistry()
	// First, so it stops last: the spans of the last jobs are flushed.
	tr, err := telemetry.Add(h, "worker", cfg.Telemetry)
	if err != nil {
		return err
	}

	eng, err := engine.New(cfg.Engine, log)
	if err != nil {
		return &host.ConfigError{Err: err}
	}
	qm, err := queue.NewMetrics(reg)
	if err != nil {
		return err
	}
	if err := reg.Register(queue.NewBacklogCollector(eng.JetStream)); err != nil {
		return err
	}
	q, err := queue.New(eng, cfg.Queue, log, qm)
	if err != nil {
		return &host.ConfigError{Err: err}
	}
	// One line per job type.
	// example:begin
	q.Handle("jobs.ping", jobs.PingUpTo(cfg.Example.PingMaxWork))
	// example:end
	q.SetTracerProvider(tr.TracerProvider())

	cm, err := changefeed.NewMetrics(reg, qm)
	if err != nil {
		return err
	}
	// What the service does with each change, in order; put yours here.
	onChange := changeHandlers{
		// example:begin
		jobs.LogChanges(log),
		// example:end
	}
	cf, err := changefeed.New(cfg.ChangeFeed, eng.JetStream, onChange.handle, cm, log.With("processor", "changefeed"))
	if err != nil {
		return &host.ConfigError{Err: err}
	}
	cf.SetTracerProvider(tr.TracerProvider())

	r, err := web.NewRouter(web.RouterOptions{
		Logger:         log,
		Registry:       reg,
		Lifetime:       lt,
		TracerProvider: tr.TracerProvider(),
		ReadTimeout:    cfg.HTTP.ReadTimeout,
		MaxInFlight:    cfg.HTTP.MaxInFlight,
		Checks: []web.Check{
			{Name: "nats", Probe: ready(eng.Ready)},
			{Name: "queue", Probe: ready(q.Ready)},
			{Name: "changefeed", Probe: ready(cf.Ready)},
		},
	})
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}

	h.Add("http", host.NewHTTPServer(cfg.HTTP.Addr, r, lt, log))
	h.Add("nats", eng)
	h.Add("queue", q)
	h.Add("changefeed", cf)
	return nil
}

// changeHandlers runs each of its handlers on a change, in order, and stops
// at the first error: the change comes again later, to every handler, so
// each must be safe to repeat (as a change can come twice anyway). With no
// handlers, changes are acknowledged unread.
type changeHandlers []changefeed.Handler

func (hs changeHandlers) handle(ctx context.Context, c changefeed.Change) error {
	for _, h := range hs {
		if err := h(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// ready adapts a Ready method to a readiness probe.
func ready(f func() error) func(context.Context) error {
	return func(context.Context) error { return f() }
}
