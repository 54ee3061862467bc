package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

// scrape returns the router's own /metrics page.
func (f *fixture) scrape(tb testing.TB) string {
	tb.Helper()
	body, _ := io.ReadAll(f.do(tb, "GET", web.MetricsPath, "").Body)
	return string(body)
}

// waitMetrics polls /metrics until it holds every line of want, or fails:
// a request's metrics are recorded when its handler returns, which may be
// just after the client saw the connection end.
func (f *fixture) waitMetrics(tb testing.TB, want ...string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, missing := f.scrape(tb), ""
		for _, w := range want {
			if !strings.Contains(page, w+"\n") {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("metrics lack %s:\n%s", missing, page)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// accessRecord polls the log until it holds the access-log record for
// path and returns it, or nil after a deadline: the access log is the
// outermost middleware, so its line is written after the metrics (inner)
// have recorded the request, and a test that saw the metrics may still be
// ahead of the line.
func (f *fixture) accessRecord(tb testing.TB, path string) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, rec := range f.logs.records(tb) {
			if rec["msg"] == "http request" && rec["path"] == path {
				return rec
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRequestsCutByShutdownTimeoutAreRecordedAsCut: a request still running
// when the shutdown timeout passes is cut off. Before, a handler that
// returned on the cancelled context counted as 499 (the client's fault) and
// an upload whose body read failed as 400.
func TestRequestsCutByShutdownTimeoutAreRecordedAsCut(t *testing.T) {
	lt := host.NewLifetime()
	f := newFixture(t, lt)
	entered := make(chan string, 2)
	f.router.Get("/wait", func(w http.ResponseWriter, r *http.Request) {
		entered <- "wait"
		<-r.Context().Done() // as a slow ping does: returns without writing
	})
	f.router.Post("/upload", func(w http.ResponseWriter, r *http.Request) {
		entered <- "upload"
		if _, err := io.ReadAll(r.Body); err != nil {
			web.WriteError(w, r, web.Invalid(err))
		}
	})
	srv := host.NewHTTPServer("127.0.0.1:0", f.router, lt, nil)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{
		"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part",
	} {
		conn, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach their handlers")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); err == nil {
		t.Fatal("Stop = nil, want the shutdown timeout's error")
	}
	f.waitMetrics(t,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="shutdown_timeout",http_route="/wait"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="shutdown_timeout",http_route="/upload"} 1`)
	for _, path := range []string{"/wait", "/upload"} {
		rec := f.accessRecord(t, path)
		if rec == nil || rec["fault"] != "shutdown_timeout" || rec["level"] != "ERROR" || rec["status"] != float64(0) {
			t.Errorf("access log of %s = %v, want level ERROR, fault shutdown_timeout and status 0", path, rec)
		}
	}
}

// TestPanicAfterHeaderIsCounted: the abort re-panics through the metrics and
// the access log; they must record the request on the way.
func TestPanicAfterHeaderIsCounted(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	srv := httptest.NewServer(f.router)
	defer srv.Close()
	if resp, err := http.Get(srv.URL + "/panic-after-header"); err == nil {
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	f.waitMetrics(t, `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="panic",http_route="/panic-after-header"} 1`)
	if rec := f.accessRecord(t, "/panic-after-header"); rec == nil || rec["fault"] != "panic" || rec["level"] != "ERROR" {
		t.Errorf("access log = %v, want level ERROR and fault panic", rec)
	}
}
