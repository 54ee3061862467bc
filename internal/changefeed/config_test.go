package changefeed_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/changefeed"
)

func TestDefaultConfig(t *testing.T) {
	cfg := changefeed.DefaultConfig()
	cfg.Instance = "pod-0" // the default, the host name, may be empty in a sandbox
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if got, want := cfg.Partitions, 16; got != want {
		t.Errorf("Partitions = %d, want %d", got, want)
	}
	if got, want := cfg.LeaseTTL, 30*time.Second; got != want {
		t.Errorf("LeaseTTL = %s, want %s", got, want)
	}
	if got, want := cfg.RenewInterval, 10*time.Second; got != want {
		t.Errorf("RenewInterval = %s, want %s", got, want)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name   string
		change func(*changefeed.Config)
		key    string
	}{
		{"no instance", func(c *changefeed.Config) { c.Instance = "" }, "changefeed.instance"},
		{"no partitions", func(c *changefeed.Config) { c.Partitions = 0 }, "changefeed.partitions"},
		{"too many partitions", func(c *changefeed.Config) { c.Partitions = 5000 }, "changefeed.partitions"},
		{"zero ttl", func(c *changefeed.Config) { c.LeaseTTL = 0 }, "changefeed.lease_ttl"},
		{"renew equal to ttl", func(c *changefeed.Config) { c.RenewInterval = c.LeaseTTL }, "changefeed.renew_interval"},
		{"renew above ttl", func(c *changefeed.Config) { c.RenewInterval = 2 * c.LeaseTTL }, "changefeed.renew_interval"},
		{"zero renew", func(c *changefeed.Config) { c.RenewInterval = 0 }, "changefeed.renew_interval"},
		{"unknown start", func(c *changefeed.Config) { c.StartFrom = "yesterday" }, "changefeed.start_from"},
		{"zero ack wait", func(c *changefeed.Config) { c.AckWait = 0 }, "changefeed.ack_wait"},
		{"negative retry", func(c *changefeed.Config) { c.RetryDelay = -time.Second }, "changefeed.retry_delay"},
		{"zero fetch wait", func(c *changefeed.Config) { c.FetchWait = 0 }, "changefeed.fetch_wait"},
		{"tiny max age", func(c *changefeed.Config) { c.MaxAge = time.Millisecond }, "changefeed.max_age"},
		{"no replicas", func(c *changefeed.Config) { c.Replicas = 0 }, "nats.replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("pod-0")
			tt.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.key)
			}
			if _, err := changefeed.New(cfg, func() jetstream.JetStream { return nil }, ignore, nil, nil); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestStartWithoutJetStreamFails(t *testing.T) {
	p, err := changefeed.New(testConfig("pod-0"), func() jetstream.JetStream { return nil }, ignore, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded without a JetStream connection")
	}
	if err := p.Ready(); err == nil {
		t.Fatal("Ready after a failed Start = nil, want an error")
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"order-42", "changes.order-42", true},
		{"", "", false},
		{"a.b", "", false},
		{"a*", "", false},
		{">", "", false},
		{"a b", "", false},
	}
	for _, tt := range tests {
		got, err := changefeed.Subject(tt.key)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Subject(%q) = %q, %v; want %q, ok=%v", tt.key, got, err, tt.want, tt.ok)
		}
	}
}
