package telemetry_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// remote is a sampled span context as a publisher would have it.
func remote(tb testing.TB) trace.SpanContext {
	tb.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		tb.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts,
	})
}

func TestInjectWritesW3CHeaders(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), remote(t))
	h := nats.Header{}
	telemetry.Inject(ctx, h)
	if got, want := h.Get("traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	if got, want := h.Get("tracestate"), "vendor=value"; got != want {
		t.Errorf("tracestate = %q, want %q", got, want)
	}
}

func TestExtractRoundTripsThroughMessageHeaders(t *testing.T) {
	want := remote(t)
	h := nats.Header{"Nats-Msg-Id": {"job-1"}}
	telemetry.Inject(trace.ContextWithSpanContext(context.Background(), want), h)

	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h))
	if !got.IsRemote() || got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() ||
		got.TraceFlags() != want.TraceFlags() || got.TraceState().String() != want.TraceState().String() {
		t.Fatalf("extracted %+v, want remote %+v", got, want)
	}
	if got := h.Get("Nats-Msg-Id"); got != "job-1" {
		t.Errorf("Nats-Msg-Id = %q after inject, want it kept", got)
	}
}

func TestExtractWithoutContext(t *testing.T) {
	for name, h := range map[string]nats.Header{
		"nil":       nil,
		"no trace":  {"Nats-Msg-Id": {"x"}},
		"malformed": {"traceparent": {"00-zz-00f067aa0ba902b7-01"}},
	} {
		t.Run(name, func(t *testing.T) {
			if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h)); sc.IsValid() {
				t.Errorf("extracted %+v from %v, want none", sc, h)
			}
		})
	}
}

func TestHeaderCarrier(t *testing.T) {
	c := telemetry.HeaderCarrier(nats.Header{"a": {"1", "2"}})
	c.Set("b", "x")
	c.Set("b", "y")
	tests := []struct{ key, want string }{{"a", "1"}, {"b", "y"}, {"missing", ""}, {"A", ""}}
	for _, tt := range tests {
		if got := c.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	keys := c.Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b"}) {
		t.Errorf("Keys = %v, want [a b]", keys)
	}
}
