package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
	"github.com/hostkit/hostkit/internal/telemetry/telemetrytest"
)

// TestOneTraceFromRequestToJob runs a real worker and a real pingapi that
// export to an in-test OTLP/HTTP receiver, posts a job, and follows it: the
// SERVER span of POST /pingpong/jobs in pingapi and the CONSUMER span of the
// job in the worker share one trace (the consumer a child of the server
// span, through the NATS headers), pingapi's access log line for the
// request carries that trace id, and the worker's job line carries the
// consumer span's ids.
func TestOneTraceFromRequestToJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes")
	}
	rcv := telemetrytest.NewReceiver(t)
	// The children inherit the environment; no other OTEL_* may leak in.
	for k, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_SCHEDULE_DELAY": "50",
		"OTEL_TRACES_EXPORTER": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "", "OTEL_SERVICE_NAME": "",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "", "OTEL_SDK_DISABLED": "",
	} {
		t.Setenv(k, v)
	}
	// The build has a budget of its own: a busy machine compiles slowly.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelBuild()
	worker, err := rollout.Build(buildCtx, t.TempDir(), "github.com/hostkit/hostkit/cmd/worker")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	natsAddr := closedPort(t)
	w, err := rollout.Start(ctx, worker, "--nats.embedded.addr="+natsAddr, "--nats.embedded.store_dir="+t.TempDir(),
		"--changefeed.instance=trace-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Kill()
		if t.Failed() {
			t.Logf("worker log:\n%s", w.Log())
		}
	})
	if err := w.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	api := start(ctx, t, "--nats.url=nats://"+natsAddr)

	var r result
	runtest.Poll(ctx, t, "the job to be accepted", func() bool {
		r = post(api.URL+"/pingpong/jobs", `{"id":"traced-1","work":"1ms"}`)
		return r.status != http.StatusServiceUnavailable
	})
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /pingpong/jobs = %d %q, want 202", r.status, r.body)
	}

	server, ok := rcv.WaitFor(ctx, func(s telemetrytest.Span) bool {
		return s.Service == "pingapi" && s.Kind == tracepb.Span_SPAN_KIND_SERVER &&
			s.Name == "POST /pingpong/jobs" && s.Attrs["http.response.status_code"] == "202"
	})
	if !ok {
		t.Fatalf("no SERVER span of the 202 POST /pingpong/jobs from pingapi; received %+v", rcv.Spans())
	}
	consumer, ok := rcv.WaitFor(ctx, func(s telemetrytest.Span) bool {
		return s.Service == "worker" && s.Kind == tracepb.Span_SPAN_KIND_CONSUMER && s.TraceID == server.TraceID
	})
	if !ok {
		t.Fatalf("no CONSUMER span from the worker in trace %s; received %+v", server.TraceID, rcv.Spans())
	}
	if consumer.ParentSpanID != server.SpanID {
		t.Errorf("consumer span's parent = %s, want the server span %s", consumer.ParentSpanID, server.SpanID)
	}
	for k, want := range map[string]string{
		"messaging.system": "nats", "messaging.destination.name": "jobs.ping",
		"messaging.operation.type": "process", "messaging.nats.message.delivery_attempt": "1",
	} {
		if got := consumer.Attrs[k]; got != want {
			t.Errorf("consumer span %s = %q, want %q", k, got, want)
		}
	}

	var logged string
	for line := range strings.Lines(api.Log()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http request" &&
			m["path"] == "/pingpong/jobs" && m["status"] == float64(http.StatusAccepted) {
			logged, _ = m["trace_id"].(string)
		}
	}
	if logged != server.TraceID {
		t.Errorf("access log line of the 202 carries trace_id %q, want %s\n%s", logged, server.TraceID, api.Log())
	}

	// The span ends after the job's line is written, and a worker's log
	// writes through: the line is in the pipe before the span is exported.
	var jobTrace, jobSpan string
	runtest.Poll(ctx, t, "the worker's job line", func() bool {
		for line := range strings.Lines(w.Log()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "job" && m["outcome"] == "done" {
				jobTrace, _ = m["trace_id"].(string)
				jobSpan, _ = m["span_id"].(string)
				return true
			}
		}
		return false
	})
	if jobTrace != consumer.TraceID || jobSpan != consumer.SpanID {
		t.Errorf("worker's job line carries trace_id/span_id %q/%q, want the consumer span's %s/%s",
			jobTrace, jobSpan, consumer.TraceID, consumer.SpanID)
	}
}
