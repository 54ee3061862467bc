package web_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
	"github.com/hostkit/hostkit/internal/web"
)

// traced is a router with tracing on, its recorded spans and its log.
type traced struct {
	router *chi.Mux
	spans  *tracetest.SpanRecorder
	logs   *syncBuffer
}

func newTraced(t *testing.T) *traced {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	logs := &syncBuffer{}
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(logs, nil)))
	r, err := web.NewRouter(web.RouterOptions{
		Logger: log, Registry: prometheus.NewRegistry(), Lifetime: startedLifetime(t), TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanContextFromContext(r.Context()).IsValid() {
			t.Error("handler's context has no span")
		}
		w.WriteHeader(http.StatusNoContent)
	})
	r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	return &traced{router: r, spans: spans, logs: logs}
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

func TestTraceMakesServerSpanContinuingClientTrace(t *testing.T) {
	tr := newTraced(t)
	req := httptest.NewRequest("GET", "/items/7", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	tr.router.ServeHTTP(httptest.NewRecorder(), req)

	ended := tr.spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	s := ended[0]
	if got, want := s.Name(), "GET /items/{id}"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if s.SpanKind() != trace.SpanKindServer {
		t.Errorf("kind = %v, want server", s.SpanKind())
	}
	if got := s.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id = %s, want the client's", got)
	}
	if got := s.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("parent = %s, want the client's span", got)
	}
	a := attrsOf(s)
	for k, want := range map[attribute.Key]string{
		"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": "204",
		"url.path": "/items/7", "url.scheme": "http",
	} {
		if a[k] != want {
			t.Errorf("%s = %q, want %q", k, a[k], want)
		}
	}
	if s.Status().Code == codes.Error {
		t.Error("a 204 span has status error")
	}

	// The access log line belongs to the span.
	var access map[string]any
	for _, rec := range tr.logs.records(t) {
		if rec["msg"] == "http request" {
			access = rec
		}
	}
	if access == nil {
		t.Fatal("no access log line")
	}
	if access[telemetry.TraceIDKey] != s.SpanContext().TraceID().String() || access[telemetry.SpanIDKey] != s.SpanContext().SpanID().String() {
		t.Errorf("access log %v, want trace_id/span_id %s/%s", access, s.SpanContext().TraceID(), s.SpanContext().SpanID())
	}
}

func TestTraceMarksServerErrors(t *testing.T) {
	tr := newTraced(t)
	tr.router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil))
	tr.router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/coffee", nil))
	ended := tr.spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want 2", len(ended))
	}
	if s := ended[0]; s.Status().Code != codes.Error || attrsOf(s)["http.response.status_code"] != "500" ||
		attrsOf(s)["error.type"] != "500" {
		t.Errorf("panic span: status %v, attributes %v; want error, 500", s.Status(), attrsOf(s))
	}
	// An unknown method is _OTHER (no client-minted names), and a 4xx is
	// the client's error, not the server's.
	if s := ended[1]; s.Name() != "_OTHER unmatched" || s.Status().Code == codes.Error {
		t.Errorf("unknown method span: %q status %v, want _OTHER unmatched without error", s.Name(), s.Status())
	}
}
