package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// ErrUnavailable is wrapped into the errors of Publish when the message was
// certainly not stored and can be sent again: no connection, no stream for
// the subject (no responders: the worker has not created it yet), or the
// stream answered that it cannot store now. An HTTP handler answers 503.
var ErrUnavailable = errors.New("message engine unavailable")

// ErrOutcomeUnknown is wrapped into the errors of Publish when the message
// was sent but no acknowledgement came back in time (a server that froze, a
// leader election, a connection lost after sending): it may have been
// stored. Sending it again with the same Nats-Msg-Id within the stream's
// duplicate window stores it at most once. An HTTP handler answers 504.
var ErrOutcomeUnknown = errors.New("publish outcome unknown")

// ErrInvalidSubject is wrapped into the error of Publish for a subject that
// cannot be published on: empty, with wildcards, blanks or empty tokens.
var ErrInvalidSubject = errors.New("invalid subject")

// Ack is the stream's acknowledgement of a stored message.
type Ack struct {
	// Stream that stored the message.
	Stream string
	// Sequence of the message in Stream.
	Sequence uint64
	// Duplicate is true when the stream already held a message with the same
	// Nats-Msg-Id within its duplicate window and dropped this one.
	Duplicate bool
}

// Publisher writes messages into JetStream streams and waits for them to be
// stored. It connects in the background and keeps reconnecting, so a program
// using it starts and serves its other endpoints while NATS is down. It is
// safe for concurrent use.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *Metrics

	mu         sync.Mutex
	failing    int       // publishes failed in a row
	lastFail   error     // the last of them
	lastFailAt time.Time // and when
}

// failureMemory is how long Health keeps reporting failed publishes when
// none came since: a connection that recovered while no one published would
// otherwise read as degraded until the next request.
const failureMemory = time.Minute

// PublisherOptions tune NewPublisherWith.
type PublisherOptions struct {
	// Conn tunes the connection; zero fields take their defaults.
	Conn Options
	// Metrics, if set, receive the connection status and publish results.
	Metrics *Metrics
}

// NewPublisher connects to the NATS servers at url (comma-separated) with
// the default options. It only fails for a URL that is not a NATS URL, never
// because no server is reachable.
func NewPublisher(url string, log *slog.Logger) (*Publisher, error) {
	return NewPublisherWith(url, PublisherOptions{}, log)
}

// NewPublisherWith is NewPublisher with options.
func NewPublisherWith(url string, po PublisherOptions, log *slog.Logger) (*Publisher, error) {
	o, metrics := po.Conn, po.Metrics
	if o.Name == "" {
		o.Name = "hostkit-publisher"
	}
	nc, err := Dial(url, o, log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	p := &Publisher{nc: nc, js: js, log: log, metrics: metrics}
	metrics.watch(nc)
	return p, nil
}

// Publish stores data on subject and returns once the stream acknowledged it,
// or with an error when ctx ends first. See PublishMsg for the errors.
func (p *Publisher) Publish(ctx context.Context, subject string, data []byte) error {
	_, err := p.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data})
	return err
}

// PublishMsg stores m, headers included, and returns the stream's
// acknowledgement. A Nats-Msg-Id header makes the stream drop a repeat of
// the same message within its duplicate window (Ack.Duplicate). Errors wrap
// ErrUnavailable when m was certainly not stored, ErrOutcomeUnknown when it
// may have been, and ErrInvalidSubject for a bad subject. The caller may set
// any headers it wants to travel with the message. When ctx carries a span,
// its W3C trace context is added to the headers.
func (p *Publisher) PublishMsg(ctx context.Context, m *nats.Msg) (Ack, error) {
	if err := ValidSubject(m.Subject); err != nil {
		return Ack{}, err
	}
	if !p.nc.IsConnected() {
		err := fmt.Errorf("publish %s: %w: NATS connection %s", m.Subject, ErrUnavailable, strings.ToLower(p.nc.Status().String()))
		p.record(err)
		return Ack{}, err
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		// The consumer's span continues the trace of the request that published.
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		telemetry.Inject(ctx, m.Header)
	}
	ack, err := p.js.PublishMsg(ctx, m)
	if err != nil {
		err = classify(m.Subject, err)
		p.record(err)
		return Ack{}, err
	}
	p.record(nil)
	p.metrics.published(ack.Duplicate)
	return Ack{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// classify sorts a publish error by what the caller may conclude from it.
func classify(subject string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrInvalidConnection):
		// Nobody received it, or it never left this process.
		return fmt.Errorf("publish %s: %w: %w", subject, ErrUnavailable, err)
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		// The stream answered: it did not store the message.
		return fmt.Errorf("publish %s: %w: %w", subject, ErrUnavailable, err)
	case errors.As(err, &apiErr):
		return fmt.Errorf("publish %s: %w", subject, err)
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	// Timeouts, a cancelled context, a connection lost while waiting: the
	// message may have reached the stream.
	return fmt.Errorf("publish %s: %w: %w", subject, ErrOutcomeUnknown, err)
}

// record keeps the publish health and logs its transitions once, rather than
// a line per failed request.
func (p *Publisher) record(err error) {
	p.metrics.failed(err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		if p.failing > 0 {
			p.log.Info("publishing to NATS works again", "failed_in_a_row", p.failing)
		}
		p.failing, p.lastFail = 0, nil
		return
	}
	if p.failing == 0 {
		p.log.Warn("publishing to NATS fails", "err", err)
	}
	p.failing++
	p.lastFail, p.lastFailAt = err, time.Now()
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

// Health reports nil while the publisher is connected and its last publish,
// if any, succeeded or failed over a minute ago; otherwise why not, with how
// many publishes failed in a row.
func (p *Publisher) Health() error {
	if err := p.Ready(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing > 0 && time.Since(p.lastFailAt) < failureMemory {
		return fmt.Errorf("last %d publishes failed: %w", p.failing, p.lastFail)
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

// WaitConnected waits up to timeout for the first connection.
func (p *Publisher) WaitConnected(ctx context.Context, timeout time.Duration) error {
	return WaitConnected(ctx, p.nc, timeout)
}
