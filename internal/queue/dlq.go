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
	// HeaderMsgID is the message's own Nats-Msg-Id (its job id), which the
	// copy cannot carry under that name: the DLQ stream would take it for
	// its own de-duplication.
	HeaderMsgID = "Dlq-Msg-Id"
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
	if id := m.Headers().Get(nats.MsgIdHdr); id != "" {
		out.Header.Set(HeaderMsgID, id)
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

// originalID strips the prefix earlier replays put before a job id.
func originalID(id string) string {
	for {
		rest, ok := strings.CutPrefix(id, "replay-")
		if !ok {
			return id
		}
		seq, after, ok := strings.Cut(rest, "-")
		if _, err := strconv.ParseUint(seq, 10, 64); !ok || err != nil {
			return id
		}
		id = after
	}
}

// DeadLetterEntry is one message of the DLQ stream.
type DeadLetterEntry struct {
	// Sequence in the DLQ stream; Replay takes it.
	Sequence uint64
	// ID is the job's Nats-Msg-Id, if it had one.
	ID string
	// Subject the job was published on.
	Subject string
	// Attempts, Error and Time are what DeadLetter recorded.
	Attempts int
	Error    string
	Time     time.Time
	// Header and Data are the message as stored in the DLQ.
	Header nats.Header
	Data   []byte
}

func entryOf(seq uint64, subject string, h nats.Header, data []byte) DeadLetterEntry {
	e := DeadLetterEntry{Sequence: seq, ID: h.Get(HeaderMsgID), Subject: h.Get(HeaderSubject),
		Error: h.Get(HeaderError), Header: h, Data: data}
	if e.Subject == "" {
		e.Subject = strings.TrimPrefix(subject, DLQPrefix)
	}
	e.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	e.Time, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderTime))
	return e
}

// ListDeadLetters calls f for every message of the DLQ stream, oldest first,
// until f returns false. It reads through an ordered consumer, which leaves
// no state on the server.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, f func(DeadLetterEntry) bool) error {
	stream, err := js.Stream(ctx, DLQStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read %s: %w", DLQStream, err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("read %s: %w", DLQStream, err)
		}
		last, got := false, 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", DLQStream, err)
			}
			if !f(entryOf(meta.Sequence.Stream, m.Subject(), m.Headers(), m.Data())) {
				return nil
			}
			last = meta.NumPending == 0 || meta.Sequence.Stream >= info.State.LastSeq
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read %s: %w", DLQStream, err)
		}
		if last || got == 0 {
			return nil
		}
	}
}

// Replay publishes the dead letter at seq in the DLQ stream back on the
// subject it came from, without the Dlq-* headers, and removes it from the
// DLQ once stored. The copy's Nats-Msg-Id is "replay-<seq>-<job id>" (the
// id without the prefix of earlier replays): a new
// job for the JOBS stream (the original id may still be inside its duplicate
// window), and a replay retried after an unknown outcome is stored once.
// check vets the subject first (a DLQ is writable by anyone who can publish
// on dlq.>, so its headers are not trusted); nil accepts subjects under jobs.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64, check func(subject string) error) (DeadLetterEntry, error) {
	stream, err := js.Stream(ctx, DLQStream)
	if err != nil {
		return DeadLetterEntry{}, fmt.Errorf("stream %s: %w", DLQStream, err)
	}
	raw, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetterEntry{}, fmt.Errorf("dead letter #%d: %w", seq, err)
	}
	e := entryOf(raw.Sequence, raw.Subject, raw.Header, raw.Data)
	if !strings.HasPrefix(e.Subject, "jobs.") {
		return e, fmt.Errorf("dead letter #%d: subject %q is not a job subject (jobs.>)", seq, e.Subject)
	}
	if check != nil {
		if err := check(e.Subject); err != nil {
			return e, fmt.Errorf("dead letter #%d: %w", seq, err)
		}
	}
	out := nats.NewMsg(e.Subject)
	out.Data = raw.Data
	for k, vs := range raw.Header {
		if !strings.HasPrefix(k, "Dlq-") && !strings.HasPrefix(k, "Nats-") {
			out.Header[k] = vs
		}
	}
	out.Header.Set(nats.MsgIdHdr, fmt.Sprintf("replay-%d-%s", seq, originalID(e.ID)))
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return e, fmt.Errorf("replay dead letter #%d on %s: %w", seq, e.Subject, err)
	}
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		return e, fmt.Errorf("replayed dead letter #%d, but could not remove it from %s: %w", seq, DLQStream, err)
	}
	return e, nil
}
