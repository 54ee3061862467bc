package changefeed

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replyOnly is a delivered change as acks sees it: its acknowledgement
// subject.
type replyOnly struct {
	jetstream.Msg
	reply string
}

func (m replyOnly) Reply() string { return m.reply }

// TestAnAcknowledgementIsConfirmedOnlyByItsOwnAnswer: a consumer leader
// that froze with an acknowledgement unapplied never answers it; with no
// leader at all the server bounces it ("503 no responders"); a successor
// answers those sent later. The keys of the first two must stay
// unconfirmed (their next change would otherwise be handled, and the reset
// that follows would bring the older change back after it); keys answered,
// or never acknowledged, go on at once.
func TestAnAcknowledgementIsConfirmedOnlyByItsOwnAnswer(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The successor answers every acknowledgement that reaches it; the
	// frozen leader takes them and says nothing; nobody listens on "gone.>".
	for subject, answer := range map[string]bool{"leader.>": true, "frozen.>": false} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if answer {
				_ = m.Respond(nil)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}

	const bound = 300 * time.Millisecond
	a := newAcks(nc, bound)
	t.Cleanup(a.close)
	for _, c := range []struct{ reply, key string }{
		{"frozen.1", "k"}, {"gone.2", "g"}, {"leader.3", "j"}, {"leader.4", "i"},
	} {
		if err := a.ack(replyOnly{reply: c.reply}, c.key); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, key := range []string{"j", "i", "never-acknowledged"} {
		if err := a.beforeHandling(ctx, key); err != nil {
			t.Errorf("key %s, answered or new: %v, want nil", key, err)
		}
	}
	if err := a.beforeHandling(ctx, "g"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("key g, whose acknowledgement no leader took: %v, want it refused", err)
	}
	began := time.Now()
	if err := a.beforeHandling(ctx, "k"); err == nil {
		t.Error("key k, whose acknowledgement was never answered: nil, want an error (later answers do not vouch for it)")
	} else if waited := time.Since(began); waited < bound {
		t.Errorf("gave up on key k after %s, before the bound %s", waited, bound)
	}
	if err := a.all(ctx); err == nil {
		t.Error("all with acknowledgements unanswered: nil, want an error")
	}
	a.forget() // after a reset, their changes come again
	for _, key := range []string{"k", "g"} {
		if err := a.beforeHandling(ctx, key); err != nil {
			t.Errorf("key %s after forget: %v, want nil", key, err)
		}
	}
}
