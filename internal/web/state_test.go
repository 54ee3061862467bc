package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

// stopProbe is a service whose Stop scrapes host_stopping_seconds.
type stopProbe struct {
	scrape func() float64
	during float64
}

func (p *stopProbe) Start(context.Context) error { return nil }

func (p *stopProbe) Stop(ctx context.Context) error {
	for p.during = p.scrape(); p.during <= 0 && ctx.Err() == nil; p.during = p.scrape() {
		time.Sleep(time.Millisecond) // the clock must move; nothing else to wait for
	}
	return nil
}

func TestStoppingSecondsCountsFromTheStop(t *testing.T) {
	h := host.New(host.Options{ShutdownTimeout: 5 * time.Second})
	r, err := web.NewRouter(web.RouterOptions{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Lifetime: h.Lifetime(),
	})
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() float64 {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", web.MetricsPath, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, "host_stopping_seconds "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				return f
			}
		}
		t.Fatal("no host_stopping_seconds")
		return 0
	}
	if got := scrape(); got != 0 {
		t.Errorf("before the stop: host_stopping_seconds = %v, want 0", got)
	}
	probe := &stopProbe{scrape: scrape}
	h.Add("probe", probe)
	ctx, cancel := context.WithCancel(context.Background())
	h.Lifetime().OnStarted(cancel) // stop as soon as started
	if err := h.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if probe.during <= 0 || probe.during > 5 {
		t.Errorf("during Stop: host_stopping_seconds = %v, want the time since the stop began", probe.during)
	}
}
