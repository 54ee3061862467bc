package telemetry_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
	"github.com/hostkit/hostkit/internal/telemetry/telemetrytest"
)

// setEnv clears every OTEL_* variable the tests touch, then sets vars, so
// the machine's own environment cannot change the outcome.
func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, k := range []string{
		"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED",
		"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_EXPORT_TIMEOUT",
	} {
		t.Setenv(k, vars[k])
	}
}

func TestTracingOffUntilAskedFor(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		enabled  bool
		exporter string
	}{
		{"nothing set", nil, false, "none"},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, false, "none"},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, false, "none"},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true, "console"},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, true, "otlp"},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, true, "otlp"},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, "otlp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			tr, err := telemetry.NewTracing(context.Background(), "prog")
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Stop(context.Background())
			if got := tr.Enabled(); got != tt.enabled {
				t.Errorf("Enabled = %v, want %v", got, tt.enabled)
			}
			if got := tr.Exporter(); got != tt.exporter {
				t.Errorf("Exporter = %q, want %q", got, tt.exporter)
			}
			if got := tr.TracerProvider() != nil; got != tt.enabled {
				t.Errorf("TracerProvider set = %v, want %v", got, tt.enabled)
			}
		})
	}
}

func TestTracingRejectsUnknownExporter(t *testing.T) {
	setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "zipkin-over-carrier-pigeon"})
	if _, err := telemetry.NewTracing(context.Background(), "prog"); err == nil {
		t.Fatal("NewTracing accepted an unknown exporter")
	}
}

// span makes one span named name on tr's provider.
func span(tr *telemetry.Tracing, name string) trace.SpanContext {
	_, s := tr.TracerProvider().Tracer("test").Start(context.Background(), name)
	s.End()
	return s.SpanContext()
}

// TestStopFlushesBufferedSpans sets the batch delay far beyond the test, so
// only Stop can export the span: it proves both that OTEL_BSP_* is honoured
// and that stopping the service flushes.
func TestStopFlushesBufferedSpans(t *testing.T) {
	rcv := telemetrytest.NewReceiver(t)
	setEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_BSP_SCHEDULE_DELAY": "3600000"})
	tr, err := telemetry.NewTracing(context.Background(), "prog")
	if err != nil {
		t.Fatal(err)
	}
	sc := span(tr, "buffered")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, ok := rcv.WaitFor(short, func(telemetrytest.Span) bool { return true }); ok {
		t.Fatal("a span was exported before Stop despite OTEL_BSP_SCHEDULE_DELAY of an hour")
	}
	if err := tr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := rcv.Spans()
	if len(got) != 1 || got[0].Name != "buffered" || got[0].TraceID != sc.TraceID().String() {
		t.Fatalf("received %+v after Stop, want the one buffered span", got)
	}
}

func TestServiceNameDefaultsToProgram(t *testing.T) {
	tests := []struct{ name, env, want string }{
		{"default", "", "prog"},
		{"OTEL_SERVICE_NAME", "checkout", "checkout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := telemetrytest.NewReceiver(t)
			setEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_SERVICE_NAME": tt.env})
			tr, err := telemetry.NewTracing(context.Background(), "prog")
			if err != nil {
				t.Fatal(err)
			}
			span(tr, "s")
			if err := tr.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := rcv.Spans(); len(got) != 1 || got[0].Service != tt.want {
				t.Fatalf("received %+v, want one span of service %q", got, tt.want)
			}
		})
	}
}

func TestSamplerFromEnvironment(t *testing.T) {
	rcv := telemetrytest.NewReceiver(t)
	setEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_TRACES_SAMPLER": "always_off"})
	tr, err := telemetry.NewTracing(context.Background(), "prog")
	if err != nil {
		t.Fatal(err)
	}
	if sc := span(tr, "dropped"); sc.IsSampled() {
		t.Error("span sampled under OTEL_TRACES_SAMPLER=always_off")
	}
	if err := tr.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rcv.Spans(); len(got) != 0 {
		t.Fatalf("received %+v under always_off, want nothing", got)
	}
}
