//go:build unix

package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// phaseClock tells the load generators which phase of the suite they are in,
// so that every request and change is counted under the fault it met.
type phaseClock struct{ cur atomic.Int32 }

func (c *phaseClock) get() int  { return int(c.cur.Load()) }
func (c *phaseClock) set(i int) { c.cur.Store(int32(i)) }

// POST outcomes, as columns of the report.
const (
	out202       = "202"
	out503       = "503"
	out504       = "504"
	out5xx       = "5xx" // another 5xx: retried, the job may have been stored
	outOther     = "other"
	outTransport = "transport"
)

// postEvent is one answer to POST /pingpong/jobs.
type postEvent struct {
	at      time.Time
	outcome string
}

// jobLoad posts jobs with ids it chooses, as a careful client does: each
// job is posted until it is accepted (202), and every retry, after a 5xx or
// a transport error, carries the same id.
type jobLoad struct {
	url    string
	client *http.Client
	phases *phaseClock
	next   atomic.Int64

	mu       sync.Mutex
	accepted map[string]int  // job id -> phase it was first posted in
	pending  map[string]bool // ids posted but neither accepted nor rejected yet
	answers  map[int]map[string]int
	events   []postEvent
	rejected []string // 4xx answers: a bug in the suite or in pingapi
}

func newJobLoad(url string, phases *phaseClock) *jobLoad {
	return &jobLoad{
		url: url,
		// Above pingapi's own publish timeout, so that its answer, not
		// ours, ends a request.
		client:   &http.Client{Timeout: 15 * time.Second},
		phases:   phases,
		accepted: map[string]int{},
		pending:  map[string]bool{},
		answers:  map[int]map[string]int{},
	}
}

// run posts from clients goroutines, each at most one job per every, until
// stop is closed; the job in hand is then still posted until accepted or
// ctx ends.
func (l *jobLoad) run(ctx context.Context, stop <-chan struct{}, clients int, every time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				l.post(ctx, fmt.Sprintf("job-%06d", l.next.Add(1)))
			}
		})
	}
	return &wg
}

// post sends one job until it is accepted, rejected or ctx ends.
func (l *jobLoad) post(ctx context.Context, id string) {
	phase := l.phases.get()
	body, _ := json.Marshal(map[string]string{"id": id, "work": "5ms"})
	l.mu.Lock()
	l.pending[id] = true
	l.mu.Unlock()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		outcome := l.postOnce(ctx, body)
		l.record(outcome)
		switch outcome {
		case out202:
			l.mu.Lock()
			l.accepted[id] = phase
			delete(l.pending, id)
			l.mu.Unlock()
			return
		case outOther:
			l.mu.Lock()
			l.rejected = append(l.rejected, id)
			delete(l.pending, id)
			l.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// postOnce sends the request and classifies the answer: a 5xx other than
// 503 and 504 is retried too (the job may have been stored), a 4xx is not.
func (l *jobLoad) postOnce(ctx context.Context, body []byte) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/pingpong/jobs", bytes.NewReader(body))
	if err != nil {
		return outTransport
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return outTransport
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return out202
	case resp.StatusCode == http.StatusServiceUnavailable:
		return out503
	case resp.StatusCode == http.StatusGatewayTimeout:
		return out504
	case resp.StatusCode >= 500:
		return out5xx
	}
	return outOther
}

func (l *jobLoad) record(outcome string) {
	phase := l.phases.get()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.answers[phase] == nil {
		l.answers[phase] = map[string]int{}
	}
	l.answers[phase][outcome]++
	l.events = append(l.events, postEvent{at: time.Now(), outcome: outcome})
}

// inFlight returns the ids of the jobs being posted.
func (l *jobLoad) inFlight() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Collect(maps.Keys(l.pending))
}

// resolved reports whether every one of ids has been answered for good.
func (l *jobLoad) resolved(ids []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !slices.ContainsFunc(ids, func(id string) bool { return l.pending[id] })
}

// firstAccepted returns when the first 202 after t arrived (zero if none).
func (l *jobLoad) firstAccepted(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.outcome == out202 && e.at.After(t) {
			return e.at
		}
	}
	return time.Time{}
}

// changeLoad writes changes of a fixed set of keys directly to JetStream,
// each key's changes numbered 1, 2, ... and published one after the other
// (the next only once the previous was acknowledged), so that stream order
// is the order the writer meant. Every change carries Nats-Msg-Id key-n, so
// a retry after a lost acknowledgement stores it once.
type changeLoad struct {
	js     jetstream.JetStream
	phases *phaseClock

	mu      sync.Mutex
	acks    []published
	pending map[string]bool // Nats-Msg-Ids being written
}

// run writes changes of keys from writers goroutines, each writing its
// share of the keys in turn, one change per every, until stop is closed.
func (l *changeLoad) run(ctx context.Context, stop <-chan struct{}, keys []string, writers int, every time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range writers {
		var mine []string
		for i := w; i < len(keys); i += writers {
			mine = append(mine, keys[i])
		}
		wg.Go(func() {
			n := map[string]int{}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				key := mine[i%len(mine)]
				n[key]++
				l.write(ctx, key, n[key])
			}
		})
	}
	return &wg
}

// write publishes change n of key until it is acknowledged or ctx ends.
func (l *changeLoad) write(ctx context.Context, key string, n int) {
	phase := l.phases.get()
	msg := &nats.Msg{Subject: "changes." + key, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", key, n))
	msg.Data, _ = json.Marshal(map[string]any{"key": key, "n": n})
	id := msg.Header.Get(jetstream.MsgIDHeader)
	l.mu.Lock()
	l.pending[id] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.pending, id)
		l.mu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := l.js.PublishMsg(pctx, msg)
		cancel()
		// A duplicate's acknowledgement names the first copy's sequence;
		// 0 means that copy is not stored yet: ask again.
		if err == nil && ack.Sequence != 0 {
			l.mu.Lock()
			l.acks = append(l.acks, published{key: key, n: n, seq: ack.Sequence, phase: phase})
			l.mu.Unlock()
			return
		}
		if err != nil && errors.Is(err, context.Canceled) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// inFlight returns the ids of the changes being written.
func (l *changeLoad) inFlight() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Collect(maps.Keys(l.pending))
}

// resolved reports whether none of ids is still being written.
func (l *changeLoad) resolved(ids []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !slices.ContainsFunc(ids, func(id string) bool { return l.pending[id] })
}

func (l *changeLoad) acknowledged() []published {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]published(nil), l.acks...)
}
