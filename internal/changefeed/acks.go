package changefeed

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks tracks one worker's acknowledgements and the server's confirmation
// that it applied them. Acknowledgements go out without waiting; in the
// background one confirmation at a time runs, covering every
// acknowledgement sent before it, and another follows while more were
// sent. The worker waits only when the change it is about to handle has a
// key whose last acknowledgement no confirmation covers yet.
//
// A confirmation is a progress signal with a reply, sent for the change
// acknowledged last on the connection that carried the acknowledgements: a
// consumer applies acknowledgements and progress signals from one queue, in
// order, so the answer comes once those before it are applied. For a change
// already acknowledged it changes nothing.
type acks struct {
	conn    *nats.Conn
	timeout time.Duration // bound of one confirmation: a leader election

	// keys maps a key to the number of its last acknowledgement; the
	// worker's own.
	keys map[string]uint64

	mu        sync.Mutex
	sent      uint64 // acknowledgements sent
	lastReply string // the reply subject of the change acknowledged last
	confirmed uint64 // acknowledgements the server confirmed applied
	// running is closed when the confirmation in flight ends; nil if none.
	running chan struct{}
	err     error // the last confirmation's failure, until one succeeds
}

// ackProgress is JetStream's progress signal ("working on it").
const ackProgress = "+WPI"

// maxUnconfirmed bounds the acknowledgements a worker leaves unconfirmed,
// and so what a consumer leader's failure can bring back.
const maxUnconfirmed = 256

func newAcks(conn *nats.Conn, timeout time.Duration) *acks {
	return &acks{conn: conn, timeout: timeout, keys: map[string]uint64{}}
}

// ack acknowledges msg, a change of key, without waiting for the server,
// and starts a confirmation if none is running.
func (a *acks) ack(msg jetstream.Msg, key string) error {
	if err := msg.Ack(); err != nil {
		return err
	}
	a.mu.Lock()
	a.sent++
	n := a.sent
	a.lastReply = msg.Reply()
	if a.running == nil && a.conn != nil {
		a.startLocked()
	}
	confirmed := a.confirmed
	a.mu.Unlock()
	a.keys[key] = n
	if len(a.keys) > 2*maxUnconfirmed {
		for k, m := range a.keys {
			if m <= confirmed {
				delete(a.keys, k)
			}
		}
	}
	return nil
}

// beforeHandling waits, within ctx and the confirmation bound, until the
// last acknowledgement of key is confirmed, or all of them if too many are
// unconfirmed.
func (a *acks) beforeHandling(ctx context.Context, key string) error {
	a.mu.Lock()
	need := a.keys[key]
	if a.sent-a.confirmed >= maxUnconfirmed {
		need = a.sent
	}
	a.mu.Unlock()
	return a.waitFor(ctx, need)
}

// all waits until every acknowledgement sent is confirmed: before a reset,
// which starts from the ack floor, and before the lease is given up.
func (a *acks) all(ctx context.Context) error {
	a.mu.Lock()
	n := a.sent
	a.mu.Unlock()
	return a.waitFor(ctx, n)
}

// waitFor waits until at least n acknowledgements are confirmed, starting a
// confirmation when none is running.
func (a *acks) waitFor(ctx context.Context, n uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	for {
		a.mu.Lock()
		if a.confirmed >= n {
			a.mu.Unlock()
			return nil
		}
		if a.conn == nil {
			a.mu.Unlock()
			return fmt.Errorf("confirm acknowledgements: no connection")
		}
		if a.running == nil {
			a.startLocked()
		}
		done := a.running
		a.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("confirm acknowledgements: %w", ctx.Err())
		}
		a.mu.Lock()
		ok, err := a.confirmed >= n, a.err
		a.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// startLocked sends a confirmation covering every acknowledgement sent so
// far; a.mu is held. When it succeeds and more were sent meanwhile, the
// next one starts at once.
func (a *acks) startLocked() {
	upTo, reply := a.sent, a.lastReply
	done := make(chan struct{})
	a.running = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		_, err := a.conn.RequestWithContext(ctx, reply, []byte(ackProgress))
		cancel()
		a.mu.Lock()
		defer a.mu.Unlock()
		a.running = nil
		close(done)
		if err != nil {
			a.err = fmt.Errorf("confirm acknowledgements: %w", err)
			return
		}
		a.err = nil
		a.confirmed = max(a.confirmed, upTo)
		if a.sent > a.confirmed {
			a.startLocked()
		}
	}()
}
