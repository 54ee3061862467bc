package web_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

func TestReadyFollowsLifetime(t *testing.T) {
	shuttingDown := startedLifetime(t)
	shuttingDown.RequestShutdown()
	tests := []struct {
		name   string
		lt     *host.Lifetime
		status int
		detail string
	}{
		{"starting", host.NewLifetime(), 503, "starting"},
		{"started", startedLifetime(t), 200, ""},
		{"shutdown requested", shuttingDown, 503, "shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.lt)
			resp := f.do(t, "GET", web.ReadyPath, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("ready status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				if p := decodeProblem(t, resp); p.Detail != tt.detail {
					t.Errorf("ready detail = %q, want %q", p.Detail, tt.detail)
				}
			}
			if resp := f.do(t, "GET", web.LivePath, ""); resp.StatusCode != 200 {
				t.Errorf("live status = %d, want 200 whatever the lifetime", resp.StatusCode)
			}
		})
	}
}

// TestReadyFailsAtSignalAndLiveHoldsDuringDelay drives the real delayed
// shutdown lifetime: the signal turns readiness to 503 at once, while the
// process keeps serving (live and every other route) through the delay.
func TestReadyFailsAtSignalAndLiveHoldsDuringDelay(t *testing.T) {
	sigs := &host.ManualSignals{}
	h := host.New(host.Options{Lifetime: host.NewDelayedShutdownLifetime(sigs, time.Hour, nil)})
	lt := h.Lifetime()
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	defer func() {
		lt.StopApplication()
		if err := <-done; err != nil {
			t.Errorf("host run: %v", err)
		}
	}()
	<-lt.Started()
	f := newFixture(t, lt)
	if got := f.do(t, "GET", web.ReadyPath, "").StatusCode; got != 200 {
		t.Fatalf("ready before the signal = %d, want 200", got)
	}

	if !sigs.Send(syscall.SIGTERM) {
		t.Fatal("nobody listens for SIGTERM")
	}
	select {
	case <-lt.ShutdownRequested():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not request the shutdown")
	}
	for path, want := range map[string]int{web.ReadyPath: 503, web.LivePath: 200, "/ok": 200} {
		if got := f.do(t, "GET", path, "").StatusCode; got != want {
			t.Errorf("during the delay %s = %d, want %d", path, got, want)
		}
	}
}

func TestReadyRunsChecks(t *testing.T) {
	lt := startedLifetime(t)
	down := web.Check{Name: "nats", Probe: func(context.Context) error { return errors.New("connection refused") }}
	up := web.Check{Name: "disk", Probe: func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("check has no deadline")
		}
		return nil
	}}

	if resp := newFixture(t, lt, up).do(t, "GET", web.ReadyPath, ""); resp.StatusCode != 200 {
		t.Errorf("passing check: ready = %d, want 200", resp.StatusCode)
	}
	resp := newFixture(t, lt, up, down).do(t, "GET", web.ReadyPath, "")
	if resp.StatusCode != 503 {
		t.Fatalf("failing check: ready = %d, want 503", resp.StatusCode)
	}
	if got, want := decodeProblem(t, resp).Detail, "check nats: connection refused"; got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
}

func TestMetricsByRoutePattern(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	for _, path := range []string{"/ok", "/items/1", "/items/2", "/nope", "/nope/deeper", "/panic"} {
		f.do(t, "GET", path, "")
	}
	f.do(t, "DELETE", "/ok", "")

	resp := f.do(t, "GET", web.MetricsPath, "")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/ok"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/items/{id}"} 2`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="unmatched"} 2`,
		`http_server_request_duration_seconds_count{http_request_method="DELETE",http_response_status_code="405",http_route="unmatched"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="500",http_route="/panic"} 1`,
		`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/ok",le="60"} 1`,
		`http_server_active_requests{http_request_method="GET"} 1`, // the scrape itself
		`http_server_active_requests{http_request_method="DELETE"} 0`,
		`http_server_active_requests{http_request_method="_OTHER"} 0`,
		`host_state{state="running"} 1`,
		`host_state{state="starting"} 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(body), `http_requests_total`) {
		t.Error("metrics still export the hand-named http_requests_total")
	}
	if strings.Contains(string(body), `route="/items/1"`) {
		t.Error("metrics are labelled by raw path; want the route pattern")
	}
}

func TestHostStateFollowsLifetime(t *testing.T) {
	lt := host.NewLifetime()
	f := newFixture(t, lt)
	scrape := func() string {
		body, _ := io.ReadAll(f.do(t, "GET", web.MetricsPath, "").Body)
		return string(body)
	}
	if got := scrape(); !strings.Contains(got, `host_state{state="starting"} 1`) {
		t.Errorf("new lifetime: want starting = 1 in\n%s", got)
	}
	lt.RequestShutdown()
	got := scrape()
	if !strings.Contains(got, `host_state{state="shutdown_requested"} 1`) || !strings.Contains(got, `host_state{state="starting"} 0`) {
		t.Errorf("after RequestShutdown: want shutdown_requested = 1 and starting = 0 in\n%s", got)
	}
}

func TestNewRegistryHasRuntimeCollectors(t *testing.T) {
	families, err := web.NewRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
}

func TestReadyHeadersForbidCaching(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	resp := f.do(t, "GET", web.ReadyPath, "")
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/plain", got)
	}
}
