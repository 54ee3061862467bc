package web_test

import (
	"errors"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

func TestConfigDeclaresHTTPKeysWithDefaults(t *testing.T) {
	var hc web.Config
	c := host.NewConfig()
	hc.Declare(c, ":8080", "HTTP listen address")
	if err := c.Load(nil, []string{"HTTP__READ_TIMEOUT=5s", "HTTP__MAX_IN_FLIGHT=7"}); err != nil {
		t.Fatal(err)
	}
	if hc.Addr != ":8080" || hc.ReadTimeout.String() != "5s" || hc.MaxInFlight != 7 {
		t.Errorf("loaded %+v, want :8080, 5s, 7", hc)
	}
}

// TestConfigRejectsAddressesThatCannotListen: a bad address used to pass
// the configuration and fail at listen time with exit 1.
func TestConfigRejectsAddressesThatCannotListen(t *testing.T) {
	for _, addr := range []string{":99999", ":-1", "8080", ":http", "localhost:", "[::1:80", ""} {
		var hc web.Config
		c := host.NewConfig()
		hc.Declare(c, ":8080", "")
		err := c.Load([]string{"--http.addr=" + addr}, nil)
		ce, ok := errors.AsType[*host.ConfigError](err)
		if !ok || ce.Key != "http.addr" {
			t.Errorf("http.addr=%q: Load = %v, want a ConfigError naming http.addr", addr, err)
		}
	}
	for _, addr := range []string{":8080", "127.0.0.1:0", "[::1]:65535", "localhost:80"} {
		var hc web.Config
		c := host.NewConfig()
		hc.Declare(c, ":8080", "")
		if err := c.Load([]string{"--http.addr=" + addr}, nil); err != nil {
			t.Errorf("http.addr=%q: Load = %v, want it accepted", addr, err)
		}
	}
}
