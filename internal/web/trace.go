package web

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the spans Trace makes.
const tracerName = "github.com/hostkit/hostkit/internal/web"

// Trace returns middleware that makes every request a SERVER span of tp,
// named and attributed by OpenTelemetry's HTTP semantic conventions, as the
// child of the W3C trace context the client sent, if any. The span is in the
// request's context, so handlers' spans and log lines (the access log's too,
// when this runs outside it) belong to it. It shares the observing wrapper
// with AccessLog and Metrics: one clock read and one route lookup for all.
func Trace(tp trace.TracerProvider) func(http.Handler) http.Handler {
	tracer := tp.Tracer(tracerName)
	prop := propagation.TraceContext{}
	// Made once: each option is an allocation per request otherwise.
	server := trace.WithSpanKind(trace.SpanKindServer)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o := observe(w, r)
			method := methodName(methodIndex(r.Method))
			ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, method, server,
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String(method),
					semconv.URLPath(r.URL.Path),
					semconv.URLScheme(scheme(r)),
					semconv.NetworkProtocolVersion(protocolVersion(r)),
					semconv.UserAgentOriginal(r.UserAgent()),
				))
			defer span.End()
			next.ServeHTTP(o, r.WithContext(ctx))

			route, status := o.routePattern(), o.finalStatus()
			span.SetName(method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
			if status >= 500 {
				// Server spans fail on 5xx only: a 4xx is the client's error.
				span.SetStatus(codes.Error, "")
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			}
		})
	}
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "1.1"
	case r.ProtoMajor == 2:
		return "2"
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
}
