package host_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// testConfig declares the host's keys plus one of each kind a program uses.
type testConfig struct {
	host.HostConfig
	Addr    string
	Workers int
	Sync    bool
}

func newTestConfig() (*testConfig, *host.Config) {
	tc := &testConfig{}
	c := host.NewConfig()
	tc.Declare(c)
	c.String(&tc.Addr, "http.addr", ":8080", "listen address")
	c.Int(&tc.Workers, "queue.concurrency", 4, "handlers at once")
	c.Bool(&tc.Sync, "nats.sync_always", false, "fsync every write")
	return tc, c
}

func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestConfigLayersOverrideInOrder(t *testing.T) {
	file := writeFile(t, "host:\n  shutdown_timeout: 40s\n  shutdown_delay: 2s\n  startup_timeout: 9s\nqueue:\n  concurrency: 8\n")
	tests := []struct {
		name     string
		args     []string
		env      []string
		want     time.Duration // host.shutdown_timeout
		wantConc int
	}{
		{"defaults", nil, nil, 30 * time.Second, 4},
		{"file over defaults", []string{"--config", file}, nil, 40 * time.Second, 8},
		{"env over file", []string{"--config", file}, []string{"HOST__SHUTDOWN_TIMEOUT=45s", "QUEUE__CONCURRENCY=2"}, 45 * time.Second, 2},
		{"flag over env", []string{"--config", file, "--host.shutdown_timeout=50s"}, []string{"HOST__SHUTDOWN_TIMEOUT=45s"}, 50 * time.Second, 8},
		{"flag without file", []string{"-host.shutdown_timeout", "1m"}, nil, time.Minute, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, c := newTestConfig()
			if err := c.Load(tt.args, tt.env); err != nil {
				t.Fatalf("Load = %v", err)
			}
			if got := tc.ShutdownTimeout; got != tt.want {
				t.Errorf("host.shutdown_timeout = %v, want %v", got, tt.want)
			}
			if got := tc.Workers; got != tt.wantConc {
				t.Errorf("queue.concurrency = %v, want %v", got, tt.wantConc)
			}
		})
	}
}

func TestConfigReadsEveryKind(t *testing.T) {
	tc, c := newTestConfig()
	env := []string{
		"PATH=/usr/bin", "HOME=/root", "SHUTDOWN_TIMEOUT=bogus", // no "__": never read
		"__CF_USER_TEXT_ENCODING=0x0", "OTHER__TOOL_SETTING=x", // not our sections: never read
		"HOST__SHUTDOWN_DELAY=5s", "LOG__LEVEL=debug", "LOG__FORMAT=json", "HTTP__ADDR=127.0.0.1:9",
	}
	if err := c.Load([]string{"--nats.sync_always"}, env); err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := testConfig{
		HostConfig: host.HostConfig{ShutdownTimeout: 30 * time.Second, ShutdownDelay: 5 * time.Second, LogLevel: "debug", LogFormat: "json"},
		Addr:       "127.0.0.1:9", Workers: 4, Sync: true,
	}
	if *tc != want {
		t.Fatalf("config = %+v, want %+v", *tc, want)
	}
	if got, want := c.Effective()["host.shutdown_delay"], "5s"; got != want {
		t.Fatalf("Effective()[host.shutdown_delay] = %q, want %q", got, want)
	}
	if got, want := c.Ignored(), []string{"OTHER__TOOL_SETTING"}; !slices.Equal(got, want) {
		t.Fatalf("Ignored() = %q, want %q (reported, not read)", got, want)
	}
}

func TestConfigRejectsInvalidValuesNamingKeyAndValue(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		file string
		want []string // substrings of the error
	}{
		{"unparsable duration in env", nil, []string{"HOST__SHUTDOWN_TIMEOUT=soon"}, "",
			[]string{"host.shutdown_timeout", `"soon"`, "env HOST__SHUTDOWN_TIMEOUT", "not a duration"}},
		{"duration without unit in file", nil, nil, "host:\n  shutdown_delay: 30\n",
			[]string{"host.shutdown_delay", `"30"`, "not a duration"}},
		{"negative timeout flag", []string{"--host.shutdown_timeout=-1s"}, nil, "",
			[]string{"host.shutdown_timeout", `"-1s"`, "flag", "negative"}},
		{"negative startup timeout", nil, []string{"HOST__STARTUP_TIMEOUT=-5s"}, "",
			[]string{"host.startup_timeout", "negative"}},
		{"unknown log level", nil, []string{"LOG__LEVEL=verbose"}, "",
			[]string{"log.level", `"verbose"`, "debug, info, warn, error"}},
		{"unknown log format", []string{"--log.format=xml"}, nil, "",
			[]string{"log.format", `"xml"`}},
		{"not a number", nil, []string{"QUEUE__CONCURRENCY=four"}, "",
			[]string{"queue.concurrency", `"four"`, "whole number"}},
		{"not a bool", nil, []string{"NATS__SYNC_ALWAYS=maybe"}, "",
			[]string{"nats.sync_always", `"maybe"`}},
		{"unknown key in env", nil, []string{"HOST__SHUTDOWN_TIMOUT=5s"}, "",
			[]string{"host.shutdown_timout", "unknown key", "env HOST__SHUTDOWN_TIMOUT"}},
		{"unknown key in file", nil, nil, "hots:\n  shutdown_timeout: 5s\n",
			[]string{"hots.shutdown_timeout", "unknown key", "file "}},
		{"section where a value belongs", nil, nil, "http: 5\n",
			[]string{"http", "unknown key"}},
		{"unknown flag", []string{"--nope=1"}, nil, "",
			[]string{"command line", "nope"}},
		{"stray argument", []string{"extra"}, nil, "",
			[]string{"unexpected argument", "extra"}},
		{"missing config file", []string{"--config", "/nonexistent/hostkit.yaml"}, nil, "",
			[]string{"config", "/nonexistent/hostkit.yaml"}},
		{"malformed YAML", nil, nil, "host: [\n", []string{"config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newTestConfig()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, tt.file)}, args...)
			}
			err := c.Load(args, tt.env)
			if err == nil {
				t.Fatal("Load = nil, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if got, want := host.ExitCode(err), host.ExitUsage; got != want {
				t.Errorf("ExitCode = %d, want %d", got, want)
			}
		})
	}
}

func TestConfigCheckNamesTheKey(t *testing.T) {
	var ttl, renew time.Duration
	c := host.NewConfig()
	c.Duration(&ttl, "changefeed.lease_ttl", 30*time.Second, "")
	c.Duration(&renew, "changefeed.renew_interval", 10*time.Second, "")
	c.Check(func() error {
		if renew >= ttl {
			return c.Invalid("changefeed.renew_interval", "must be shorter than changefeed.lease_ttl")
		}
		return nil
	})
	err := c.Load(nil, []string{"CHANGEFEED__RENEW_INTERVAL=1m"})
	var ce *host.ConfigError
	if !errors.As(err, &ce) || ce.Key != "changefeed.renew_interval" || ce.Value != "1m0s" {
		t.Fatalf("Load = %v, want a ConfigError for changefeed.renew_interval = 1m0s", err)
	}
}

func TestConfigHelp(t *testing.T) {
	_, c := newTestConfig()
	if err := c.Load([]string{"-h"}, nil); !errors.Is(err, host.ErrHelp) {
		t.Fatalf("Load(-h) = %v, want ErrHelp", err)
	}
	var b strings.Builder
	c.Usage(&b, "pingapi")
	for _, want := range []string{"host.shutdown_timeout", "HOST__SHUTDOWN_TIMEOUT", "30s", "QUEUE__CONCURRENCY"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage does not mention %q:\n%s", want, b.String())
		}
	}
}
