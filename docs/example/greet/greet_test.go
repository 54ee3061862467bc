package greet_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/docs/example/greet"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

func TestGreet(t *testing.T) {
	tests := []struct {
		name          string
		data          string
		wantPermanent bool   // else success
		wantLogged    string // the name in the log line, on success
	}{
		{"a name", `{"name":"Ada"}`, false, "Ada"},
		{"blanks trimmed", `{"name":"  Grace "}`, false, "Grace"},
		{"100 characters, not bytes", `{"name":"` + strings.Repeat("é", 100) + `"}`, false, strings.Repeat("é", 100)},
		{"unknown fields ignored", `{"name":"Alan","lang":"en"}`, false, "Alan"},
		{"malformed JSON", `{"name":`, true, ""},
		{"not an object", `["Ada"]`, true, ""},
		{"no name", `{}`, true, ""},
		{"blank name", `{"name":"  "}`, true, ""},
		{"name too long", `{"name":"` + strings.Repeat("x", 101) + `"}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			err := greet.Greet(logs.logger())(context.Background(), queue.Message{Subject: "jobs.greet", Data: []byte(tt.data), Attempt: 1})
			if tt.wantPermanent {
				if !queue.IsPermanent(err) {
					t.Fatalf("Greet(%s) = %v, want a permanent error", tt.data, err)
				}
				if n := len(logs.records(t)); n != 0 {
					t.Errorf("Greet(%s) logged %d records, want none for bad input", tt.data, n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Greet(%s) = %v, want nil", tt.data, err)
			}
			recs := logs.records(t)
			if len(recs) != 1 || recs[0]["msg"] != "hello" || recs[0]["name"] != tt.wantLogged {
				t.Fatalf("Greet(%s) logged %v, want one hello with name %q", tt.data, recs, tt.wantLogged)
			}
		})
	}
}

// The handler as the worker runs it: a real JetStream on loopback, the queue
// processor, and jobs published the way `worker publish` does.
func TestGreetOnTheQueue(t *testing.T) {
	eng := enginetest.Start(t, "", "127.0.0.1:0", nil)
	reg := prometheus.NewRegistry()
	metrics, err := queue.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := queue.DefaultConfig()
	cfg.Backoff, cfg.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	q, err := queue.New(eng, cfg, slog.New(slog.DiscardHandler), metrics)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := logs.logger()
	q.Handle("jobs.greet", greet.Greet(log))
	run(t, q)

	pub, err := natsclient.NewPublisher(eng.ClientURL(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	for _, data := range []string{`{"name":"Ada"}`, `{"name":""}`} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := pub.Publish(ctx, "jobs.greet", []byte(data))
		cancel()
		if err != nil {
			t.Fatalf("publish %s: %v", data, err)
		}
	}

	enginetest.Eventually(t, "one job ok and one in the DLQ", func() bool {
		return count(t, reg, queue.ResultOK) == 1 && count(t, reg, queue.ResultDLQ) == 1
	})
	if got := count(t, reg, queue.ResultRetry); got != 0 {
		t.Errorf("retries = %v, want 0: bad input is permanent", got)
	}
	if recs := logs.records(t); len(recs) != 1 || recs[0]["name"] != "Ada" {
		t.Errorf("greetings logged = %v, want one for Ada", recs)
	}
	stream, err := eng.JetStream().Stream(context.Background(), queue.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := stream.GetLastMsgForSubject(context.Background(), queue.DLQPrefix+"jobs.greet")
	if err != nil {
		t.Fatalf("no dead letter for jobs.greet: %v", err)
	}
	if got, want := dead.Header.Get(queue.HeaderAttempts), "1"; got != want {
		t.Errorf("dead letter attempts = %q, want %q", got, want)
	}
	if got := dead.Header.Get(queue.HeaderError); !strings.Contains(got, "name has 0 characters") {
		t.Errorf("dead letter error = %q, want the validation error", got)
	}
}

// run starts q and stops it when the test ends, before the engine.
func run(tb testing.TB, q *queue.Processor) {
	tb.Helper()
	if err := q.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(tb, "queue", q.Stop) })
}

func stop(tb testing.TB, what string, f func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.Errorf("stop %s: %v", what, err)
	}
}

// count reads worker_messages_processed_total for jobs.greet and result.
func count(tb testing.TB, reg *prometheus.Registry, result string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "worker_messages_processed_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["subject"] == "jobs.greet" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// logBuffer collects JSON log records; handlers log from the processor's
// goroutines while the test reads.
type logBuffer struct{ runtest.Buffer }

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(b, nil)) }

func (b *logBuffer) records(tb testing.TB) []map[string]any {
	tb.Helper()
	var recs []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Fatalf("log line %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	return recs
}
