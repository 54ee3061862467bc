// Package web is the HTTP plumbing every hostkit binary shares: a chi router
// with request ids, an access log, Prometheus metrics by route pattern,
// panic recovery and body limits; health endpoints that follow the host's
// lifetime; and RFC 9457 problem details for every error, with one place
// (StatusOf) that maps errors to status codes.
//
// A binary builds its router with NewRouter, adds its own routes to it, and
// hands it to host.NewHTTPServer.
package web

import (
	"errors"
	"log/slog"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/host"
)

// DefaultMaxBodyBytes caps request bodies when RouterOptions leaves it zero:
// plenty for the JSON the APIs take, small enough that a client cannot make
// the server buffer much.
const DefaultMaxBodyBytes = 1 << 20

// The operational routes every router serves.
const (
	LivePath    = "/healthz/live"
	ReadyPath   = "/healthz/ready"
	MetricsPath = "/metrics"
)

// RouterOptions is what NewRouter needs. Logger, Registry and Lifetime are
// required.
type RouterOptions struct {
	Logger       *slog.Logger
	Registry     *prometheus.Registry // HTTP metrics and host_state are registered here and served at /metrics
	Lifetime     *host.Lifetime       // drives /healthz/ready and host_state
	Checks       []Check              // extra readiness checks
	MaxBodyBytes int64                // 0 means DefaultMaxBodyBytes
	// ReadTimeout bounds receiving a request's body (see ReadTimeout); 0: no bound.
	ReadTimeout time.Duration
	// MaxInFlight bounds the requests served at once (see LimitInFlight); 0: no bound.
	MaxInFlight int
	// TracerProvider, if set, makes every request a SERVER span (Trace). Nil
	// means no tracing, at no cost per request.
	TracerProvider trace.TracerProvider
}

// NewRouter returns a router with the shared middleware, the health and
// metrics routes, and problem+json answers for unknown routes and methods.
// Middleware order, outermost first: tracing (if on), request id, access
// log, metrics, recover, in-flight bound, read timeout, body limit — so the
// log and the metrics see the 500 a panic became and the 503 of a shed request.
func NewRouter(opts RouterOptions) (*chi.Mux, error) {
	if opts.Logger == nil || opts.Registry == nil || opts.Lifetime == nil {
		return nil, errors.New("web router: Logger, Registry and Lifetime are required")
	}
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	m, err := NewMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	if err := opts.Registry.Register(NewStateCollector(opts.Lifetime)); err != nil {
		return nil, err
	}

	r := chi.NewRouter()
	if opts.TracerProvider != nil {
		// Outermost, so the access log line carries the span's ids.
		r.Use(Trace(opts.TracerProvider))
	}
	r.Use(
		RequestID,
		AccessLog(opts.Logger, LivePath, ReadyPath, MetricsPath),
		m.Middleware,
		Recover(opts.Logger),
		LimitInFlight(opts.MaxInFlight, LivePath, ReadyPath, MetricsPath),
		ReadTimeout(opts.ReadTimeout),
		LimitBody(maxBody),
		// HEAD is GET without a body (RFC 9110); chi does not map it by
		// itself, and load balancers' health checks often use it.
		middleware.GetHead,
	)
	r.NotFound(NotFound)
	r.MethodNotAllowed(MethodNotAllowed(r))
	r.Get(LivePath, Live())
	r.Get(ReadyPath, Ready(opts.Lifetime, opts.Checks...))
	r.Method("GET", MetricsPath, MetricsHandler(opts.Registry))
	return r, nil
}
