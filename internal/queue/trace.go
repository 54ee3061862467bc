package queue

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// tracerName is the instrumentation scope of the processor's spans.
const tracerName = "github.com/hostkit/hostkit/internal/queue"

// SetTracerProvider makes the handling of every job a CONSUMER span of tp,
// a child of the trace context its publisher put in the headers. Nil (the
// default) traces nothing. Call it before Start.
func (p *Processor) SetTracerProvider(tp trace.TracerProvider) {
	if p.started.Load() {
		panic("queue: SetTracerProvider called after Start")
	}
	p.tracer = nil
	if tp != nil {
		p.tracer = tp.Tracer(tracerName)
	}
}

// startSpan starts msg's span under the handlers' parent context.
func (p *Processor) startSpan(msg Message) (context.Context, trace.Span) {
	return telemetry.StartConsume(p.handlerCtx, p.tracer, msg.Header, telemetry.Delivery{
		Subject:   msg.Subject,
		Consumer:  JobsConsumer,
		Partition: -1,
		Attempt:   msg.Attempt,
		Sequence:  msg.Sequence,
		BodySize:  len(msg.Data),
	})
}
