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
	// acks are the worker's acknowledgements and their confirmation; used
	// by the worker, and by the release once done is closed.
	acks *acks
	// ahead is the pull sent before the last batch was handled, or nil;
	// the worker's own.
	ahead jetstream.MessageBatch
}

// startWorker consumes l's partition until stopped or aborted. prev is the
// done channel of an earlier worker of the partition (nil if none): the new
// worker waits for it so that one instance never fetches a partition twice.
func (pr *Processor) startWorker(l *lease, prev <-chan struct{}) *worker {
	handleCtx, abort := context.WithCancel(pr.base)
	fetchCtx, stopFetch := context.WithCancel(handleCtx)
	w := &worker{stopFetch: stopFetch, abort: abort, done: make(chan struct{}), acks: newAcks(pr.conn, pr.cfg.RenewInterval)}
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

// consume fetches the partition's changes in batches and handles them one
// at a time, in order, until fetchCtx ends.
//
// The server hands out up to Batch changes of a partition at once, so order
// across a change of owner rests on three rules:
//
//  1. a new owner resets the consumer to its ack floor before its first
//     pull, and again whenever it gave up in the middle of a batch: what a
//     previous owner held (crashed, paused or stopped mid-batch) is
//     forgotten by the server and comes again, first and in order;
//  2. an owner pulls only while its lease stays usable for longer than the
//     pull may wait, so its pulls end on the server before anyone may take
//     the lease; it hands a change to the handler and acknowledges it only
//     before its deadline;
//  3. each delivery carries the consumer's delivery sequence, which counts
//     deliveries to anyone, from 1 after a reset. A gap means some other
//     pull (say, one sent just as its sender froze) received changes in
//     between: the owner handles nothing more of the batch and resets.
func (pr *Processor) consume(fetchCtx, handleCtx context.Context, l *lease) {
	p := l.partition
	next := uint64(0) // delivery sequence expected next; 0: reset first
	for fetchCtx.Err() == nil {
		if !pr.usableFor(l, pr.cfg.FetchWait+Margin(pr.cfg.LeaseTTL)) {
			// Not renewed lately: wait for a renewal, or for the renewer
			// to give the lease up, which ends fetchCtx.
			sleep(fetchCtx, pr.cfg.RenewInterval/4)
			continue
		}
		err := pr.fetchBatch(fetchCtx, handleCtx, l, &next)
		if err != nil && fetchCtx.Err() == nil {
			pr.log.Warn("change feed fetch failed", "partition", p, "err", err)
			sleep(fetchCtx, pr.cfg.RetryDelay)
		}
	}
}

// fetchBatch resets the consumer if *next is 0, then pulls one batch and
// handles it. On giving up mid-batch it sets *next to 0; the rest of the
// batch is left unsettled, for the reset to deliver again.
//
// Once a batch has all its changes on the client, the next pull is sent
// while they are handled (the lease permitting, as for any pull), so that
// a partition does not wait a round trip between batches. The server has
// finished the first pull by then, so the second one's deliveries follow
// in sequence.
func (pr *Processor) fetchBatch(fetchCtx, handleCtx context.Context, l *lease, next *uint64) error {
	p := l.partition
	w := l.w
	if *next == 0 {
		if w.ahead != nil {
			// Read to the end: the pull is over once its messages are,
			// and none may arrive after the reset.
			for range w.ahead.Messages() {
			}
			w.ahead = nil
		}
		// The reset starts from the ack floor: acknowledgements still on
		// their way would bring back changes handled already. Those that
		// stay unanswered (lost with a consumer leader) are moot after it:
		// their changes come again, each the newest handled of its key.
		if err := w.acks.all(fetchCtx); err != nil {
			pr.log.Warn("change feed acknowledgements unanswered before a reset; their changes come again",
				"partition", p, "err", err)
		}
		if err := pr.feed.reset(fetchCtx, p); err != nil {
			return err
		}
		w.acks.forget()
		*next = 1
	}
	cons, err := pr.feed.consumer(fetchCtx, p)
	if err != nil {
		return err
	}
	batch := w.ahead
	w.ahead = nil
	if batch == nil {
		if batch, err = cons.Fetch(pr.cfg.Batch, jetstream.FetchMaxWait(pr.cfg.FetchWait)); err != nil {
			return err
		}
	}
	received := 0
	for msg := range batch.Messages() {
		received++
		if w.ahead == nil && *next != 0 && received+len(batch.Messages()) == pr.cfg.Batch &&
			fetchCtx.Err() == nil && pr.usableFor(l, pr.cfg.FetchWait+Margin(pr.cfg.LeaseTTL)) {
			// Best effort: on failure the next call pulls as usual.
			w.ahead, _ = cons.Fetch(pr.cfg.Batch, jetstream.FetchMaxWait(pr.cfg.FetchWait))
		}
		if *next == 0 || fetchCtx.Err() != nil {
			*next = 0
			continue // read to the end: the pull is over once its messages are
		}
		meta, err := msg.Metadata()
		if err != nil {
			pr.log.Error("change feed message without metadata", "partition", p, "subject", msg.Subject(), "err", err)
			*next = 0
			continue
		}
		if got := meta.Sequence.Consumer; got != *next {
			pr.log.Warn("change feed delivery out of sequence: another pull received changes; resetting",
				"partition", p, "delivery", got, "want", *next)
			*next = 0
			continue
		}
		*next++
		if !pr.handle(handleCtx, l, msg, meta) {
			*next = 0
		}
	}
	return batch.Error()
}

// usableFor reports whether l stays usable for d more.
func (pr *Processor) usableFor(l *lease, d time.Duration) bool {
	_, ok := l.fence(pr.now() + d)
	return ok
}

// handle runs the handler on msg until it succeeds, retrying in place
// after RetryDelay (so a failing change holds up the rest of its
// partition), then acknowledges it. The lease is checked right before each
// call of the handler and right before the acknowledgement: a lease past
// its deadline (renewals failing, or the whole process stopped) neither
// hands the change to the handler nor acknowledges it. handle reports
// false if it gave up (lease lost or past its deadline, handler cancelled,
// acknowledgement not sent): the change stays unsettled for the next reset.
func (pr *Processor) handle(ctx context.Context, l *lease, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	p := l.partition
	c := Change{Key: keyOf(msg.Subject()), Partition: p, Data: msg.Data(), Seq: meta.Sequence.Stream}
	if err := l.w.acks.beforeHandling(ctx, c.Key); err != nil {
		// Lost with a consumer leader, most likely: the reset that follows
		// hands the key's last change to the handler again, then this one.
		pr.log.Warn("change feed acknowledgement of the key's last change unanswered; resetting",
			"partition", p, "key", c.Key, "seq", c.Seq, "err", err)
		return false
	}
	for attempt := 1; ; attempt++ {
		token, ok := l.fence(pr.now())
		if !ok {
			return pr.fenced(l, c, "before handling")
		}
		c.FencingToken = token
		sctx, span := pr.startSpan(ctx, msg, c, attempt)
		err := pr.call(sctx, c)
		telemetry.EndConsume(span, err)
		if _, ok := l.fence(pr.now()); !ok {
			return pr.fenced(l, c, "after handling")
		}
		switch {
		case err == nil:
			pr.metrics.countProcessed(p, resultOK)
			// Sent without waiting; its answer is awaited before the next
			// change of the key is handled (above). An acknowledgement lost
			// with a consumer leader that froze or died (sent, never
			// replicated) lets the next leader's ack floor lag behind
			// handled changes, and the reset that follows hands them to the
			// handler again: with at most one change per key unanswered,
			// each comes again as the newest handled of its key, never
			// after a newer one (which the fault suite saw when every
			// change of a batch was left unconfirmed and a node was paused).
			if err := l.w.acks.ack(msg, c.Key); err != nil {
				pr.log.Warn("change feed ack failed", "partition", p, "seq", c.Seq, "err", err)
				return false
			}
			return true
		case ctx.Err() != nil:
			pr.metrics.countProcessed(p, resultRequeued)
			return false
		}
		pr.metrics.countProcessed(p, resultRetry)
		pr.log.Warn("change handler failed; retrying", "partition", p, "key", c.Key, "seq", c.Seq,
			"attempt", attempt, "retry_in", pr.cfg.RetryDelay, "err", err)
		_ = msg.InProgress() // within the deadline: keeps the server from redelivering it meanwhile
		sleep(ctx, pr.cfg.RetryDelay)
	}
}

// fenced gives up a change this instance may no longer handle or
// acknowledge; it returns false for handle.
func (pr *Processor) fenced(l *lease, c Change, when string) bool {
	pr.metrics.countProcessed(l.partition, resultRequeued)
	pr.log.Warn("change feed lease past its deadline; change left to the next owner",
		"partition", l.partition, "key", c.Key, "seq", c.Seq, "when", when)
	return false
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
