package main_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/runtest"
)

// A worker whose NATS server stops answering (frozen, or behind a partition
// that drops packets) must still stop promptly on SIGTERM: every part of its
// stop (change feed, queue, connection) gives a silent server a short bound,
// not the whole host.shutdown_timeout (30 s by default), which the worker
// took before. It exits 1, as a stop that could not record its work must.
func TestSIGTERMWithNATSSilentExitsPromptly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the worker binary; not in the -short tier")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	e := enginetest.Start(t, "", "127.0.0.1:0", nil)
	sil, silenced := runtest.SilenceURL(t, e.ClientURL())
	inst := start(ctx, t, "--nats.url="+silenced, "--changefeed.instance=test", "--changefeed.fetch_wait=100ms",
		"--queue.stop_confirm_wait=1s")
	runtest.Poll(ctx, t, "the change feed holding leases", func() bool { return len(records(inst, "change feed lease acquired")) > 0 })

	sil.Silence(nil)
	began := time.Now()
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := inst.Wait(ctx)
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	// The change feed's ping (2 s) and graces (about 2 s), the queue's
	// stop_confirm_wait (1 s), the connection's ping (2 s), and slack.
	if bound := 12 * time.Second; took > bound {
		t.Errorf("SIGTERM to exit took %s with NATS silent, want within %s", took.Round(time.Millisecond), bound)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the stop could not record its work)", code)
	}
	t.Logf("SIGTERM to exit with NATS silent: %s, exit code %d", took.Round(time.Millisecond), code)
}
