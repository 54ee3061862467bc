package changefeed_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/runtest"
)

// BenchmarkProcessor measures changes per second through one processor,
// from publication to acknowledgement, with a handler that does nothing,
// and the CPU time the whole process (publisher, server and processor)
// spends per change: on a shared machine the wall-clock figure swings with
// the neighbours' load, the CPU figure much less.
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

			subjects := make([]string, 256)
			for i := range subjects {
				subjects[i], _ = changefeed.Subject(fmt.Sprintf("key-%d", i))
			}
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := range b.N {
				if _, err := js.PublishAsync(subjects[i%len(subjects)], []byte("change")); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					<-js.PublishAsyncComplete()
				}
			}
			<-js.PublishAsyncComplete()
			select {
			case <-all:
			case <-time.After(time.Minute):
				b.Fatalf("handled %d of %d changes within a minute", handled.Load(), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/change")
		})
	}
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
