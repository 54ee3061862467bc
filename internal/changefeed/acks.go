package changefeed

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks sends one worker's acknowledgements without waiting and tracks the
// server's answer to each. Every acknowledgement asks for a reply, as
// jetstream's DoubleAck does, and only its own reply confirms it: a
// consumer leader that froze or died with some acknowledgements unapplied
// never answers those, while its successor may answer later ones. The
// worker waits only when the change it is about to handle has a key whose
// last acknowledgement is unanswered.
type acks struct {
	conn    *nats.Conn
	timeout time.Duration // how long an answer may take: a leader election

	// keys maps a key to the number of its last acknowledgement; the
	// worker's own.
	keys map[string]uint64

	mu      sync.Mutex
	inbox   string // replies come to inbox.<number>; "" until the first ack
	sub     *nats.Subscription
	sent    uint64
	pending map[uint64]struct{} // acknowledgements not answered yet
	// refused holds those of them the server bounced instead (no
	// responders: no consumer leader), with the reason; they stay pending.
	refused map[uint64]string
	changed chan struct{} // closed, and replaced, when one is answered
}

// The headers of a status message the server sends in place of an answer
// (nats.go does not export their names).
const (
	statusHeader      = "Status"
	descriptionHeader = "Description"
)

// ackBody is JetStream's positive acknowledgement.
const ackBody = "+ACK"

// maxUnconfirmed bounds the acknowledgements a worker leaves unanswered,
// and so what a consumer leader's failure can bring back.
const maxUnconfirmed = 256

func newAcks(conn *nats.Conn, timeout time.Duration) *acks {
	return &acks{conn: conn, timeout: timeout, keys: map[string]uint64{},
		pending: map[uint64]struct{}{}, refused: map[uint64]string{}, changed: make(chan struct{})}
}

// ack acknowledges msg, a change of key, asking for a reply but not
// waiting for it.
func (a *acks) ack(msg jetstream.Msg, key string) error {
	a.mu.Lock()
	if a.sub == nil {
		a.inbox = a.conn.NewInbox()
		sub, err := a.conn.Subscribe(a.inbox+".*", a.answered)
		if err != nil {
			a.mu.Unlock()
			return fmt.Errorf("subscribe to acknowledgement replies: %w", err)
		}
		a.sub = sub
	}
	a.sent++
	n := a.sent
	a.pending[n] = struct{}{}
	reply := a.inbox + "." + strconv.FormatUint(n, 10)
	a.mu.Unlock()
	if err := a.conn.PublishMsg(&nats.Msg{Subject: msg.Reply(), Reply: reply, Data: []byte(ackBody)}); err != nil {
		a.mu.Lock()
		delete(a.pending, n)
		a.mu.Unlock()
		return err
	}
	a.keys[key] = n
	if len(a.keys) > 2*maxUnconfirmed {
		a.mu.Lock()
		for k, m := range a.keys {
			if _, ok := a.pending[m]; !ok {
				delete(a.keys, k)
			}
		}
		a.mu.Unlock()
	}
	return nil
}

// answered records the server's reply to one acknowledgement. A reply
// with a status is the server's own, not the consumer's: "503 no
// responders" when no consumer leader took the acknowledgement.
func (a *acks) answered(m *nats.Msg) {
	i := strings.LastIndexByte(m.Subject, '.')
	n, err := strconv.ParseUint(m.Subject[i+1:], 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[n]; !ok {
		return
	}
	if status := m.Header.Get(statusHeader); status != "" {
		a.refused[n] = strings.TrimSpace(status + " " + m.Header.Get(descriptionHeader))
	} else {
		delete(a.pending, n)
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// beforeHandling waits until the last acknowledgement of key is answered,
// or, with too many unanswered, all of them.
func (a *acks) beforeHandling(ctx context.Context, key string) error {
	n := a.keys[key]
	return a.wait(ctx, func() (bool, error) {
		if why, ok := a.refused[n]; ok {
			return false, fmt.Errorf("acknowledgement of the key's last change refused: %s", why)
		}
		if len(a.pending) >= maxUnconfirmed {
			return false, nil
		}
		_, waiting := a.pending[n]
		return !waiting, nil
	})
}

// all waits until every acknowledgement sent is answered: before a reset,
// which starts from the ack floor, and before the lease is given up.
func (a *acks) all(ctx context.Context) error {
	return a.wait(ctx, func() (bool, error) {
		for _, why := range a.refused {
			return false, fmt.Errorf("%d acknowledgements refused: %s", len(a.refused), why)
		}
		return len(a.pending) == 0, nil
	})
}

// forget drops the acknowledgements still unanswered: after a reset the
// server delivers their changes again.
func (a *acks) forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.pending)
	clear(a.refused)
}

// close stops listening for replies.
func (a *acks) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sub != nil {
		_ = a.sub.Unsubscribe()
		a.sub = nil
	}
}

// wait waits, within ctx and the answer bound, until done holds or fails;
// done is called with a.mu held.
func (a *acks) wait(ctx context.Context, done func() (bool, error)) error {
	// Nearly always the answer is in already: decide before paying for a
	// timer.
	a.mu.Lock()
	ok, err := done()
	a.mu.Unlock()
	if ok || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	for {
		a.mu.Lock()
		ok, err := done()
		changed, left := a.changed, len(a.pending)
		a.mu.Unlock()
		if ok || err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d acknowledgements unanswered: %w", left, ctx.Err())
		}
	}
}
