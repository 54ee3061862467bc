package web

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
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

// Metrics holds the HTTP server metrics: request count and latency by method,
// route pattern and status code, and requests in flight.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	cache    sync.Map // seriesKey → *series
}

// seriesKey and series cache the labelled children, which the vectors would
// otherwise look up by hashing the label values twice per request.
type seriesKey struct {
	method, route string
	code          int
	fault         string // replaces code in the label when set
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// durationBuckets reach past the default 10 s because /pingpong/ping may be
// asked to wait up to ping.max_delay (60 s by default).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewMetrics registers the HTTP metrics on reg. It fails if reg already has
// them, as a second router on the same registry would.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"method", "route", "code"}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method, route pattern and status code.",
			Buckets: durationBuckets,
		}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// Middleware records every request it wraps. Put it outside Recover so a
// panic is counted as the 500 it became. It records in a deferred call, so
// a response aborted by a panic after its header (re-panicked by Recover)
// is counted too, with code="panic"; a request cut off by the shutdown
// timeout has code="shutdown_timeout".
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Inc()
		o := observe(w, r)
		defer func() {
			m.inFlight.Dec()
			s := m.series(r.Method, o.routePattern(), o.finalStatus(), o.fault())
			s.requests.Inc()
			s.duration.Observe(time.Since(o.start).Seconds())
		}()
		next.ServeHTTP(o, r)
	})
}

func (m *Metrics) series(method, route string, code int, fault string) *series {
	k := seriesKey{methodLabel(method), route, code, fault}
	if s, ok := m.cache.Load(k); ok {
		return s.(*series)
	}
	c := strconv.Itoa(code)
	if fault != "" {
		c = fault
	}
	s, _ := m.cache.LoadOrStore(k, &series{
		requests: m.requests.WithLabelValues(k.method, route, c),
		duration: m.duration.WithLabelValues(k.method, route, c),
	})
	return s.(*series)
}

// methodLabel keeps the method label to the standard methods: the client
// chooses the method, and must not be able to mint new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// stateCollector exports the host's lifecycle state as one series per state,
// 1 for the current one and 0 for the others, so a dashboard can plot
// host_state{state="shutdown_requested"} == 1 during a rollout.
type stateCollector struct {
	lt   *host.Lifetime
	desc *prometheus.Desc
}

// NewStateCollector returns a collector for lt's state as host_state{state}.
// It reads the state at scrape time, so it is never stale.
func NewStateCollector(lt *host.Lifetime) prometheus.Collector {
	return &stateCollector{
		lt: lt,
		desc: prometheus.NewDesc("host_state",
			"Lifecycle state of the host: 1 for the current state, 0 for the others.",
			[]string{"state"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	current := c.lt.State()
	for _, s := range host.States() {
		v := 0.0
		if s == current {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s.String())
	}
}
