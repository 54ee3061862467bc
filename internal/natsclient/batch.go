package natsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BatchResult counts what PublishBatch stored.
type BatchResult struct {
	// Stored is how many messages the streams acknowledged, duplicates
	// included.
	Stored int
	// Duplicates is how many of them the streams dropped as repeats of a
	// Nats-Msg-Id within their duplicate window.
	Duplicates int
}

// PublishBatch publishes n messages made by msg(0) … msg(n-1) without
// waiting for each acknowledgement: up to window messages are in flight at
// once, and every acknowledgement is still checked, in order. It stops at
// the first failure, whose error is classified like PublishMsg's; messages
// after it may or may not have been stored. Each acknowledgement may take
// ackTimeout; ctx bounds the whole batch.
func (p *Publisher) PublishBatch(ctx context.Context, n, window int, ackTimeout time.Duration, msg func(i int) *nats.Msg) (BatchResult, error) {
	var res BatchResult
	if window < 1 {
		return res, fmt.Errorf("window %d: must be at least 1", window)
	}
	if !p.nc.IsConnected() {
		return res, fmt.Errorf("publish: %w: NATS connection %s", ErrUnavailable, p.nc.Status())
	}
	// nats.go's own bound is a safety net above ours: it counts a message
	// pending until after its acknowledgement is delivered, so at exactly
	// window it would stall the next publish now and then.
	js, err := jetstream.New(p.nc, jetstream.WithPublishAsyncMaxPending(2*window),
		jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return res, fmt.Errorf("jetstream: %w", err)
	}
	futures := make([]jetstream.PubAckFuture, 0, window)
	settle := func(f jetstream.PubAckFuture) error {
		select {
		case ack := <-f.Ok():
			res.Stored++
			if ack.Duplicate {
				res.Duplicates++
			}
			return nil
		case err := <-f.Err():
			return classify(f.Msg().Subject, err)
		case <-ctx.Done():
			return classify(f.Msg().Subject, ctx.Err())
		}
	}
	for i := range n {
		m := msg(i)
		if err := ValidSubject(m.Subject); err != nil {
			return res, err
		}
		if len(futures) == window {
			if err := settle(futures[0]); err != nil {
				return res, err
			}
			futures = futures[1:]
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			}
			return res, classify(m.Subject, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		if err := settle(f); err != nil {
			return res, err
		}
	}
	return res, nil
}
