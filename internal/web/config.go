package web

import (
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// Config holds the http.* keys every binary serving HTTP has.
type Config struct {
	Addr        string
	ReadTimeout time.Duration
	MaxInFlight int
}

// Declare declares the http.* keys on c, with the binary's own default
// address, and checks at load time that the address can be listened on.
func (hc *Config) Declare(c *host.Config, defaultAddr, addrHelp string) {
	c.String(&hc.Addr, "http.addr", defaultAddr, addrHelp)
	c.Duration(&hc.ReadTimeout, "http.read_timeout", DefaultReadTimeout,
		"how long a handler waits for a request body before it fails with 408; handlers may extend it; 0: no bound")
	c.Int(&hc.MaxInFlight, "http.max_in_flight", DefaultMaxInFlight,
		"requests served at once; past it 503 with Retry-After (probes and /metrics exempt); 0: no bound")
	c.Check(func() error {
		if err := checkAddr(hc.Addr); err != nil {
			return c.Invalid("http.addr", err.Error())
		}
		return nil
	})
}

// checkAddr accepts host:port with a numeric port 0-65535 (0 picks a free
// one); the host may be empty (every interface).
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port (e.g. :8080, 127.0.0.1:8080, [::1]:8080)")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}
