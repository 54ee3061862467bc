package changefeed_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// journal records the changes a handler completed, per key.
type journal struct {
	mu        sync.Mutex
	byKey     map[string][]string
	partition map[string]int
	total     int
	err       error
}

func newJournal() *journal {
	return &journal{byKey: map[string][]string{}, partition: map[string]int{}}
}

func (j *journal) record(c changefeed.Change) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if p, ok := j.partition[c.Key]; ok && p != c.Partition {
		j.err = errors.Join(j.err, fmt.Errorf("key %s seen in partitions %d and %d", c.Key, p, c.Partition))
	}
	j.partition[c.Key] = c.Partition
	j.byKey[c.Key] = append(j.byKey[c.Key], string(c.Data))
	j.total++
}

func (j *journal) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total
}

func (j *journal) values(key string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.byKey[key])
}

func TestChangesHandledOnceInKeyOrderAcrossRebalancing(t *testing.T) {
	t.Parallel()
	const keys, perKey = 24, 25
	s := startServer(t)
	_, js := connect(t, s)
	j := newJournal()
	var failMu sync.Mutex
	failed := map[uint64]bool{}
	// Every 7th change fails on its first delivery: the retry must come
	// before the next change of its partition.
	handler := func(_ context.Context, c changefeed.Change) error {
		if n, _ := strconv.Atoi(string(c.Data)); n%7 == 3 {
			failMu.Lock()
			first := !failed[c.Seq]
			failed[c.Seq] = true
			failMu.Unlock()
			if first {
				return errors.New("injected failure")
			}
		}
		j.record(c)
		return nil
	}
	a, _ := startProcessor(t, s, testConfig("a"), handler, nil)
	runtest.Eventually(t, 5*time.Second, "first processor owns all", func() bool { return len(a.Owned()) == 16 })

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range perKey {
			for k := range keys {
				subject, _ := changefeed.Subject(fmt.Sprintf("key-%d", k))
				if _, err := js.Publish(context.Background(), subject, []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}
	}()
	// A second processor joining mid-stream moves half of the partitions
	// while changes flow.
	runtest.Eventually(t, 5*time.Second, "some changes handled", func() bool { return j.count() > 0 })
	b, _ := startProcessor(t, s, testConfig("b"), handler, nil)
	<-published
	runtest.Eventually(t, 20*time.Second, "all changes handled", func() bool { return j.count() >= keys*perKey })
	if len(b.Owned()) == 0 {
		t.Error("second processor never took a partition")
	}

	want := make([]string, perKey)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	partitions := map[int]bool{}
	for k := range keys {
		key := fmt.Sprintf("key-%d", k)
		if got := j.values(key); !slices.Equal(got, want) {
			t.Errorf("%s handled %v, want %v", key, got, want)
		}
		partitions[j.partition[key]] = true
	}
	if j.err != nil {
		t.Error(j.err)
	}
	if len(partitions) < 2 {
		t.Errorf("keys landed in %d partitions, want them spread", len(partitions))
	}
}

func TestLostLeaseCancelsHandlerAndRedelivers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	started := make(chan changefeed.Change, 1)
	cancelled := make(chan error, 1)
	redelivered := make(chan changefeed.Change, 1)
	var calls sync.Map
	handler := func(ctx context.Context, c changefeed.Change) error {
		if _, again := calls.LoadOrStore(c.Seq, true); again {
			redelivered <- c
			return nil
		}
		started <- c
		<-ctx.Done()
		cancelled <- ctx.Err()
		return ctx.Err()
	}
	a, _ := startProcessor(t, s, testConfig("a"), handler, nil)
	runtest.Eventually(t, 5*time.Second, "processor owns all", func() bool { return len(a.Owned()) == 16 })
	publish(t, js, "slow", "1")
	c := receive(t, started, 5*time.Second, "handler start")

	// An intruder takes the lease the way a peer steals it.
	kv, err := js.KeyValue(context.Background(), changefeed.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := strconv.Itoa(c.Partition)
	// The owner renews every renew interval: an intruder that read a
	// revision just before a renewal tries again.
	var stolen time.Time
	runtest.Eventually(t, 5*time.Second, "intruder takes the lease", func() bool {
		e, err := kv.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		stolen = time.Now()
		_, err = kv.Update(context.Background(), key, []byte("intruder"), e.Revision())
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			t.Fatal(err)
		}
		return err == nil
	})
	if err := receive(t, cancelled, testRenew+slack, "handler cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context ended with %v, want context.Canceled", err)
	}
	t.Logf("handler cancelled %s after the lease was taken", time.Since(stolen))
	if slices.Contains(a.Owned(), c.Partition) {
		t.Fatalf("processor still owns partition %d after losing its lease", c.Partition)
	}

	// The intruder never renews: once its lease expires the processor takes
	// the partition back, and the change it gave up comes again.
	again := receive(t, redelivered, testTTL+testRenew+slack, "redelivery")
	if again.Seq != c.Seq || again.Key != "slow" {
		t.Fatalf("redelivered %+v, want seq %d of key slow", again, c.Seq)
	}
}

func TestStartFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		startFrom string
		want      []string
	}{
		{changefeed.StartBeginning, []string{"old-1", "old-2", "new-1", "new-2"}},
		{changefeed.StartNow, []string{"new-1", "new-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.startFrom, func(t *testing.T) {
			s := startServer(t)
			_, js := connect(t, s)
			cfg := testConfig("a")
			cfg.StartFrom = tt.startFrom
			// The stream exists and holds changes before the feed's
			// consumers do.
			if _, err := js.CreateStream(context.Background(), changefeed.StreamConfig(cfg)); err != nil {
				t.Fatal(err)
			}
			publish(t, js, "k", "old-1")
			publish(t, js, "k", "old-2")

			j := newJournal()
			startProcessor(t, s, cfg, func(_ context.Context, c changefeed.Change) error { j.record(c); return nil }, nil)
			publish(t, js, "k", "new-1")
			publish(t, js, "k", "new-2")
			// One key, one partition, in order: once new-2 is handled,
			// any old change that was due has been handled too.
			runtest.Eventually(t, 5*time.Second, "new-2 handled", func() bool { return slices.Contains(j.values("k"), "new-2") })
			if got := j.values("k"); !slices.Equal(got, tt.want) {
				t.Fatalf("handled %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExistingConsumerKeepsItsCheckpoint(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	j := newJournal()
	record := func(_ context.Context, c changefeed.Change) error { j.record(c); return nil }

	first, _ := startProcessor(t, s, testConfig("a"), record, nil)
	publish(t, js, "k", "1")
	publish(t, js, "k", "2")
	runtest.Eventually(t, 5*time.Second, "first changes handled", func() bool { return j.count() == 2 })
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "k", "3") // while no processor runs

	cfg := testConfig("b")
	cfg.StartFrom = changefeed.StartNow // must not skip 3: the consumer exists
	startProcessor(t, s, cfg, record, nil)
	publish(t, js, "k", "4")
	runtest.Eventually(t, 5*time.Second, "later changes handled", func() bool { return slices.Contains(j.values("k"), "4") })
	if got, want := j.values("k"), []string{"1", "2", "3", "4"}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
}

func TestStopWaitsForInFlightChange(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	started := make(chan changefeed.Change, 1)
	release := make(chan struct{})
	var handlerCtxErr error
	p, _ := startProcessor(t, s, testConfig("a"), func(ctx context.Context, c changefeed.Change) error {
		started <- c
		<-release
		handlerCtxErr = ctx.Err()
		return nil
	}, nil)
	publish(t, js, "k", "1")
	c := receive(t, started, 5*time.Second, "handler start")

	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a change was in flight", err)
	case <-time.After(100 * time.Millisecond): // a window in which Stop must not return
	}
	close(release)
	if err := receive(t, stopped, 5*time.Second, "Stop"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if handlerCtxErr != nil {
		t.Fatalf("graceful Stop cancelled the handler: %v", handlerCtxErr)
	}
	// Stop released the lease, and the change was acknowledged: the
	// partition's consumer has nothing pending.
	kv, err := js.KeyValue(context.Background(), changefeed.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), strconv.Itoa(c.Partition)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("lease after Stop: %v, want released", err)
	}
	info := consumerInfo(t, js, c.Partition)
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != c.Seq {
		t.Fatalf("consumer after Stop: ack pending %d, pending %d, ack floor %d; want 0, 0, %d",
			info.NumAckPending, info.NumPending, info.AckFloor.Stream, c.Seq)
	}
}

func TestStopTimeoutLeavesChangeUnacked(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := connect(t, s)
	started := make(chan changefeed.Change, 1)
	cancelled := make(chan struct{})
	p, _ := startProcessor(t, s, testConfig("a"), func(ctx context.Context, c changefeed.Change) error {
		started <- c
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, nil)
	publish(t, js, "k", "1")
	c := receive(t, started, 5*time.Second, "handler start")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want it to report the deadline", err)
	}
	receive(t, cancelled, 5*time.Second, "handler cancellation")
	info := consumerInfo(t, js, c.Partition)
	if info.AckFloor.Stream >= c.Seq {
		t.Fatalf("ack floor %d: the unfinished change %d was acknowledged", info.AckFloor.Stream, c.Seq)
	}
}

func consumerInfo(tb testing.TB, js jetstream.JetStream, partition int) *jetstream.ConsumerInfo {
	tb.Helper()
	cons, err := js.Consumer(context.Background(), changefeed.StreamName, fmt.Sprintf("changefeed-%d", partition))
	if err != nil {
		tb.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info
}

func receive[T any](tb testing.TB, ch <-chan T, within time.Duration, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		tb.Fatalf("%s: nothing within %s", what, within)
		panic("unreachable")
	}
}
