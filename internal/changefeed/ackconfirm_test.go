package changefeed_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// slowUplink forwards TCP connections to addr, delaying every byte a client
// sends by delay (order kept), as a consumer leader that is slow to record
// acknowledgements looks to its client. It returns the address to dial.
func slowUplink(tb testing.TB, addr string, delay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			tb.Cleanup(func() { _ = c.Close(); _ = s.Close() })
			go func() { _, _ = io.Copy(c, s) }()
			type chunk struct {
				at   time.Time
				data []byte
			}
			q := make(chan chunk, 1024)
			go func() {
				defer close(q)
				for {
					buf := make([]byte, 32<<10)
					n, err := c.Read(buf)
					if n > 0 {
						q <- chunk{time.Now(), buf[:n]}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				for ch := range q {
					time.Sleep(time.Until(ch.at.Add(delay)))
					if _, err := s.Write(ch.data); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestChangeOfAKeyWaitsForTheKeysLastAcknowledgement: a change reaches the
// handler only once the server recorded the acknowledgement of the change
// of its key handled before. Otherwise acknowledgements in flight when the
// consumer's leader froze are lost with it, and the reset that follows
// hands handled changes to the handler again, after newer changes of their
// keys (the fault suite's duplicates while a node was paused). Changes of
// other keys need not wait: acknowledgements go out without a round trip
// each. The processor's uplink is delayed, so that an acknowledgement sent
// and not awaited is still on its way when the next change is handled.
func TestChangeOfAKeyWaitsForTheKeysLastAcknowledgement(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	pnc, err := nats.Connect("nats://" + slowUplink(t, s.Addr().String(), 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pnc.Close)
	pjs, err := jetstream.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("a")
	cfg.Partitions = 1
	// Longer timings than the other tests: the uplink is slow on purpose.
	cfg.LeaseTTL, cfg.RenewInterval = 10*testTTL, 10*testRenew

	var mu sync.Mutex
	prev := map[string]uint64{} // key -> seq of its change handled last
	var errs []string
	handled := make(chan struct{}, 16)
	h := func(ctx context.Context, c changefeed.Change) error {
		mu.Lock()
		before := prev[c.Key]
		prev[c.Key] = c.Seq
		mu.Unlock()
		if before != 0 {
			cons, err := js.Consumer(ctx, changefeed.StreamName, changefeed.ConsumerName(c.Partition))
			if err != nil {
				return err
			}
			if floor := cons.CachedInfo().AckFloor.Stream; floor < before {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("seq %d of key %s handled with the ack floor at %d, before the acknowledgement of seq %d, the key's last, was recorded",
					c.Seq, c.Key, floor, before))
				mu.Unlock()
			}
		}
		handled <- struct{}{}
		return nil
	}
	p, err := changefeed.New(cfg, func() jetstream.JetStream { return pjs }, h, nil, testLog(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	runtest.Eventually(t, 10*time.Second, "owns the partition", func() bool { return len(p.Owned()) == 1 })
	// Two keys, in turns: each change follows one of the other key, whose
	// acknowledgement may still be on its way, and one of its own.
	const n = 6
	for i := range n {
		publish(t, js, fmt.Sprintf("k%d", i%2), fmt.Sprint(i))
	}
	for range n {
		receive(t, handled, 10*time.Second, "a change handled")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
}
