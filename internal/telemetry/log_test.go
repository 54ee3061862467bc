package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

func logLine(tb testing.TB, ctx context.Context, attrs int) map[string]any {
	tb.Helper()
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("app", "test")
	args := []any{}
	for i := range attrs {
		args = append(args, slog.Int(string(rune('a'+i)), i))
	}
	log.InfoContext(ctx, "hello", args...)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		tb.Fatalf("%v: %s", err, buf.Bytes())
	}
	return rec
}

func TestLogHandlerAddsSpanIDs(t *testing.T) {
	ctx := trace.ContextWithSpanContext(context.Background(), remote(t))
	// Five attributes fill a record's inline storage; seven spill over.
	for _, n := range []int{0, 5, 7} {
		rec := logLine(t, ctx, n)
		if got, want := rec[telemetry.TraceIDKey], "4bf92f3577b34da6a3ce929d0e0e4736"; got != want {
			t.Errorf("%d attrs: trace_id = %v, want %v", n, got, want)
		}
		if got, want := rec[telemetry.SpanIDKey], "00f067aa0ba902b7"; got != want {
			t.Errorf("%d attrs: span_id = %v, want %v", n, got, want)
		}
		if rec["app"] != "test" || len(rec) != 6+n {
			t.Errorf("%d attrs: record %v lost or gained fields", n, rec)
		}
	}
}

func TestLogHandlerLeavesRecordsWithoutSpan(t *testing.T) {
	rec := logLine(t, context.Background(), 1)
	if _, ok := rec[telemetry.TraceIDKey]; ok {
		t.Errorf("record without a span got trace_id: %v", rec)
	}
	if _, ok := rec[telemetry.SpanIDKey]; ok {
		t.Errorf("record without a span got span_id: %v", rec)
	}
}
