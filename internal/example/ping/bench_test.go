package ping_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

// BenchmarkPing measures GET /pingpong/ping over loopback HTTP with
// keep-alive from a bare net/http handler ("bare") and through the full
// pingapi stack ("full": host.HTTPServer, chi router, request id, JSON access
// log, metrics, recover, in-flight bound, read timeout, body limit), and
// through the same stack without the in-flight bound and read timeout
// ("unbounded"). They take turns in chunks of requests so that load from
// other processes on the machine hits all alike; each op is one request to
// each. It reports each one's requests/s, p50 and p99 latency, and full's
// throughput as a ratio of bare's and of unbounded's.
//
//	go test -run '^$' -bench BenchmarkPing -benchtime 20000x ./internal/example/ping/
func BenchmarkPing(b *testing.B) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Pong")
	}))
	defer bare.Close()

	stacks := []*benchStack{
		{name: "bare", url: bare.URL + "/pingpong/ping"},
		// full runs with the binaries' defaults of the HTTP limits; unbounded
		// without them, so full/unbounded is what the limits cost.
		{name: "full", url: startFull(b, web.DefaultReadTimeout, web.DefaultMaxInFlight) + "/pingpong/ping"},
		{name: "unbounded", url: startFull(b, 0, 0) + "/pingpong/ping"},
	}
	const chunk = 500
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		for _, s := range stacks {
			s.run(b, min(chunk, b.N-done))
		}
	}
	b.StopTimer()
	for _, s := range stacks {
		s.report(b)
	}
	b.ReportMetric(stacks[1].rate()/stacks[0].rate(), "full/bare")
	b.ReportMetric(stacks[1].rate()/stacks[2].rate(), "full/unbounded")
}

// startFull serves the ping routes through the whole pingapi stack with the
// given read timeout and in-flight bound, until the benchmark ends.
func startFull(b *testing.B, readTimeout time.Duration, maxInFlight int) string {
	b.Helper()
	lt := host.NewLifetime()
	r, err := web.NewRouter(web.RouterOptions{
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:    prometheus.NewRegistry(),
		Lifetime:    lt,
		ReadTimeout: readTimeout,
		MaxInFlight: maxInFlight,
	})
	if err != nil {
		b.Fatal(err)
	}
	ping.AddRoutes(r, ping.Options{})
	srv := host.NewHTTPServer("127.0.0.1:0", r, lt, nil)
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return "http://" + srv.Addr().String()
}

// benchStack accumulates one server's results across chunks.
type benchStack struct {
	name    string
	url     string
	client  http.Client
	elapsed time.Duration
	lat     []time.Duration
}

// run sends n GETs from 4 keep-alive clients at once.
func (s *benchStack) run(b *testing.B, n int) {
	if s.client.Transport == nil {
		s.client.Transport = &http.Transport{MaxIdleConnsPerHost: 16}
	}
	const workers = 4
	var mu sync.Mutex
	var wg sync.WaitGroup
	began := time.Now()
	for w := range workers {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/workers+1)
			for i := w; i < n; i += workers {
				t0 := time.Now()
				resp, err := s.client.Get(s.url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("%s: status %d", s.name, resp.StatusCode)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			s.lat = append(s.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	s.elapsed += time.Since(began)
}

func (s *benchStack) rate() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func (s *benchStack) report(b *testing.B) {
	slices.Sort(s.lat)
	if len(s.lat) == 0 {
		return
	}
	b.ReportMetric(s.rate(), s.name+"-req/s")
	b.ReportMetric(float64(s.lat[len(s.lat)/2].Microseconds()), s.name+"-p50-µs")
	b.ReportMetric(float64(s.lat[len(s.lat)*99/100].Microseconds()), s.name+"-p99-µs")
}
