package changefeed

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// tracerName is the instrumentation scope of the change feed's spans.
const tracerName = "github.com/hostkit/hostkit/internal/changefeed"

// SetTracerProvider makes the handling of every change a CONSUMER span of
// tp, a child of the trace context its writer put in the headers. Nil (the
// default) traces nothing. Call it before Start.
func (pr *Processor) SetTracerProvider(tp trace.TracerProvider) {
	pr.tracer = nil
	if tp != nil {
		pr.tracer = tp.Tracer(tracerName)
	}
}

// startSpan starts the span of handling c, delivered for the attempt-th time.
func (pr *Processor) startSpan(ctx context.Context, msg jetstream.Msg, c Change, attempt int) (context.Context, trace.Span) {
	return telemetry.StartConsume(ctx, pr.tracer, msg.Headers(), telemetry.Delivery{
		Subject:   msg.Subject(),
		Consumer:  consumerName(c.Partition),
		Partition: c.Partition,
		Attempt:   attempt,
		Sequence:  c.Seq,
		BodySize:  len(c.Data),
	})
}
