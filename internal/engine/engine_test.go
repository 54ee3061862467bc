package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/runtest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// embeddedConfig is an embedded engine storing in dir and listening on addr
// ("" for in-process only).
func embeddedConfig(dir, addr string) engine.Config {
	cfg := engine.DefaultConfig()
	cfg.StoreDir = dir
	cfg.Addr = addr
	return cfg
}

// start starts an engine and stops it at the end of the test.
func start(tb testing.TB, cfg engine.Config) *engine.Engine {
	tb.Helper()
	e, err := engine.New(cfg, discard())
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if err := e.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { stop(tb, e) })
	return e
}

func stop(tb testing.TB, e *engine.Engine) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		tb.Errorf("Stop: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*engine.Config)
		wantErr string
	}{
		{"default is valid", func(*engine.Config) {}, ""},
		{"in-process only", func(c *engine.Config) { c.Addr = "" }, ""},
		{"external with replicas", func(c *engine.Config) { c.URL = "nats://n1:4222"; c.Replicas = 3; c.StoreDir = "" }, ""},
		{"replicas on embedded", func(c *engine.Config) { c.Replicas = 3 }, "needs an external cluster"},
		{"zero replicas", func(c *engine.Config) { c.Replicas = 0 }, "nats.replicas = 0"},
		{"no store dir", func(c *engine.Config) { c.StoreDir = "" }, "store_dir"},
		{"bad addr", func(c *engine.Config) { c.Addr = "localhost" }, "nats.embedded.addr"},
		{"bad port", func(c *engine.Config) { c.Addr = "127.0.0.1:99999" }, "bad port"},
		{"no connect timeout", func(c *engine.Config) { c.ConnectTimeout = 0 }, "nats.connect_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := engine.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			if _, err := engine.New(cfg, discard()); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestEmbeddedInProcessOnly(t *testing.T) {
	e := start(t, embeddedConfig(t.TempDir(), ""))
	if err := e.Ready(); err != nil {
		t.Fatalf("Ready() = %v, want nil", err)
	}
	if got := e.ClientURL(); got != "" {
		t.Fatalf("ClientURL() = %q, want empty for an in-process server", got)
	}
	if _, err := e.JetStream().CreateStream(context.Background(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("JetStream is not usable: %v", err)
	}
}

func TestEmbeddedListensOnAddr(t *testing.T) {
	e := start(t, embeddedConfig(t.TempDir(), "127.0.0.1:0"))
	url := e.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect from outside the process: %v", err)
	}
	nc.Close()
}

func TestEmbeddedKeepsStreamsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := start(t, embeddedConfig(dir, ""))
	js := first.JetStream()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	stop(t, first)

	second := start(t, embeddedConfig(dir, ""))
	stream, err := second.JetStream().Stream(ctx, "T")
	if err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
	got, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message lost across restart: %v", err)
	}
	if string(got.Data) != "kept" {
		t.Fatalf("message = %q, want %q", got.Data, "kept")
	}
}

func TestEmbeddedPortInUseFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, err := engine.New(embeddedConfig(t.TempDir(), l.Addr().String()), discard())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	err = e.Start(context.Background())
	if err == nil {
		stop(t, e)
		t.Fatal("Start succeeded on a port in use")
	}
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("error %q does not name the address", err)
	}
	// The server's own timeout is 30s; failing well before shows the fatal
	// error was noticed.
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("Start took %s to fail", d)
	}
}

func TestExternalConnectsAndReconnects(t *testing.T) {
	dir := t.TempDir()
	server := start(t, embeddedConfig(dir, "127.0.0.1:0"))
	addr := strings.TrimPrefix(server.ClientURL(), "nats://")

	cfg := engine.DefaultConfig()
	cfg.URL = server.ClientURL()
	client := start(t, cfg)
	if err := client.Ready(); err != nil {
		t.Fatalf("Ready() = %v, want nil", err)
	}
	if got := client.ClientURL(); got != cfg.URL {
		t.Fatalf("ClientURL() = %q, want %q", got, cfg.URL)
	}

	stop(t, server)
	enginetest.Eventually(t, "client to notice the server is gone", func() bool {
		return errors.Is(client.Ready(), engine.ErrNotConnected)
	})

	start(t, embeddedConfig(dir, addr))
	enginetest.Eventually(t, "client to reconnect", func() bool { return client.Ready() == nil })
}

func TestExternalUnreachableFailsStart(t *testing.T) {
	addr := runtest.FreeAddr(t) // nothing listens there

	cfg := engine.DefaultConfig()
	cfg.URL = "nats://user:secret@" + addr
	cfg.ConnectTimeout = 200 * time.Millisecond
	e, err := engine.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(context.Background())
	if err == nil {
		stop(t, e)
		t.Fatal("Start succeeded without a server")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start() = %v, want a deadline error", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the password", err)
	}
	if e.Ready() == nil {
		t.Error("Ready() = nil after a failed start")
	}
}

func TestReadyBeforeStartAndAfterStop(t *testing.T) {
	e, err := engine.New(embeddedConfig(t.TempDir(), ""), discard())
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(e.Ready(), engine.ErrNotConnected) {
		t.Fatalf("Ready() before Start = %v, want ErrNotConnected", e.Ready())
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop(t, e)
	if !errors.Is(e.Ready(), engine.ErrNotConnected) {
		t.Fatalf("Ready() after Stop = %v, want ErrNotConnected", e.Ready())
	}
}
