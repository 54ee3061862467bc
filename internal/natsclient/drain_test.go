package natsclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/runtest"
)

// Drain runs at shutdown, within the host's one deadline. With a server that
// answers it delivers what was published just before; with one that stopped
// answering (frozen, or behind a partition that drops packets) while the
// connection stays up, it must give up within natsclient.SilentBound rather
// than hold the shutdown until the deadline: nats.go's own drain waits a
// 10 s flush per step for such a server.
func TestDrainDeliversOrGivesUpOnASilentServer(t *testing.T) {
	if testing.Short() {
		t.Skip("silences a NATS server")
	}
	for _, silent := range []bool{false, true} {
		name := map[bool]string{false: "server answering", true: "server silent"}[silent]
		t.Run(name, func(t *testing.T) {
			e := enginetest.Start(t, "", "127.0.0.1:0", nil)
			sil, silenced := runtest.SilenceURL(t, e.ClientURL())
			nc, err := nats.Connect(silenced, nats.MaxReconnects(-1))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			watcher, err := nats.Connect(e.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close()
			got, err := watcher.SubscribeSync("drain.test")
			if err != nil {
				t.Fatal(err)
			}
			if err := watcher.Flush(); err != nil {
				t.Fatal(err)
			}
			// A subscription of its own, for the drain to take down.
			if _, err := nc.SubscribeSync("drain.own"); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if silent {
				sil.Silence(nil)
			}
			if err := nc.Publish("drain.test", []byte("last words")); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err = natsclient.Drain(ctx, nc)
			took := time.Since(start)

			if !nc.IsClosed() {
				t.Error("the connection is still open after Drain")
			}
			if !silent {
				if err != nil {
					t.Errorf("Drain = %v, want nil", err)
				}
				if _, err := got.NextMsg(5 * time.Second); err != nil {
					t.Errorf("the message published before Drain did not arrive: %v", err)
				}
				return
			}
			if err == nil {
				t.Error("Drain = nil, want an error saying the server does not answer")
			}
			if bound := natsclient.SilentBound + time.Second; took > bound {
				t.Errorf("Drain took %s with the server silent, want within %s", took.Round(time.Millisecond), bound)
			}
			t.Logf("Drain gave up after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}
