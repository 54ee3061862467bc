package web_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

// TestInFlightBoundShedsWith503ButNeverProbes holds max requests in a
// handler and checks the next one is shed with a problem and Retry-After,
// while probes and the scrape still answer.
func TestInFlightBoundShedsWith503ButNeverProbes(t *testing.T) {
	const max = 2
	f := newFixtureWith(t, web.RouterOptions{Lifetime: startedLifetime(t), MaxInFlight: max})
	entered, release := make(chan struct{}), make(chan struct{})
	f.router.Get("/block", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // also when the test fails early
	done := make(chan int, max)
	for range max {
		go func() { done <- f.do(t, "GET", "/block", "").StatusCode }()
		<-entered
	}

	resp := f.do(t, "GET", "/ok", "")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("request past the bound = %d, want 503", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got == "" {
		t.Error("503 past the bound has no Retry-After")
	}
	if p := decodeProblem(t, resp); p.Status != 503 {
		t.Errorf("problem status = %d, want 503", p.Status)
	}
	for _, path := range []string{web.LivePath, web.ReadyPath, web.MetricsPath} {
		if got := f.do(t, "GET", path, "").StatusCode; got != http.StatusOK {
			t.Errorf("%s at the bound = %d, want 200: probes and scrapes are never shed", path, got)
		}
	}

	free()
	for range max {
		if got := <-done; got != http.StatusOK {
			t.Errorf("held request = %d, want 200", got)
		}
	}
	if got := f.do(t, "GET", "/ok", "").StatusCode; got != http.StatusOK {
		t.Errorf("after the held requests finished = %d, want 200", got)
	}
}

// rawRequest sends a request's header and the first part of its body on a
// new connection, and returns it and a reader for the answer.
func rawRequest(tb testing.TB, addr, head, part string) (net.Conn, *bufio.Reader) {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head+part); err != nil {
		tb.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

// TestReadTimeoutEndsAStalledBody: a client that sends part of a body and
// stalls gets 408 (or a closed connection) once the read timeout passes,
// instead of holding the handler, and every shutdown, forever. It runs on a
// plain net/http server and on host.HTTPServer, whose response writer must
// let the deadline through.
func TestReadTimeoutEndsAStalledBody(t *testing.T) {
	const timeout = 200 * time.Millisecond
	lt := startedLifetime(t)
	f := newFixtureWith(t, web.RouterOptions{Lifetime: lt, ReadTimeout: timeout, MaxBodyBytes: 1 << 10})
	plain := httptest.NewServer(f.router)
	t.Cleanup(plain.Close) // after rawRequest's connections close: Close waits for their handlers
	hosted := host.NewHTTPServer("127.0.0.1:0", f.router, lt, nil)
	if err := hosted.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hosted.Stop(context.Background()) })
	for name, addr := range map[string]string{"net/http": plain.Listener.Addr().String(), "host": hosted.Addr().String()} {
		t.Run(name, func(t *testing.T) { assertStalledBodyEnds(t, addr, timeout) })
	}
}

func assertStalledBodyEnds(t *testing.T, addr string, timeout time.Duration) {
	conn, answer := rawRequest(t, addr, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", "stalls")
	began := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // the test's own bound, far past the timeout
	resp, err := http.ReadResponse(answer, nil)
	took := time.Since(began)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled body = %d, want 408", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("no answer %s after the body stalled (read timeout %s)", took, timeout)
	}
	if took < timeout/2 {
		t.Errorf("answered after %s, before the %s read timeout", took, timeout)
	}
}

// TestReadTimeoutSparesSlowHandlersAndExtendedBodies: the timeout bounds
// receiving the body, not the handler; a handler that has read its body may
// take longer, a request without a body is not bounded, and a streaming
// handler extends the deadline with http.ResponseController.
func TestReadTimeoutSparesSlowHandlersAndExtendedBodies(t *testing.T) {
	const timeout = 100 * time.Millisecond
	f := newFixtureWith(t, web.RouterOptions{Lifetime: startedLifetime(t), ReadTimeout: timeout, MaxBodyBytes: 1 << 10})
	f.router.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(4 * timeout):
			_, _ = io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})
	f.router.Post("/slow-after-body", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(4 * timeout):
			_, _ = w.Write(body)
		case <-r.Context().Done():
		}
	})
	f.router.Post("/stream", func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			web.WriteError(w, r, err)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(f.router)
	t.Cleanup(srv.Close) // after rawRequest's connections close: Close waits for their handlers

	for _, path := range []string{"/slow", "/slow-after-body"} {
		resp, err := http.Post(srv.URL+path, "text/plain", strings.NewReader("body"))
		if path == "/slow" {
			resp, err = http.Get(srv.URL + path)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s = %d %q, want 200 with a body: the read timeout must not cut a slow handler", path, resp.StatusCode, body)
		}
	}

	conn, answer := rawRequest(t, srv.Listener.Addr().String(), "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "first")
	time.Sleep(3 * timeout) // the client is slower than the default timeout, on purpose
	if _, err := io.WriteString(conn, "-last"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(answer, nil)
	if err != nil {
		t.Fatalf("extended body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "first-last" {
		t.Errorf("extended body = %d %q, want 200 \"first-last\"", resp.StatusCode, body)
	}
}

// BenchmarkRouterLimits measures what the in-flight bound and the read
// timeout add to a request through the whole router, in process (no
// network, so the difference is not lost in loopback noise):
//
//	go test -run '^$' -bench RouterLimits ./internal/web/
func BenchmarkRouterLimits(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts web.RouterOptions
	}{
		{"unbounded", web.RouterOptions{}},
		{"bounded", web.RouterOptions{ReadTimeout: web.DefaultReadTimeout, MaxInFlight: web.DefaultMaxInFlight}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.opts.Lifetime = startedLifetime(b)
			bc.opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
			bc.opts.Registry = prometheus.NewRegistry()
			r, err := web.NewRouter(bc.opts)
			if err != nil {
				b.Fatal(err)
			}
			r.Get("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/ok", nil)
				for pb.Next() {
					r.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		})
	}
}
