package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/runtest"
	"github.com/hostkit/hostkit/internal/web"
)

// logBuffer is the server's JSON log, written by its goroutines while the
// test reads it.
type logBuffer struct{ runtest.Buffer }

// records returns the JSON log records written so far.
func (b *logBuffer) records(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// fixture is a router with the shared plumbing and a few test routes.
type fixture struct {
	router *chi.Mux
	reg    *prometheus.Registry
	logs   *logBuffer
}

func newFixture(tb testing.TB, lt *host.Lifetime, checks ...web.Check) *fixture {
	tb.Helper()
	return newFixtureWith(tb, web.RouterOptions{Lifetime: lt, Checks: checks, MaxBodyBytes: 16})
}

// newFixtureWith is newFixture with the router options of the test's own
// choosing; it fills in the logger and the registry.
func newFixtureWith(tb testing.TB, opts web.RouterOptions) *fixture {
	tb.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	opts.Logger, opts.Registry = log, reg
	r, err := web.NewRouter(opts)
	if err != nil {
		tb.Fatal(err)
	}
	r.Get("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, chi.URLParam(r, "id")) })
	r.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	r.Get("/panic-after-header", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic("late boom")
	})
	r.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		_, _ = w.Write(body)
	})
	r.Get("/invalid", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, web.Invalid(errors.New("bad thing")))
	})
	return &fixture{router: r, reg: reg, logs: logs}
}

func (f *fixture) do(tb testing.TB, method, target, body string) *http.Response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rec := httptest.NewRecorder()
	f.router.ServeHTTP(rec, httptest.NewRequest(method, target, rd))
	return rec.Result()
}

// startedLifetime runs a host with no services until the test ends and
// returns its lifetime once started.
func startedLifetime(tb testing.TB) *host.Lifetime {
	tb.Helper()
	h := host.New(host.Options{Lifetime: host.NewConsoleLifetime(&host.ManualSignals{}, nil)})
	lt := h.Lifetime()
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	tb.Cleanup(func() {
		lt.StopApplication()
		if err := <-done; err != nil {
			tb.Errorf("host run: %v", err)
		}
	})
	select {
	case <-lt.Started():
	case err := <-done:
		tb.Fatalf("host stopped before starting: %v", err)
	case <-time.After(5 * time.Second):
		tb.Fatal("host did not start")
	}
	return lt
}

func decodeProblem(tb testing.TB, resp *http.Response) web.Problem {
	tb.Helper()
	if got, want := resp.Header.Get("Content-Type"), web.ProblemContentType; got != want {
		tb.Fatalf("Content-Type = %q, want %q", got, want)
	}
	var p web.Problem
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		tb.Fatalf("decode problem: %v", err)
	}
	return p
}

func TestErrorsAreProblems(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	tests := []struct {
		name, method, target, body string
		status                     int
		detail                     string // a substring of the detail
	}{
		{"unknown route", "GET", "/nope", "", 404, "no route for /nope"},
		{"wrong method", "DELETE", "/ok", "", 405, "method DELETE is not allowed on /ok"},
		{"invalid input", "GET", "/invalid", "", 400, "bad thing"},
		{"panicking handler", "GET", "/panic", "", 500, "quote the request id"},
		{"oversized body", "POST", "/echo", strings.Repeat("x", 17), 413, "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.do(t, tt.method, tt.target, tt.body)
			if got := resp.StatusCode; got != tt.status {
				t.Fatalf("status = %d, want %d", got, tt.status)
			}
			p := decodeProblem(t, resp)
			if p.Status != tt.status || p.Title != http.StatusText(tt.status) || p.Type != "about:blank" {
				t.Errorf("problem = %+v, want status %d, title %q, type about:blank", p, tt.status, http.StatusText(tt.status))
			}
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail = %q, want it to contain %q", p.Detail, tt.detail)
			}
			if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
				t.Errorf("request_id = %q, X-Request-Id = %q: want the same, not empty", p.RequestID, resp.Header.Get("X-Request-Id"))
			}
		})
	}
}

func TestMethodNotAllowedListsAllowedMethods(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	resp := f.do(t, "PUT", "/echo", "")
	if got, want := resp.Header.Values("Allow"), []string{"POST"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Allow = %v, want %v", got, want)
	}
}

func TestBodyWithinLimitPasses(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	resp := f.do(t, "POST", "/echo", strings.Repeat("x", 16))
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) != 16 {
		t.Errorf("status %d, body %d bytes; want 200 and the 16 bytes back", resp.StatusCode, len(body))
	}
}

func TestPanicIsLoggedAsJSONAndServingGoesOn(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	srv := httptest.NewServer(f.router)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("panic: status %d, want 500", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after panic: status %d, want 200", resp.StatusCode)
	}

	var found bool
	for _, rec := range f.logs.records(t) {
		if rec["msg"] == "handler panicked" {
			found = true
			if rec["level"] != "ERROR" || rec["panic"] != "boom" || !strings.Contains(fmt.Sprint(rec["stack"]), "web_test") {
				t.Errorf("panic record = %v, want level ERROR, panic boom and a stack through the handler", rec)
			}
		}
	}
	if !found {
		t.Error("no \"handler panicked\" record in the log")
	}
}

func TestPanicAfterHeaderAbortsResponse(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	srv := httptest.NewServer(f.router)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/panic-after-header")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a response whose handler panicked after its header was sent read as complete; want it aborted")
	}
}

func TestAccessLogCarriesRequestID(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	req := httptest.NewRequest("GET", "/items/42", nil)
	req.Header.Set("X-Request-Id", "client-chosen-id")
	rec := httptest.NewRecorder()
	f.router.ServeHTTP(rec, req)

	if got, want := rec.Header().Get("X-Request-Id"), "client-chosen-id"; got != want {
		t.Errorf("X-Request-Id = %q, want %q", got, want)
	}
	recs := f.logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("log records = %d, want 1: %v", len(recs), recs)
	}
	want := map[string]any{
		"msg": "http request", "level": "INFO", "request_id": "client-chosen-id",
		"method": "GET", "path": "/items/42", "status": float64(200),
	}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("access log %s = %v, want %v", k, recs[0][k], v)
		}
	}
}

func TestAccessLogProbesAtDebug(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	f.do(t, "GET", web.LivePath, "")
	recs := f.logs.records(t)
	if len(recs) != 1 || recs[0]["level"] != "DEBUG" {
		t.Errorf("probe access log = %v, want one DEBUG record", recs)
	}
}

func TestNewRouterRejectsMissingDependencies(t *testing.T) {
	if _, err := web.NewRouter(web.RouterOptions{}); err == nil {
		t.Error("NewRouter with no logger, registry or lifetime succeeded; want an error")
	}
}

func TestNewRouterTwiceOnOneRegistryFails(t *testing.T) {
	opts := web.RouterOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Lifetime: host.NewLifetime()}
	if _, err := web.NewRouter(opts); err != nil {
		t.Fatal(err)
	}
	if _, err := web.NewRouter(opts); err == nil {
		t.Error("second router on the same registry succeeded; want a duplicate registration error")
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"invalid", web.Invalid(errors.New("x")), 400},
		{"wrapped invalid", fmt.Errorf("parse: %w", web.Invalid(errors.New("x"))), 400},
		{"unavailable", web.Unavailable(errors.New("x")), 503},
		{"not found", web.ErrNotFound, 404},
		{"method", web.ErrMethodNotAllowed, 405},
		{"body too large", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 1}), 413},
		{"body too slow, called invalid", web.Invalid(fmt.Errorf("read: %w", web.ErrRequestTimeout)), 408},
		{"anything else", errors.New("disk on fire"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := web.StatusOf(tt.err); got != tt.want {
				t.Errorf("StatusOf(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestInvalidKeepsMessage(t *testing.T) {
	err := web.Invalid(errors.New("delay must not be negative"))
	if got, want := err.Error(), "delay must not be negative"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestWriteErrorHidesServerFaults(t *testing.T) {
	rec := httptest.NewRecorder()
	web.WriteError(rec, httptest.NewRequest("GET", "/x", nil), errors.New("password=hunter2"))
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("500 problem leaks the cause: %s", rec.Body)
	}
}

func TestRequestIDReplacesUnsafeClientIDs(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"none", "", false},
		{"printable", "abc-123_x.y", true},
		{"with a space", "abc 123", false},
		{"with a newline", "abc\n123", false},
		{"too long", strings.Repeat("x", 129), false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/ok", nil)
			if tt.sent != "" {
				req.Header["X-Request-Id"] = []string{tt.sent}
			}
			rec := httptest.NewRecorder()
			f.router.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-Id")
			if tt.kept && got != tt.sent {
				t.Errorf("X-Request-Id = %q, want the client's %q", got, tt.sent)
			}
			if !tt.kept && (got == "" || got == tt.sent || seen[got]) {
				t.Errorf("X-Request-Id = %q, want a fresh id of our own", got)
			}
			seen[got] = true
		})
	}
}

func TestAccessLogUnreadyProbeAtDebug(t *testing.T) {
	f := newFixture(t, host.NewLifetime()) // not started: readiness answers 503
	f.do(t, "GET", web.ReadyPath, "")
	recs := f.logs.records(t)
	if len(recs) != 1 || recs[0]["level"] != "DEBUG" || recs[0]["status"] != float64(503) {
		t.Errorf("unready probe access log = %v, want one DEBUG record with status 503", recs)
	}
}

func TestHeadAnswersLikeGetWithoutBody(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	srv := httptest.NewServer(f.router) // a real server: it drops HEAD bodies, a recorder does not
	defer srv.Close()
	for path, want := range map[string]int{web.LivePath: 200, "/echo": 405} {
		resp, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("HEAD %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}
