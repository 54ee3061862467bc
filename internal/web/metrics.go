package web

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hostkit/hostkit/internal/host"
)

// NewRegistry returns a registry with the Go runtime and process collectors,
// for a main to create once and hand to everything that exports metrics.
// A registry of our own, not the global one, keeps tests independent and
// makes every exported series a deliberate choice.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// MetricsHandler serves reg in the Prometheus text format. Its own scrape
// errors are counted on reg too.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Metrics holds the HTTP server metrics of OpenTelemetry's stable HTTP
// semantic conventions, in their Prometheus form: http.server.request.duration
// as http_server_request_duration_seconds by http_request_method, http_route
// and http_response_status_code (its _count is the request count), and
// http.server.active_requests as http_server_active_requests by
// http_request_method.
type Metrics struct {
	duration *prometheus.HistogramVec
	active   [len(methods) + 1]prometheus.Gauge // by methodIndex
	cache    sync.Map                           // seriesKey → prometheus.Observer
}

// seriesKey caches the labelled histograms, which the vector would otherwise
// look up by hashing the label values per request.
type seriesKey struct {
	method, route string
	code          int
	fault         string // replaces code in the label when set
}

// durationBuckets reach past the conventions' advised 10 s because
// /pingpong/ping may be asked to wait up to ping.max_delay (60 s by default).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10, 30, 60}

// The metric and label names, by the conventions.
const (
	DurationMetric   = "http_server_request_duration_seconds"
	ActiveMetric     = "http_server_active_requests"
	MethodLabel      = "http_request_method"
	RouteLabel       = "http_route"
	StatusCodeLabel  = "http_response_status_code"
	otherMethodLabel = "_OTHER"
)

// methods are the known methods of the conventions; any other is "_OTHER",
// so a client cannot mint new series.
var methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

// NewMetrics registers the HTTP metrics on reg. It fails if reg already has
// them, as a second router on the same registry would.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    DurationMetric,
			Help:    "Duration of HTTP server requests (OpenTelemetry http.server.request.duration).",
			Buckets: durationBuckets,
		}, []string{MethodLabel, RouteLabel, StatusCodeLabel}),
	}
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: ActiveMetric,
		Help: "HTTP server requests being served now (OpenTelemetry http.server.active_requests).",
	}, []string{MethodLabel})
	for i := range m.active {
		m.active[i] = active.WithLabelValues(methodName(i))
	}
	for _, c := range []prometheus.Collector{m.duration, active} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// Middleware records every request it wraps. Put it outside Recover so a
// panic is counted as the 500 it became. It records in a deferred call, so
// a response aborted by a panic after its header (re-panicked by Recover)
// is counted too, with http_response_status_code="panic"; a request cut off
// by the shutdown timeout has "shutdown_timeout".
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mi := methodIndex(r.Method)
		m.active[mi].Inc()
		o := observe(w, r)
		defer func() {
			m.active[mi].Dec()
			m.observer(mi, o.routePattern(), o.finalStatus(), o.fault()).Observe(time.Since(o.start).Seconds())
		}()
		next.ServeHTTP(o, r)
	})
}

func (m *Metrics) observer(mi int, route string, code int, fault string) prometheus.Observer {
	k := seriesKey{methodName(mi), route, code, fault}
	if s, ok := m.cache.Load(k); ok {
		return s.(prometheus.Observer)
	}
	c := strconv.Itoa(code)
	if fault != "" {
		c = fault
	}
	s, _ := m.cache.LoadOrStore(k, m.duration.WithLabelValues(k.method, route, c))
	return s.(prometheus.Observer)
}

// methodIndex is m's index in methods, or len(methods) for any other.
func methodIndex(m string) int {
	for i, known := range methods {
		if m == known {
			return i
		}
	}
	return len(methods)
}

func methodName(i int) string {
	if i < len(methods) {
		return methods[i]
	}
	return otherMethodLabel
}

// stateCollector exports the host's lifecycle state as one series per state,
// 1 for the current one and 0 for the others, so a dashboard can plot
// host_state{state="shutdown_requested"} == 1 during a rollout; and how long
// the stop sequence has been running, which a service that keeps /metrics
// up while it drains (the worker) reports until the end.
type stateCollector struct {
	lt         *host.Lifetime
	desc       *prometheus.Desc
	stopping   *prometheus.Desc
	stoppingAt atomic.Int64 // unix nanoseconds; 0 until the application stops
}

// NewStateCollector returns a collector for lt's state as host_state{state}
// and host_stopping_seconds. It reads the state at scrape time, so it is
// never stale.
func NewStateCollector(lt *host.Lifetime) prometheus.Collector {
	c := &stateCollector{
		lt: lt,
		desc: prometheus.NewDesc("host_state",
			"Lifecycle state of the host: 1 for the current state, 0 for the others.",
			[]string{"state"}, nil),
		stopping: prometheus.NewDesc("host_stopping_seconds",
			"Seconds since the application began stopping (draining); 0 before.", nil, nil),
	}
	lt.OnStopping(func() { c.stoppingAt.Store(time.Now().UnixNano()) })
	return c
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.stopping
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	current := c.lt.State()
	for _, s := range host.States() {
		v := 0.0
		if s == current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s.String())
	}
	var took float64
	if at := c.stoppingAt.Load(); at != 0 {
		took = time.Since(time.Unix(0, at)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.stopping, prometheus.GaugeValue, took)
}
