package ping_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/web"
)

// fakePublisher records what it was asked to publish and returns err. Like
// a stream with a duplicate window, it stores a message whose Nats-Msg-Id it
// has seen only once.
type fakePublisher struct {
	mu       sync.Mutex
	err      error
	subjects []string
	messages [][]byte
	ids      []string
	seen     map[string]bool
}

func (p *fakePublisher) PublishMsg(ctx context.Context, m *nats.Msg) (natsclient.Ack, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return natsclient.Ack{}, p.err
	}
	id := m.Header.Get(nats.MsgIdHdr)
	if p.seen[id] {
		return natsclient.Ack{Duplicate: true}, nil
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[id] = true
	p.subjects = append(p.subjects, m.Subject)
	p.messages = append(p.messages, m.Data)
	p.ids = append(p.ids, id)
	return natsclient.Ack{Sequence: uint64(len(p.messages))}, nil
}

// newAPI returns the full pingapi handler: shared plumbing plus ping routes.
func newAPI(tb testing.TB, pub ping.Publisher) http.Handler {
	tb.Helper()
	r, err := web.NewRouter(web.RouterOptions{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Lifetime: host.NewLifetime(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	opts := ping.Options{MaxDelay: time.Second}
	if pub != nil {
		opts.Publisher = pub
	}
	ping.AddRoutes(r, opts)
	return r
}

func serve(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	h.ServeHTTP(rec, req)
	return rec
}

func TestPing(t *testing.T) {
	api := newAPI(t, nil)
	tests := []struct {
		name   string
		target string
		status int
		body   string // exact body for 200, a substring of the problem detail otherwise
	}{
		{"no delay", "/pingpong/ping", 200, "Pong"},
		{"zero delay", "/pingpong/ping?delay=0s", 200, "Pong"},
		{"short delay", "/pingpong/ping?delay=20ms", 200, "Pong"},
		{"other parameters ignored", "/pingpong/ping?x=1", 200, "Pong"},
		{"delay among other parameters", "/pingpong/ping?x=y&delay=1ms", 200, "Pong"},
		{"not a duration", "/pingpong/ping?delay=soon", 400, `"soon" is not a duration`},
		{"bare number", "/pingpong/ping?delay=5", 400, "is not a duration"},
		{"negative", "/pingpong/ping?delay=-1s", 400, "is negative"},
		{"above the maximum", "/pingpong/ping?delay=2s", 400, "exceeds the maximum of 1s"},
		{"repeated", "/pingpong/ping?delay=1ms&delay=2ms", 400, "at most once"},
		{"malformed query", "/pingpong/ping?delay=%zz", 400, "malformed query"},
		{"wrong method", "POST /pingpong/ping", 405, "not allowed"},
		{"unknown route", "/pingpong/pong", 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, target := "GET", tt.target
			if m, rest, ok := strings.Cut(tt.target, " "); ok {
				method, target = m, rest
			}
			rec := serve(api, method, target, "")
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				if got := rec.Body.String(); got != tt.body {
					t.Errorf("body = %q, want %q", got, tt.body)
				}
				if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", got)
				}
				return
			}
			checkProblem(t, rec, tt.status, tt.body)
		})
	}
}

func checkProblem(tb testing.TB, rec *httptest.ResponseRecorder, status int, detail string) {
	tb.Helper()
	if got := rec.Header().Get("Content-Type"); got != web.ProblemContentType {
		tb.Fatalf("Content-Type = %q, want %q", got, web.ProblemContentType)
	}
	var p web.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		tb.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != status || !strings.Contains(p.Detail, detail) {
		tb.Errorf("problem = %+v, want status %d and a detail containing %q", p, status, detail)
	}
}

func TestPingDelayWaits(t *testing.T) {
	api := newAPI(t, nil)
	began := time.Now()
	rec := serve(api, "GET", "/pingpong/ping?delay=50ms", "")
	if took := time.Since(began); rec.Code != 200 || took < 50*time.Millisecond {
		t.Errorf("status %d after %s, want 200 after at least 50ms", rec.Code, took)
	}
}

func TestPingDelayEndsWithTheRequestContext(t *testing.T) {
	api := newAPI(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/pingpong/ping?delay=1s", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		api.ServeHTTP(rec, req)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
		t.Fatal("the handler kept waiting after its request context ended")
	}
	if rec.Body.Len() != 0 {
		t.Errorf("a cancelled ping wrote %q, want nothing", rec.Body)
	}
}

func TestParseDelay(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"35s", 35 * time.Second, false},
		{"1m", time.Minute, false},
		{"600ms", 600 * time.Millisecond, false},
		{"1m0.001s", 0, true},
		{"-1ns", 0, true},
		{"5", 0, true},
		{"1h", 0, true},
		{" 1s", 0, true},
	}
	for _, tt := range tests {
		got, err := ping.ParseDelay(tt.in, time.Minute)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDelay(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzParseDelay checks that any input either parses to a delay within
// [0, max] that round-trips, or fails with a message quoting the input.
func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"", "0", "35s", "600ms", "-1s", "1h", "1.5m", "9223372036854775807ns", "5", "1e3s", "µs", "%"} {
		f.Add(s)
	}
	const max = time.Minute
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ping.ParseDelay(s, max)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDelay(%q) = %v with error %v, want 0", s, d, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Errorf("ParseDelay(%q) error %q does not quote the input", s, err)
			}
			return
		}
		if d < 0 || d > max {
			t.Fatalf("ParseDelay(%q) = %v, outside [0, %v]", s, d, max)
		}
		if again, err := ping.ParseDelay(d.String(), max); err != nil || again != d {
			t.Errorf("ParseDelay(%q) = %v, but ParseDelay(%q) = %v, %v", s, d, d.String(), again, err)
		}
	})
}
