// Package telemetry is what a hostkit binary needs to be observed beyond its
// logs and /metrics: OpenTelemetry tracing that stays off until the standard
// OTEL_* environment variables ask for it, a NATS header carrier that takes a
// trace across the queue, a slog handler that stamps every record with the
// active span's ids, and a pprof listener for the pod's own eyes.
//
// Tracing is a host service: a binary adds it before anything else, so the
// host stops it last and the spans of the final requests and jobs are
// flushed within the shutdown timeout.
package telemetry
