package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
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
	logs   *logBuffer
}

func newTraced(t *testing.T) *traced {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	logs := &logBuffer{}
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
		m[kv.Key] = kv.Value.String()
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

// BenchmarkTraceCost breaks down what tracing adds to a request through the
// router in process (no network), so that the end-to-end ratio `make
// bench-http` prints can be read: "off" is the router without a tracer
// provider; "spans" makes and ends the SERVER span with no processor;
// "batched" hands it to the SDK's batch processor with an exporter that
// drops the batches; "otlp" exports them over OTLP/HTTP to a local receiver,
// as the binaries do. Run it on one CPU, as the HTTP benchmark pins the
// server to one core:
//
//	go test -run '^$' -bench TraceCost -cpu 1 -benchtime 200000x ./internal/web
func BenchmarkTraceCost(b *testing.B) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer rcv.Close()
	for _, tc := range []struct {
		name string
		tp   func(b *testing.B) trace.TracerProvider
	}{
		{"off", func(*testing.B) trace.TracerProvider { return nil }},
		{"spans", func(*testing.B) trace.TracerProvider { return sdktrace.NewTracerProvider() }},
		{"batched", func(*testing.B) trace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropExporter{}))
		}},
		{"otlp", func(b *testing.B) trace.TracerProvider {
			exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(rcv.URL+"/v1/traces"))
			if err != nil {
				b.Fatal(err)
			}
			return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tp := tc.tp(b)
			if sdk, ok := tp.(*sdktrace.TracerProvider); ok {
				defer func() { _ = sdk.Shutdown(context.Background()) }()
			}
			r, err := web.NewRouter(web.RouterOptions{
				Logger:   slog.New(telemetry.LogHandler(slog.NewJSONHandler(io.Discard, nil))),
				Registry: prometheus.NewRegistry(), Lifetime: startedLifetime(b), TracerProvider: tp,
			})
			if err != nil {
				b.Fatal(err)
			}
			r.Get("/pingpong/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "Pong") })
			req := httptest.NewRequest("GET", "/pingpong/ping", nil)
			b.ReportAllocs()
			for b.Loop() {
				r.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// dropExporter takes batches and drops them.
type dropExporter struct{}

func (dropExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropExporter) Shutdown(context.Context) error                             { return nil }
