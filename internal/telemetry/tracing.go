package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The environment variables that turn tracing on. The OpenTelemetry SDK's
// default exporter is OTLP to localhost: choosing it without any of these set
// would make every binary dial out, so tracing stays off unless one is set.
var activating = []string{
	"OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
}

// Tracing is the tracer provider of a binary, as a host service whose Stop
// flushes the spans still buffered and shuts the exporter down.
type Tracing struct {
	sdk      *sdktrace.TracerProvider // nil while tracing is off
	exporter string
}

// NewTracing builds the tracer provider from the OpenTelemetry SDK's standard
// environment variables, read from the process environment as the SDK
// itself reads them: OTEL_TRACES_EXPORTER (otlp, console, none),
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and _PROTOCOL (http/protobuf or grpc),
// OTEL_SERVICE_NAME (default service), OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER[_ARG] and OTEL_BSP_*. With none of OTEL_TRACES_EXPORTER
// and the OTLP endpoints set, with OTEL_TRACES_EXPORTER=none or with
// OTEL_SDK_DISABLED=true, tracing is off: the provider is a no-op, nothing is
// exported and nothing dials out.
func NewTracing(ctx context.Context, service string) (*Tracing, error) {
	if !wanted() {
		return &Tracing{exporter: "none"}, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return &Tracing{exporter: "none"}, nil
	}
	// Later sources win: the program's name is the default service name,
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	// No sampler option: the SDK reads OTEL_TRACES_SAMPLER itself, and the
	// batch processor OTEL_BSP_*.
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
	return &Tracing{sdk: sdk, exporter: exporterName()}, nil
}

func wanted() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	for _, k := range activating {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

func exporterName() string {
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e
	}
	return "otlp"
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Exporter names the exporter in use ("otlp", "console"), or "none".
func (t *Tracing) Exporter() string { return t.exporter }

// TracerProvider returns the provider to hand to what creates spans, or nil
// while tracing is off: the kit's instrumentation then steps aside entirely
// rather than make no-op spans on every request.
func (t *Tracing) TracerProvider() trace.TracerProvider {
	if t.sdk == nil {
		return nil
	}
	return t.sdk
}

// Start does nothing: the provider works from construction, so that spans
// of services starting after it are kept.
func (t *Tracing) Start(context.Context) error { return nil }

// Stop exports the spans still buffered and shuts the exporter down,
// bounded by ctx: the host's shutdown timeout.
func (t *Tracing) Stop(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush spans: %w", err)
	}
	return nil
}
