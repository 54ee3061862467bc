package changefeed_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// BenchmarkProcessor measures changes per second through one processor,
// from publication to acknowledgement, with a handler that does nothing,
// and the CPU time the whole process (publisher, server and processor)
// spends per change: on a shared machine the wall-clock figure swings with
// the neighbours' load, the CPU figure much less.
//
// It then measures the same through "bare": a stream of the same shape on
// the same server, the same consumer per partition, each consumed by
// nats.go's Consume with a plain Ack and no leases, order or fencing. The
// ratio is the processor's rate as a share of that ceiling, which is set by
// the server's work per change (store, deliver, acknowledge).
func BenchmarkProcessor(b *testing.B) {
	for _, partitions := range []int{1, 16} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			s := startServer(b)
			_, js := connect(b, s)
			var handled atomic.Int64
			all := make(chan struct{})
			total := int64(b.N)
			cfg := testConfig("bench")
			cfg.Partitions = partitions
			p, _ := startProcessor(b, s, cfg, func(context.Context, changefeed.Change) error {
				if handled.Add(1) == total {
					close(all)
				}
				return nil
			}, nil)
			runtest.Eventually(b, 5*time.Second, "processor owns all partitions", func() bool { return len(p.Owned()) == partitions })

			cpu0 := cpuTime(b)
			b.ResetTimer()
			publishChanges(b, js, "changes", b.N)
			select {
			case <-all:
			case <-time.After(time.Minute):
				b.Fatalf("handled %d of %d changes within a minute", handled.Load(), b.N)
			}
			b.StopTimer()
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "changes/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/change")
			bare := consumeBare(b, js, cfg, b.N)
			b.ReportMetric(bare, "bare_changes/s")
			b.ReportMetric(rate/bare, "ratio")
		})
	}
}

// consumeBare publishes n changes to a stream shaped like the feed's
// (BARE, bare.<key> partitioned into bare.<partition>.<key>) and returns
// how many per second one Consume per partition, acknowledging each,
// takes from publication to the last acknowledgement.
func consumeBare(b *testing.B, js jetstream.JetStream, cfg changefeed.Config, n int) float64 {
	b.Helper()
	ctx := context.Background()
	sc := changefeed.StreamConfig(cfg)
	sc.Name, sc.Subjects = "BARE", []string{"bare.*"}
	sc.SubjectTransform.Source = "bare.*"
	sc.SubjectTransform.Destination = strings.Replace(sc.SubjectTransform.Destination, "changes.", "bare.", 1)
	stream, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	all := make(chan struct{})
	for p := range cfg.Partitions {
		cc := changefeed.ConsumerConfig(cfg, p)
		cc.Durable = "bare-" + strconv.Itoa(p)
		cc.FilterSubject = "bare." + strconv.Itoa(p) + ".*"
		c, err := stream.CreateOrUpdateConsumer(ctx, cc)
		if err != nil {
			b.Fatal(err)
		}
		consuming, err := c.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			if acked.Add(1) == int64(n) {
				close(all)
			}
		}, jetstream.PullMaxMessages(cfg.Batch))
		if err != nil {
			b.Fatal(err)
		}
		defer consuming.Stop()
	}
	start := time.Now()
	publishChanges(b, js, "bare", n)
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("bare: %d of %d changes acknowledged within a minute", acked.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishChanges publishes n changes to prefix.<key> over 256 keys in
// turn, up to a thousand unconfirmed at a time.
func publishChanges(b *testing.B, js jetstream.JetStream, prefix string, n int) {
	b.Helper()
	subjects := make([]string, 256)
	for i := range subjects {
		subjects[i] = prefix + ".key-" + strconv.Itoa(i)
	}
	for i := range n {
		if _, err := js.PublishAsync(subjects[i%len(subjects)], []byte("change")); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
}
