package queue

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// process runs one job and settles it: acknowledge, retry later or
// dead-letter. keep is the calling worker's keep-alive slot.
func (p *Processor) process(m jetstream.Msg, keep *keepSlot) {
	meta, err := m.Metadata()
	if err != nil {
		// Only a message that did not come from JetStream lacks metadata.
		p.log.Error("job without JetStream metadata; terminating it", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	msg := Message{
		Subject:   m.Subject(),
		Data:      m.Data(),
		Header:    m.Headers(),
		Attempt:   int(meta.NumDelivered),
		Sequence:  meta.Sequence.Stream,
		Published: meta.Timestamp,
	}
	r, ok := p.routes[msg.Subject]
	switch {
	case !ok:
		p.deadLetter(context.Background(), m, msg, p.unhandled, 0, fmt.Errorf("%w %q", ErrNoHandler, msg.Subject))
		return
	case msg.Attempt > p.cfg.MaxDeliver:
		// The previous, last attempt never settled the job: the worker died
		// while running it. Running it again could kill the next one too.
		p.deadLetter(context.Background(), m, msg, r.count, 0, fmt.Errorf("%w: %d deliveries, queue.max_deliver = %d",
			ErrGaveUp, msg.Attempt, p.cfg.MaxDeliver))
		return
	}

	ctx, span := p.startSpan(msg)
	keep.watch(m)
	began := time.Now()
	err = p.call(ctx, r.handler, msg)
	took := time.Since(began)
	keep.release()
	p.settle(ctx, m, msg, r.count, took, err)
	telemetry.EndConsume(span, err)
}

// Outcomes logged in the "job" line.
const (
	outcomeDone         = "done"
	outcomeRetry        = "retry"
	outcomeDeadLettered = "dead-lettered"
)

// settle acknowledges, retries or dead-letters a job after its handler ran,
// and logs the job's one line. ctx carries the job's span, for the line's
// trace_id and span_id.
func (p *Processor) settle(ctx context.Context, m jetstream.Msg, msg Message, count *counters, took time.Duration, err error) {
	switch {
	case err == nil:
		// Logged before the acknowledgement: a crash in between shows up as
		// a duplicate in the logs, never as a job done but not logged. That
		// needs a log that writes through (host.Program.SyncLog), as the
		// worker's does: a batching one may still hold the line at SIGKILL.
		p.logJob(ctx, msg, took, outcomeDone, nil)
		p.ack(m, msg)
		count.ok.Inc()
	case p.handlerCtx.Err() != nil:
		// Stop gave up waiting and cancelled the handler: not the job's fault.
		p.requeue(m)
		count.requeued.Inc()
		p.logJob(ctx, msg, took, outcomeRetry, fmt.Errorf("interrupted by shutdown, handed back: %w", err))
	case IsPermanent(err) || msg.Attempt >= p.cfg.MaxDeliver:
		p.deadLetter(ctx, m, msg, count, took, err)
	default:
		delay := p.cfg.backoff(msg.Attempt)
		if nakErr := m.NakWithDelay(delay); nakErr != nil {
			p.log.Warn("schedule retry", "subject", msg.Subject, "seq", msg.Sequence, "err", nakErr)
		}
		count.retry.Inc()
		p.logJob(ctx, msg, took, outcomeRetry, err, "max_deliver", p.cfg.MaxDeliver, "retry_in", delay)
	}
}

// ack acknowledges a finished job. While the processor stops, it waits for
// the server to confirm, so that Stop returns only once every job it finished
// is recorded: a process that exits right after Stop does not leave them to
// run again. Acknowledgements are processed in order per consumer, so the
// confirmation covers the asynchronous ones sent before it too. It waits at
// most StopConfirmWait: a server that cannot be reached does not answer (the
// request waits in the connection's reconnect buffer), and the job then runs
// again after AckWait.
func (p *Processor) ack(m jetstream.Msg, msg Message) {
	var err error
	if p.isStopping() {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.StopConfirmWait)
		err = m.DoubleAck(ctx)
		cancel()
		if err != nil {
			p.unconfirmed.Add(1)
		}
	} else {
		err = m.Ack()
	}
	if err != nil {
		p.log.Warn("acknowledge job", "subject", msg.Subject, "seq", msg.Sequence, "err", err)
	}
}

// logJob writes the one line every handled job gets: msg "job" at info
// whatever the outcome (one level, so that one filter finds every job), with
// the job's message ID so that an operator can answer "did job X run?".
func (p *Processor) logJob(ctx context.Context, msg Message, took time.Duration, outcome string, err error, extra ...any) {
	const level = slog.LevelInfo
	if !p.log.Enabled(ctx, level) {
		return
	}
	attrs := append([]any{"subject", msg.Subject, "msg_id", msg.Header.Get(nats.MsgIdHdr), "seq", msg.Sequence,
		"attempt", msg.Attempt, "took", took.Round(time.Microsecond).String(), "outcome", outcome}, extra...)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	p.log.Log(ctx, level, "job", attrs...)
}

// deadLetter copies the job to the DLQ stream and removes it from JOBS. If
// the copy fails the job is retried instead, so nothing is dropped. The
// copy is made even when the processor stops, then waiting for the server at
// most StopConfirmWait (see ack); spanCtx only lends its span.
func (p *Processor) deadLetter(spanCtx context.Context, m jetstream.Msg, msg Message, count *counters, took time.Duration, cause error) {
	wait := p.cfg.AckWait
	stopping := p.isStopping()
	if stopping {
		wait = p.cfg.StopConfirmWait
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(spanCtx), wait)
	defer cancel()
	if err := DeadLetter(ctx, p.js, m, cause, msg.Attempt); err != nil {
		if stopping {
			p.unconfirmed.Add(1)
		}
		p.log.ErrorContext(ctx, "cannot move job to DLQ; will retry", "subject", msg.Subject, "seq", msg.Sequence, "err", err)
		_ = m.NakWithDelay(p.cfg.backoff(msg.Attempt))
		count.retry.Inc()
		p.logJob(ctx, msg, took, outcomeRetry, cause)
		return
	}
	if err := m.Term(); err != nil {
		p.log.Warn("terminate dead-lettered job", "subject", msg.Subject, "seq", msg.Sequence, "err", err)
	}
	count.deadLettered()
	p.logJob(ctx, msg, took, outcomeDeadLettered, cause, "dlq_subject", DLQPrefix+msg.Subject)
	p.log.ErrorContext(ctx, "job moved to DLQ", "subject", msg.Subject, "msg_id", msg.Header.Get(nats.MsgIdHdr),
		"seq", msg.Sequence, "dlq_subject", DLQPrefix+msg.Subject, "attempt", msg.Attempt, "err", cause)
}

// call runs the handler, turning a panic into an error so that one bad job
// cannot take the worker down.
func (p *Processor) call(ctx context.Context, h Handler, msg Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("job handler panicked", "subject", msg.Subject, "seq", msg.Sequence,
				"panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, msg)
}
