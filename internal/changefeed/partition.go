package changefeed

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	// FencingToken is the revision of the partition's lease this instance
	// holds. Each new owner of a partition holds a larger one, so a sink
	// that remembers the largest token it has accepted per partition (or per
	// key) and refuses smaller ones cannot be written by a stale owner that
	// lost its lease while paused (see docs/extending.md).
	FencingToken uint64
}

// Handler processes one change. Changes of one partition reach it one at a
// time, in publication order, and only while this instance holds the
// partition's lease with time to spare. Returning an error retries the same
// change after Config.RetryDelay, ahead of every later change of its
// partition. ctx is cancelled when the partition's lease is lost, or when
// Stop runs out of time: the change is then redelivered to the partition's
// next owner.
type Handler func(ctx context.Context, c Change) error

// worker consumes one held partition.
type worker struct {
	// stopFetch ends fetching but lets the in-flight change finish (Stop).
	stopFetch context.CancelFunc
	// abort also cancels the in-flight change's context (lease lost).
	abort context.CancelFunc
	done  chan struct{}
}

// startWorker consumes l's partition until stopped or aborted. prev is the
// done channel of an earlier worker of the partition (nil if none): the new
// worker waits for it so that one instance never fetches a partition twice.
func (pr *Processor) startWorker(l *lease, prev <-chan struct{}) *worker {
	handleCtx, abort := context.WithCancel(pr.base)
	fetchCtx, stopFetch := context.WithCancel(handleCtx)
	w := &worker{stopFetch: stopFetch, abort: abort, done: make(chan struct{})}
	l.w = w
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
		pr.consume(fetchCtx, handleCtx, l)
	})
	return w
}

// consume fetches the partition's changes one at a time. A pull is only
// sent while the lease is usable for longer than the pull may wait, so
// that no pull of this instance outlives its lease on the server. Each
// fetch is read to its end even after fetchCtx is done: a change the server
// delivers to a pull that nobody reads stays un-acked, and with
// MaxAckPending 1 it would block the partition for AckWait. Handing it back
// (Nak) lets the next owner have it at once; the price is that stopping
// waits up to FetchWait for the outstanding pull to end.
func (pr *Processor) consume(fetchCtx, handleCtx context.Context, l *lease) {
	p := l.partition
	for fetchCtx.Err() == nil {
		if !pr.usableFor(l, pr.cfg.FetchWait) {
			// Not renewed lately: wait for a renewal, or for the renewer
			// to give the lease up, which ends fetchCtx.
			sleep(fetchCtx, pr.cfg.RenewInterval/4)
			continue
		}
		cons, err := pr.feed.consumer(fetchCtx, p)
		var batch jetstream.MessageBatch
		if err == nil {
			batch, err = cons.Fetch(1, jetstream.FetchMaxWait(pr.cfg.FetchWait))
		}
		if err == nil {
			for msg := range batch.Messages() {
				received := pr.now()
				if fetchCtx.Err() != nil {
					pr.giveBack(msg, received)
					continue
				}
				pr.handle(handleCtx, l, msg, received)
			}
			err = batch.Error()
		}
		if err != nil && fetchCtx.Err() == nil {
			pr.log.Warn("change feed fetch failed", "partition", p, "err", err)
			sleep(fetchCtx, pr.cfg.RetryDelay)
		}
	}
}

// usableFor reports whether l stays usable for d more.
func (pr *Processor) usableFor(l *lease, d time.Duration) bool {
	_, ok := l.fence(pr.now() + d)
	return ok
}

// handle runs the handler on msg and settles it: Ack on success, Nak with
// RetryDelay on failure, immediate Nak if the handler gave up because ctx
// was cancelled, so that the partition's next owner gets it without delay.
// The lease is checked right before the handler is called and again right
// before the verdict is sent: a lease past its deadline (the renewals
// stopped, or the whole process was paused) neither hands the change to
// the handler nor acknowledges it.
func (pr *Processor) handle(ctx context.Context, l *lease, msg jetstream.Msg, received time.Duration) {
	p := l.partition
	meta, err := msg.Metadata()
	if err != nil {
		pr.log.Error("change feed message without metadata", "partition", p, "subject", msg.Subject(), "err", err)
		return
	}
	token, ok := l.fence(pr.now())
	if !ok {
		pr.fenced(l, msg, meta.Sequence.Stream, received, "before handling")
		return
	}
	c := Change{Key: keyOf(msg.Subject()), Partition: p, Data: msg.Data(), Seq: meta.Sequence.Stream, FencingToken: token}
	err = pr.call(ctx, c)
	if _, ok := l.fence(pr.now()); !ok {
		pr.fenced(l, msg, c.Seq, received, "after handling")
		return
	}
	switch {
	case err == nil:
		pr.metrics.countProcessed(p, resultOK)
		pr.metrics.setPending(p, meta.NumPending)
		err = msg.Ack()
	case ctx.Err() != nil:
		pr.metrics.countProcessed(p, resultRequeued)
		err = msg.Nak()
	default:
		pr.metrics.countProcessed(p, resultRetry)
		pr.log.Warn("change handler failed; retrying", "partition", p, "key", c.Key, "seq", c.Seq,
			"delivery", meta.NumDelivered, "retry_in", pr.cfg.RetryDelay, "err", err)
		err = msg.NakWithDelay(pr.cfg.RetryDelay)
	}
	if err != nil {
		// The change stays un-acked: the server redelivers it after AckWait.
		pr.log.Warn("change feed ack failed", "partition", p, "seq", c.Seq, "err", err)
	}
}

// fenced drops a change this instance may no longer handle or acknowledge.
func (pr *Processor) fenced(l *lease, msg jetstream.Msg, seq uint64, received time.Duration, when string) {
	pr.metrics.countProcessed(l.partition, resultRequeued)
	pr.log.Warn("change feed lease past its deadline; change left to the next owner",
		"partition", l.partition, "seq", seq, "when", when)
	pr.giveBack(msg, received)
}

// giveBack hands a change back with Nak, so that the partition's next owner
// gets it at once, but only while this delivery is certainly the pending one:
// after AckWait the server may have delivered it again to someone else,
// whose delivery a Nak must not disturb. Otherwise AckWait redelivers it.
func (pr *Processor) giveBack(msg jetstream.Msg, received time.Duration) {
	if pr.now()-received < pr.cfg.AckWait-Margin(pr.cfg.AckWait) {
		_ = msg.Nak() // best effort: if lost, AckWait redelivers it
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
