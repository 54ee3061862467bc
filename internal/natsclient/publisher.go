package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// ErrUnavailable is wrapped into the errors of Publish when the engine cannot
// take the message now: no connection, no stream for the subject (the worker
// has not created it yet) or no acknowledgement in time. An HTTP handler
// answers 503 to it.
var ErrUnavailable = errors.New("message engine unavailable")

// ErrInvalidSubject is wrapped into the error of Publish for a subject that
// cannot be published on: empty, with wildcards, blanks or empty tokens.
var ErrInvalidSubject = errors.New("invalid subject")

// Publisher writes messages into JetStream streams and waits for them to be
// stored. It connects in the background and keeps reconnecting, so a program
// using it starts and serves its other endpoints while NATS is down. It is
// safe for concurrent use.
type Publisher struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewPublisher connects to the NATS servers at url (comma-separated). It only
// fails for a malformed URL, never because no server is reachable.
func NewPublisher(url string, log *slog.Logger) (*Publisher, error) {
	nc, err := Dial(url, "hostkit-publisher", log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Publisher{nc: nc, js: js}, nil
}

// Publish stores data on subject and returns once the stream acknowledged it,
// or with an error when ctx ends first. Errors caused by the engine's state
// wrap ErrUnavailable.
func (p *Publisher) Publish(ctx context.Context, subject string, data []byte) error {
	return p.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data})
}

// PublishMsg is Publish for a message with headers. A Nats-Msg-Id header makes
// the stream drop a repeat of the same message within its duplicate window.
// When ctx carries a span, its W3C trace context is added to the headers.
func (p *Publisher) PublishMsg(ctx context.Context, m *nats.Msg) error {
	if err := ValidSubject(m.Subject); err != nil {
		return err
	}
	if !p.nc.IsConnected() {
		return fmt.Errorf("publish %s: %w: NATS connection %s", m.Subject, ErrUnavailable, strings.ToLower(p.nc.Status().String()))
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The consumer's span continues the trace of the request that published.
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		telemetry.Inject(ctx, m.Header)
	}
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		if unavailable(err) {
			return fmt.Errorf("publish %s: %w: %w", m.Subject, ErrUnavailable, err)
		}
		return fmt.Errorf("publish %s: %w", m.Subject, err)
	}
	return nil
}

func unavailable(err error) bool {
	for _, target := range []error{
		jetstream.ErrNoStreamResponse, nats.ErrNoResponders, nats.ErrTimeout,
		context.DeadlineExceeded, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting, nats.ErrDisconnected,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// ValidSubject reports whether subject can be published on.
func ValidSubject(subject string) error {
	if subject == "" {
		return fmt.Errorf("%w: empty", ErrInvalidSubject)
	}
	if strings.ContainsAny(subject, "*> \t\r\n") {
		return fmt.Errorf("%w %q: wildcards and blanks are not allowed", ErrInvalidSubject, subject)
	}
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "" {
			return fmt.Errorf("%w %q: empty token", ErrInvalidSubject, subject)
		}
	}
	return nil
}

// Ready reports nil while the publisher is connected.
func (p *Publisher) Ready() error {
	if !p.nc.IsConnected() {
		return fmt.Errorf("%w: NATS connection %s", ErrUnavailable, strings.ToLower(p.nc.Status().String()))
	}
	return nil
}

// Start does nothing: the publisher connects when made. It lets a Publisher
// be registered as a host service so that the host closes it on shutdown.
func (p *Publisher) Start(context.Context) error { return nil }

// Stop flushes messages still in flight and closes the connection, bounded by
// ctx.
func (p *Publisher) Stop(ctx context.Context) error {
	if err := Drain(ctx, p.nc); err != nil {
		return fmt.Errorf("close publisher: %w", err)
	}
	return nil
}

// Close closes the connection at once.
func (p *Publisher) Close() { p.nc.Close() }
