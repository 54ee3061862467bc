package natsclient_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
)

// BenchmarkPublishBatchVsOneByOne publishes the same jobs into JOBS on an
// embedded server on loopback one at a time (waiting for each
// acknowledgement, as `worker publish` did) and with PublishBatch (a window
// of 256 unacknowledged, every acknowledgement checked), and reports both
// rates and their ratio.
//
//	go test -run '^$' -bench PublishBatchVsOneByOne -benchtime 50000x ./internal/natsclient
func BenchmarkPublishBatchVsOneByOne(b *testing.B) {
	e := enginetest.Start(b, "", "127.0.0.1:0", nil)
	ensureStreams(b, e)
	p := newPublisher(b, e.ClientURL())
	enginetest.Eventually(b, "publisher connected", func() bool { return p.Ready() == nil })
	body := []byte(`{"id":"bench","work":"0s"}`)
	msg := func(prefix string) func(i int) *nats.Msg {
		return func(i int) *nats.Msg {
			m := nats.NewMsg("jobs.bench")
			m.Header.Set(nats.MsgIdHdr, prefix+strconv.Itoa(i))
			m.Data = body
			return m
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	began := time.Now()
	one := msg("one-")
	for i := range b.N {
		if _, err := p.PublishMsg(ctx, one(i)); err != nil {
			b.Fatal(err)
		}
	}
	oneByOne := time.Since(began)
	began = time.Now()
	res, err := p.PublishBatch(ctx, b.N, 256, 10*time.Second, msg("batch-"))
	if err != nil || res.Stored != b.N {
		b.Fatalf("PublishBatch = %+v, %v", res, err)
	}
	batch := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/oneByOne.Seconds(), "one_by_one_msgs/s")
	b.ReportMetric(float64(b.N)/batch.Seconds(), "batch_msgs/s")
	b.ReportMetric(oneByOne.Seconds()/batch.Seconds(), "speedup")
}
