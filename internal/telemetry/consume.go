package telemetry

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Attributes the semantic conventions have no generic name for, named after
// the system-specific ones they do have (messaging.gcp_pubsub.message.delivery_attempt).
const (
	DeliveryAttemptKey = attribute.Key("messaging.nats.message.delivery_attempt")
	StreamSequenceKey  = attribute.Key("messaging.nats.message.stream_sequence")
)

// MessagingSystem is the messaging.system of the kit's spans.
const MessagingSystem = "nats"

// Delivery describes a message a consumer is about to process, for its span.
type Delivery struct {
	Subject   string // messaging.destination.name
	Consumer  string // messaging.consumer.group.name: the durable consumer
	Partition int    // messaging.destination.partition.id; negative for none
	Attempt   int    // delivery attempt, 1 for the first
	Sequence  uint64 // stream sequence
	BodySize  int
}

// MsgIDHeader is the NATS header that carries a message's id (JetStream's
// duplicate detection key), reported as messaging.message.id.
const MsgIDHeader = "Nats-Msg-Id"

// StartConsume starts the CONSUMER span of processing d, a child of the trace
// context that the publisher injected into h, if any (else a new trace).
// With a nil tracer it returns ctx and a span that does nothing.
func StartConsume(ctx context.Context, tracer trace.Tracer, h nats.Header, d Delivery) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs,
		semconv.MessagingSystemKey.String(MessagingSystem),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(d.Subject),
		semconv.MessagingConsumerGroupName(d.Consumer),
		semconv.MessagingMessageBodySize(d.BodySize),
		DeliveryAttemptKey.Int(d.Attempt),
		StreamSequenceKey.Int64(int64(d.Sequence)),
	)
	if id := HeaderCarrier(h).Get(MsgIDHeader); id != "" {
		attrs = append(attrs, semconv.MessagingMessageID(id))
	}
	if d.Partition >= 0 {
		attrs = append(attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(d.Partition)))
	}
	return tracer.Start(Extract(ctx, h), "process "+d.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// EndConsume records the handler's error, if any, on span and ends it.
func EndConsume(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
