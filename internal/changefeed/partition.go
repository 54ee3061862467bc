package changefeed

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/telemetry"
)

// Change is one change delivered to a Handler.
type Change struct {
	// Key is the key the writer published under (changes.<key>).
	Key string
	// Partition is the partition the key hashes to.
	Partition int
	// Data is the change's payload.
	Data []byte
	// Seq is the change's sequence number in the stream.
	Seq uint64
}

// Handler processes one change. Changes of one partition reach it one at a
// time, in publication order. Returning an error retries the same change
// after Config.RetryDelay, ahead of every later change of its partition.
// ctx is cancelled when the partition's lease is lost, or when Stop runs out
// of time: the change is then redelivered to the partition's next owner.
type Handler func(ctx context.Context, c Change) error

// worker consumes one held partition.
type worker struct {
	// stopFetch ends fetching but lets the in-flight change finish (Stop).
	stopFetch context.CancelFunc
	// abort also cancels the in-flight change's context (lease lost).
	abort context.CancelFunc
	done  chan struct{}
}

// startWorker consumes partition p until stopped or aborted. prev is the
// done channel of an earlier worker of p (nil if none): the new worker
// waits for it so that one instance never fetches a partition twice.
func (pr *Processor) startWorker(base context.Context, p int, prev <-chan struct{}) *worker {
	handleCtx, abort := context.WithCancel(base)
	fetchCtx, stopFetch := context.WithCancel(handleCtx)
	w := &worker{stopFetch: stopFetch, abort: abort, done: make(chan struct{})}
	pr.workers.Go(func() {
		defer close(w.done)
		defer abort()
		if prev != nil {
			select {
			case <-prev:
			case <-fetchCtx.Done():
				return
			}
		}
		pr.consume(fetchCtx, handleCtx, p)
	})
	return w
}

// consume fetches partition p's changes one at a time. Each fetch is read to
// its end even after fetchCtx is done: a change the server delivers to a
// pull that nobody reads stays un-acked, and with MaxAckPending 1 it would
// block the partition for AckWait. Reading it and handing it back (Nak)
// lets the next owner have it at once; the price is that stopping waits up
// to FetchWait for the outstanding pull to end.
func (pr *Processor) consume(fetchCtx, handleCtx context.Context, p int) {
	cons := pr.consumers[p]
	for fetchCtx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(pr.cfg.FetchWait))
		if err == nil {
			for msg := range batch.Messages() {
				if fetchCtx.Err() != nil {
					_ = msg.Nak() // best effort: if lost, AckWait redelivers it
					continue
				}
				pr.handle(handleCtx, p, msg)
			}
			err = batch.Error()
		}
		if err != nil && fetchCtx.Err() == nil {
			pr.log.Warn("change feed fetch failed", "partition", p, "err", err)
			sleep(fetchCtx, pr.cfg.RetryDelay)
		}
	}
}

// handle runs the handler on msg and settles it: Ack on success, Nak with
// RetryDelay on failure, immediate Nak if the handler gave up because ctx
// was cancelled, so that the partition's next owner gets it without delay.
func (pr *Processor) handle(ctx context.Context, p int, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		pr.log.Error("change feed message without metadata", "partition", p, "subject", msg.Subject(), "err", err)
		return
	}
	c := Change{Key: keyOf(msg.Subject()), Partition: p, Data: msg.Data(), Seq: meta.Sequence.Stream}
	ctx, span := pr.startSpan(ctx, msg, c, int(meta.NumDelivered))
	err = pr.call(ctx, c)
	defer telemetry.EndConsume(span, err)
	switch {
	case err == nil:
		pr.metrics.countProcessed(p, resultOK)
		err = msg.Ack()
	case ctx.Err() != nil:
		pr.metrics.countProcessed(p, resultRequeued)
		err = msg.Nak()
	default:
		pr.metrics.countProcessed(p, resultRetry)
		pr.log.WarnContext(ctx, "change handler failed; retrying", "partition", p, "key", c.Key, "seq", c.Seq,
			"delivery", meta.NumDelivered, "retry_in", pr.cfg.RetryDelay, "err", err)
		err = msg.NakWithDelay(pr.cfg.RetryDelay)
	}
	if err != nil {
		// The change stays un-acked: the server redelivers it after AckWait.
		pr.log.Warn("change feed ack failed", "partition", p, "seq", c.Seq, "err", err)
	}
}

// call runs the handler, turning a panic into an error so that one bad
// change is retried instead of crashing every partition of the process.
func (pr *Processor) call(ctx context.Context, c Change) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return pr.handler(ctx, c)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
