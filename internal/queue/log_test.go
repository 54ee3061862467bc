package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

// syncBuffer is the processor's JSON log, written by its goroutines while
// the test reads it.
type syncBuffer struct{ runtest.Buffer }

// jobLines returns the decoded "job" lines written so far.
func (b *syncBuffer) jobLines(tb testing.TB) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace([]byte(b.String())), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			tb.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "job" {
			lines = append(lines, m)
		}
	}
	return lines
}

// Every handled job logs one line at info, whatever its outcome, with the fields the fault suite and operators rely on.
func TestEveryHandledJobLogsOneLine(t *testing.T) {
	e := startEngine(t)
	cfg := fastConfig()
	cfg.MaxDeliver = 2
	var out syncBuffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := newProcessorLogging(t, e, cfg, log)
	p.Handle("jobs.log", func(_ context.Context, msg queue.Message) error {
		if string(msg.Data) == "fail" {
			return errors.New("boom")
		}
		return nil
	})
	ensureStreams(t, e)
	for id, body := range map[string]string{"job-ok": "ok", "job-bad": "fail"} {
		m := nats.NewMsg("jobs.log")
		m.Header.Set(nats.MsgIdHdr, id)
		m.Data = []byte(body)
		if _, err := e.JetStream().PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	p.run(t)
	eventually(t, "3 job lines", func() bool { return len(out.jobLines(t)) == 3 })

	got := map[string][]string{}
	for _, l := range out.jobLines(t) {
		for _, k := range []string{"subject", "msg_id", "seq", "attempt", "took", "outcome"} {
			if _, ok := l[k]; !ok {
				t.Errorf("job line %v lacks %q", l, k)
			}
		}
		if _, err := time.ParseDuration(fmt.Sprint(l["took"])); err != nil {
			t.Errorf("took = %v: %v, want a duration as the host logs it", l["took"], err)
		}
		if l["subject"] != "jobs.log" {
			t.Errorf("subject = %v, want jobs.log", l["subject"])
		}
		got[l["msg_id"].(string)] = append(got[l["msg_id"].(string)], l["outcome"].(string))
		if l["level"] != "INFO" {
			t.Errorf("job line at %v, want INFO", l["level"])
		}
	}
	if want := []string{"done"}; !equalStrings(got["job-ok"], want) {
		t.Errorf("outcomes of job-ok = %v, want %v", got["job-ok"], want)
	}
	if want := []string{"retry", "dead-lettered"}; !equalStrings(got["job-bad"], want) {
		t.Errorf("outcomes of job-bad = %v, want %v", got["job-bad"], want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
