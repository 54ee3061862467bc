// Package queue provides the worker's queue processor: competing consumers of
// the JOBS stream, a handler per subject, retries with backoff and a dead
// letter queue.
//
// Jobs are JetStream messages published on `jobs.<type>` (stream JOBS,
// work-queue retention: a job is removed once acknowledged). Every worker
// replica pulls from one shared durable consumer, `jobs-worker`, so each job
// goes to one replica at a time. Adding a job type is one function and one
// line:
//
//	q.Handle("jobs.ping", jobs.Ping)
//
// where jobs.Ping is a Handler. The processor acknowledges a job when its
// handler returns nil. When the handler returns an error the job is delivered
// again after a delay that doubles with every attempt (queue.backoff, capped at
// queue.max_backoff). After queue.max_deliver attempts, or at once for an
// error wrapped with Permanent or a subject without a handler, the job is
// copied to stream DLQ on `dlq.<subject>` with the error and the attempt count
// in headers (HeaderError, HeaderAttempts, ...) and removed from JOBS.
//
// Delivery is at least once: a worker killed after a handler finished but
// before its acknowledgement reached the server runs that job again, so
// handlers should be idempotent. A handler running longer than queue.ack_wait
// is kept alive by progress signals at most a third of it apart.
//
// A replica whose pull requests were lost (the whole cluster restarted and
// answered "no responders" before its consumer had a leader) consumes again
// within Config.StallBound of the consumer answering (9s at the defaults);
// meanwhile its readiness reports ErrStalled.
//
// The producer side, used by pingapi and `worker publish`, is
// natsclient.Publisher: it links no NATS server.
package queue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// Stream, consumer and subject names shared with deployments and tools.
const (
	// JobsStream holds the jobs until a handler succeeds.
	JobsStream = "JOBS"
	// JobsSubjects is the subject filter of JobsStream.
	JobsSubjects = "jobs.>"
	// JobsConsumer is the durable pull consumer shared by all replicas.
	JobsConsumer = "jobs-worker"
	// DLQStream keeps the jobs that failed for good, for inspection and replay.
	DLQStream = "DLQ"
	// DLQSubjects is the subject filter of DLQStream.
	DLQSubjects = "dlq.>"
	// DLQPrefix is put before a job's subject to file it in DLQStream.
	DLQPrefix = "dlq."
)

// Message is a job as a handler sees it. The processor owns acknowledging it.
type Message struct {
	// Subject the job was published on, e.g. "jobs.ping".
	Subject string
	// Data is the payload as published.
	Data []byte
	// Header carries the headers set by the publisher, if any.
	Header nats.Header
	// Attempt is 1 on the first delivery and counts up with every redelivery.
	Attempt int
	// Sequence is the job's sequence number in JobsStream; it identifies the
	// job across redeliveries.
	Sequence uint64
	// Published is when the stream stored the job.
	Published time.Time
}

// Handler runs one job. Returning nil acknowledges it; an error retries it
// later, or dead-letters it at once when wrapped with Permanent. ctx is
// cancelled when the worker gives up waiting for the handler at shutdown.
type Handler func(ctx context.Context, msg Message) error

// ErrNoHandler is recorded for jobs published on a subject without a handler.
var ErrNoHandler = errors.New("no handler registered for subject")

// ErrGaveUp is recorded for a job delivered more than queue.max_deliver times
// without a result, which happens when the worker dies while running it.
var ErrGaveUp = errors.New("delivered too often without a result")

// Permanent marks err as not worth retrying: the job goes to the DLQ at once.
// Use it for input that can never succeed, such as malformed JSON.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err or any error it wraps was made by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return "permanent: " + p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
