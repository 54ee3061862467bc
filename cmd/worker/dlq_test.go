package main_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/runtest"
)

// runDLQ runs `worker dlq args...` and checks its exit code.
func runDLQ(ctx context.Context, tb testing.TB, wantCode int, args ...string) string {
	tb.Helper()
	return runSub(ctx, tb, "dlq", wantCode, args...)
}

func TestDLQListAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker and NATS processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inst := start(ctx, t, testArgs(filepath.Join(t.TempDir(), "nats"), "--queue.max_deliver=1")...)
	url := natsURL(t, inst)
	js := connect(t, url)

	if out := runDLQ(ctx, t, 0, "list", "--url", url); !strings.Contains(out, "0 dead letter(s)") {
		t.Fatalf("list of an empty DLQ = %q", out)
	}
	runPublish(ctx, t, 0, "--url", url, "--id", "bad-{{n}}", "--count", "3", "jobs.ping", `not json {{n}}`)
	runtest.Poll(ctx, t, "3 dead letters", func() bool { return streamMsgs(t, js, queue.DLQStream) == 3 })

	out := runDLQ(ctx, t, 0, "list", "--url", url)
	for _, want := range []string{"bad-1", "bad-2", "bad-3", "jobs.ping", "malformed JSON", "3 dead letter(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}

	// One by id: it goes back to jobs.ping, fails again (max_deliver=1) and
	// comes back to the DLQ as a new dead letter.
	out = runDLQ(ctx, t, 0, "replay", "--url", url, "bad-2")
	if !strings.Contains(out, "1 dead letter(s) replayed") {
		t.Fatalf("replay output = %q", out)
	}
	runtest.Poll(ctx, t, "the replayed job handled", func() bool {
		for _, rec := range jobRecords(inst, "dead-lettered") {
			if strings.HasPrefix(rec["msg_id"].(string), "replay-") && strings.HasSuffix(rec["msg_id"].(string), "-bad-2") {
				return true
			}
		}
		return false
	})
	runtest.Poll(ctx, t, "3 dead letters again", func() bool { return streamMsgs(t, js, queue.DLQStream) == 3 })

	runDLQ(ctx, t, 1, "replay", "--url", url, "no-such-id")
	runDLQ(ctx, t, 2, "replay", "--url", url)
	runDLQ(ctx, t, 2, "replay", "--url", "", "--all")

	out = runDLQ(ctx, t, 0, "replay", "--url", url, "--all")
	if !strings.Contains(out, "3 dead letter(s) replayed") {
		t.Fatalf("replay --all output = %q", out)
	}
	// 3 at first, bad-2 replayed alone, then the 3 replayed together.
	runtest.Poll(ctx, t, "7 dead-letterings in all", func() bool { return len(jobRecords(inst, "dead-lettered")) == 7 })
}
