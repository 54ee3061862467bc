package rollout_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hostkit/hostkit/internal/rollout"
)

// countingBackend answers with its name and counts its requests.
func countingBackend(tb testing.TB, name string, status int) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, name)
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

func proxyGet(tb testing.TB, p *rollout.Proxy) (int, string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/pingpong/ping", nil))
	return rec.Code, rec.Body.String()
}

func TestProxyRoundRobin(t *testing.T) {
	a, na := countingBackend(t, "a", 200)
	b, nb := countingBackend(t, "b", 200)
	p := rollout.NewProxy()
	defer p.CloseIdleConnections()
	mustAdd(t, p, a.URL)
	mustAdd(t, p, b.URL)
	for range 10 {
		if code, _ := proxyGet(t, p); code != 200 {
			t.Fatalf("status %d, want 200", code)
		}
	}
	if na.Load() != 5 || nb.Load() != 5 {
		t.Errorf("requests a=%d b=%d, want 5 each", na.Load(), nb.Load())
	}
}

func TestProxyRemovedBackendGetsNoTraffic(t *testing.T) {
	a, na := countingBackend(t, "a", 200)
	b, _ := countingBackend(t, "b", 200)
	p := rollout.NewProxy()
	defer p.CloseIdleConnections()
	mustAdd(t, p, a.URL)
	mustAdd(t, p, b.URL)
	if err := p.Remove(a.URL); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, body := proxyGet(t, p); body != "b" {
			t.Errorf("answered by %q, want b", body)
		}
	}
	if na.Load() != 0 {
		t.Errorf("removed backend got %d requests", na.Load())
	}
	if err := p.Remove(a.URL); err == nil {
		t.Error("removing a backend twice succeeded, want an error")
	}
	if got := p.Backends(); len(got) != 1 || got[0] != b.URL {
		t.Errorf("Backends = %v, want [%s]", got, b.URL)
	}
}

// TestProxyLetsFailuresSurface: a failing backend's answer and a dead
// backend's connection error reach the client; nothing is retried on another
// backend.
func TestProxyLetsFailuresSurface(t *testing.T) {
	bad, nbad := countingBackend(t, "bad", http.StatusInternalServerError)
	good, ngood := countingBackend(t, "good", 200)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	p := rollout.NewProxy()
	defer p.CloseIdleConnections()
	mustAdd(t, p, bad.URL)
	mustAdd(t, p, dead.URL)
	mustAdd(t, p, good.URL)
	codes := map[int]int{}
	for range 6 {
		code, _ := proxyGet(t, p)
		codes[code]++
	}
	if codes[500] != 2 || codes[502] != 2 || codes[200] != 2 {
		t.Errorf("status counts = %v, want 2 each of 500, 502 and 200", codes)
	}
	if nbad.Load() != 2 || ngood.Load() != 2 {
		t.Errorf("bad got %d, good got %d requests; want 2 each (no retries)", nbad.Load(), ngood.Load())
	}
}

func TestProxyWithoutBackendsAnswers503(t *testing.T) {
	if code, _ := proxyGet(t, rollout.NewProxy()); code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
}

func TestProxyRejectsBadBackends(t *testing.T) {
	p := rollout.NewProxy()
	for _, u := range []string{"", "127.0.0.1:80", "http://"} {
		if err := p.Add(u); err == nil {
			t.Errorf("Add(%q) succeeded, want an error", u)
		}
	}
	mustAdd(t, p, "http://127.0.0.1:1")
	if err := p.Add("http://127.0.0.1:1"); err == nil {
		t.Error("adding a backend twice succeeded, want an error")
	}
}

func mustAdd(t *testing.T, p *rollout.Proxy, url string) {
	t.Helper()
	if err := p.Add(url); err != nil {
		t.Fatal(err)
	}
}
