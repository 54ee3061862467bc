package rollout_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/rollout"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"max", ms(1, 5, 9), 100, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rollout.Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestLoadCountsFailuresByReason(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			http.Error(w, "nope", http.StatusBadGateway)
		case 1:
			_, _ = io.WriteString(w, "Ping")
		default:
			_, _ = io.WriteString(w, "Pong")
		}
	}))
	defer srv.Close()

	rep, err := rollout.Load(context.Background(), rollout.LoadOptions{
		URL: srv.URL, WantBody: "Pong", Rate: 1000, MaxRequests: 40,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 40 || rep.Failed != 20 {
		t.Fatalf("sent %d, failed %d; want 40 and 20\n%s", rep.Sent, rep.Failed, rep)
	}
	if rep.Failures["status 502"] != 10 || rep.Failures[`body "Ping", want "Pong"`] != 10 {
		t.Errorf("failures = %v, want 10 by status 502 and 10 by wrong body", rep.Failures)
	}
	if rep.P50 <= 0 || rep.P50 > rep.P90 || rep.P90 > rep.P99 || rep.P99 > rep.Max {
		t.Errorf("percentiles out of order: %s", rep)
	}
}

func TestLoadReportsConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	rep, err := rollout.Load(context.Background(), rollout.LoadOptions{URL: url, Rate: 1000, MaxRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failures["connection refused"] != 5 {
		t.Errorf("failures = %v, want 5 × connection refused", rep.Failures)
	}
}

func TestLoadPostsBody(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	rep, err := rollout.Load(context.Background(), rollout.LoadOptions{
		URL: srv.URL, Method: "POST", Body: []byte(`{"work":"1ms"}`), Rate: 1000, MaxRequests: 3,
	})
	if err != nil || rep.Failed != 0 {
		t.Fatalf("load: %v\n%s", err, rep)
	}
	for _, g := range got {
		if g != `POST application/json {"work":"1ms"}` {
			t.Errorf("server got %q, want a JSON POST", g)
		}
	}
}

// TestLoadStopsAtContextButFinishesInFlight: stopping the load sends no more
// requests, and requests already sent complete rather than fail.
func TestLoadStopsAtContextButFinishesInFlight(t *testing.T) {
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "Pong")
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan rollout.Report, 1)
	go func() {
		rep, _ := rollout.Load(ctx, rollout.LoadOptions{URL: srv.URL, Rate: 1000})
		done <- rep
	}()
	<-arrived
	cancel()
	close(release)
	select {
	case rep := <-done:
		if rep.Sent == 0 || rep.Failed != 0 {
			t.Errorf("report %s; want the requests in flight finished, none failed", rep)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load did not return after its context ended")
	}
}

func TestLoadRejectsBadOptions(t *testing.T) {
	for _, opts := range []rollout.LoadOptions{
		{URL: "not a url"},
		{URL: "http://127.0.0.1:1/", Method: "DELETE"},
	} {
		if _, err := rollout.Load(context.Background(), opts); err == nil {
			t.Errorf("Load(%+v) succeeded, want an error", opts)
		}
	}
}

func TestReportString(t *testing.T) {
	rep := rollout.Report{Sent: 10, Failed: 2, Failures: map[string]int{"status 502": 2}, P50: time.Millisecond, Max: 3 * time.Millisecond}
	got := rep.String()
	for _, want := range []string{"sent=10", "failed=2", "p50=1ms", "max=3ms", "2× status 502"} {
		if !strings.Contains(got, want) {
			t.Errorf("report %q lacks %q", got, want)
		}
	}
}
