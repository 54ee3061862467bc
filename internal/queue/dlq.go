package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers set on a dead letter, next to the original message's own headers.
const (
	// HeaderError is the error of the last attempt.
	HeaderError = "Dlq-Error"
	// HeaderAttempts is how many times the message was delivered.
	HeaderAttempts = "Dlq-Attempts"
	// HeaderSubject is the subject the message was published on.
	HeaderSubject = "Dlq-Subject"
	// HeaderStream is the stream the message came from.
	HeaderStream = "Dlq-Stream"
	// HeaderSequence is the message's sequence number in that stream.
	HeaderSequence = "Dlq-Sequence"
	// HeaderTime is when it was dead-lettered, in RFC 3339 format.
	HeaderTime = "Dlq-Time"
)

// maxErrorHeader bounds the error text kept in a header; headers count
// against the server's maximum message size.
const maxErrorHeader = 1024

// DeadLetter copies m to DLQPrefix+subject in the DLQ stream with cause and
// attempts recorded in headers, and waits for the stream to store it. It does
// not acknowledge or terminate m: the caller does that once DeadLetter
// succeeded, so that a failure here leaves m to be delivered again.
func DeadLetter(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, cause error, attempts int) error {
	meta, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", m.Subject(), err)
	}
	out := nats.NewMsg(DLQPrefix + m.Subject())
	out.Data = m.Data()
	for k, vs := range m.Headers() {
		// Nats-* headers steer the server (expected sequence, message ID...)
		// and would make the copy fail or be dropped as a duplicate.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = vs
	}
	out.Header.Set(HeaderError, headerValue(cause.Error()))
	out.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	out.Header.Set(HeaderSubject, m.Subject())
	out.Header.Set(HeaderStream, meta.Stream)
	out.Header.Set(HeaderSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	out.Header.Set(HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	msgID := fmt.Sprintf("%s-%d", meta.Stream, meta.Sequence.Stream)
	if _, err := js.PublishMsg(ctx, out, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("dead-letter %s #%d: %w", m.Subject(), meta.Sequence.Stream, err)
	}
	return nil
}

// headerValue makes s fit in a header: one line, bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorHeader {
		s = strings.ToValidUTF8(s[:maxErrorHeader], "") + "…"
	}
	return s
}
