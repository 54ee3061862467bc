package changefeed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// TestAcquisitionWhoseAnswerIsLostKeepsTheLease: the server applies the
// write that acquires lease 0 but its answer never arrives (a loaded server
// or a leader election answering after the request timed out). The
// processor must find the lease in its own name and keep that acquisition,
// so that its fencing token is the revision of the write that took the
// lease, rather than give up and write the lease again a step later (which
// delayed the partition's first change by a renew interval and more).
func TestAcquisitionWhoseAnswerIsLostKeepsTheLease(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	nc, js := connect(t, s)
	lease0 := "$KV." + changefeed.LeaseBucket + ".0"
	var dropped atomic.Bool
	var applied atomic.Uint64 // revision of the acquisition whose answer was dropped
	apiProxy(t, nc, func(subject string, m *nats.Msg) (string, bool) {
		if subject == lease0 && m.Header.Get("Nats-Expected-Last-Subject-Sequence") == "0" && dropped.CompareAndSwap(false, true) {
			// Applied, unanswered: the proxy takes the answer.
			go func() {
				resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: m.Header, Data: m.Data}, 5*time.Second)
				var ack struct {
					Seq uint64 `json:"seq"`
				}
				if err == nil {
					err = json.Unmarshal(resp.Data, &ack)
				}
				if err != nil || ack.Seq == 0 {
					t.Errorf("acquisition of lease 0: %v (%s)", err, resp.Data)
				}
				applied.Store(ack.Seq)
			}()
			return "", false
		}
		return m.Reply, true
	})
	pjs := proxiedJetStream(t, s)
	cfg := testConfig("a")
	cfg.LeaseTTL, cfg.RenewInterval = 4*testTTL, 4*testRenew
	r := newRecorder("")
	p, err := changefeed.New(cfg, func() jetstream.JetStream { return pjs }, r.handle, nil, testLog(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	runtest.Eventually(t, 5*time.Second, "owns all", func() bool { return len(p.Owned()) == 16 })
	if !dropped.Load() {
		t.Fatal("no acquisition of lease 0 went through the proxy")
	}

	// Enough keys that one lands in partition 0.
	for i := range 64 {
		publish(t, js, fmt.Sprintf("k%d", i), "1")
	}
	var token uint64
	runtest.Eventually(t, 5*time.Second, "a change of partition 0", func() bool {
		for _, c := range r.handled() {
			if c.Partition == 0 {
				token = c.FencingToken
				return true
			}
		}
		return false
	})
	if want := applied.Load(); token != want {
		t.Fatalf("partition 0 handled with fencing token %d, want %d, the revision of the acquisition whose answer was lost", token, want)
	}
}
