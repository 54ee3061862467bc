package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// While NATS is down pingapi stays ready (pings work), but its readiness
// body names NATS as degraded, its metrics show the connection state and
// the failed publishes, and it logs the failure once, not once per POST.
func TestNATSDownShowsInReadinessMetricsAndLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a pingapi process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst := start(ctx, t, "--nats.url=nats://"+closedPort(t))
	for range 3 {
		if r := post(inst.URL+"/pingpong/jobs", `{"work":"5ms"}`); r.status != http.StatusServiceUnavailable {
			t.Fatalf("POST /pingpong/jobs without NATS = %d %q, want 503", r.status, r.body)
		}
	}
	r := get(inst.URL + "/healthz/ready")
	if r.status != 200 || !strings.Contains(r.body, "degraded: nats:") {
		t.Errorf("ready without NATS = %d %q, want 200 naming nats as degraded", r.status, r.body)
	}
	m := get(inst.URL + "/metrics")
	for _, want := range []string{
		`nats_connection_status{status="RECONNECTING"} 1`,
		`nats_publish_total{result="unavailable"} 3`,
	} {
		if !strings.Contains(m.body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The log reaches the test through a pipe, after the answers: wait for
	// the line (bounded by ctx), then check it stands there once.
	failures := func() int { return strings.Count(inst.Log(), `"msg":"publishing to NATS fails"`) }
	for failures() == 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := failures(); n != 1 {
		t.Errorf("logged the publish failure %d times, want once", n)
	}
}
