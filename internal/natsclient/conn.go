// Package natsclient connects to NATS and publishes into JetStream streams,
// without the NATS server: programs that only publish (pingapi, worker
// publish) link this and not the embedded engine, which keeps them small.
//
// Connections ping the server every Options.PingInterval and give it up as
// stale after Options.MaxPingsOutstanding unanswered pings, then reconnect to
// another server of the cluster: a server that stops answering (frozen,
// partitioned) is left within PingInterval × (MaxPingsOutstanding+1), 6 s
// with the defaults, plus the reconnect itself. nats.go's own defaults (2
// minutes, 2 pings) would leave a program on a silent server for minutes.
package natsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Defaults of the nats.ping_interval and nats.max_pings_outstanding keys.
const (
	DefaultPingInterval        = 2 * time.Second
	DefaultMaxPingsOutstanding = 2
)

// Options tune a connection. The zero value of a field means its default.
type Options struct {
	// Name labels the connection on the server.
	Name string
	// PingInterval is how often the client pings the server.
	PingInterval time.Duration
	// MaxPingsOutstanding is how many pings may go unanswered before the
	// connection is given up as stale and another server is tried.
	MaxPingsOutstanding int
	// OnStatus, if set, is called with every change of the connection's
	// status (connected, reconnecting, closed...), e.g. to export it.
	OnStatus func(nats.Status)
}

// StaleAfter is the longest a connection stays on a server that stopped
// answering, before the reconnect: every PingInterval a ping goes out, and
// one more than MaxPingsOutstanding unanswered gives the server up.
func (o Options) StaleAfter() time.Duration {
	o = o.withDefaults()
	return time.Duration(o.MaxPingsOutstanding+1) * o.PingInterval
}

func (o Options) withDefaults() Options {
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.MaxPingsOutstanding <= 0 {
		o.MaxPingsOutstanding = DefaultMaxPingsOutstanding
	}
	return o
}

// Dial connects to the NATS servers at urls and keeps reconnecting for as long
// as the connection is open. It does not fail when no server is reachable:
// the connection then starts in the reconnecting state. It fails for urls
// that are not NATS URLs (see ValidateURL).
func Dial(urls string, o Options, log *slog.Logger) (*nats.Conn, error) {
	if err := ValidateURL(urls); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	status := func(nc *nats.Conn) {
		if o.OnStatus != nil {
			o.OnStatus(nc.Status())
		}
	}
	nc, err := nats.Connect(urls,
		nats.Name(o.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(2*time.Second),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(o.MaxPingsOutstanding),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
			status(nc)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			}
			status(nc)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			status(nc)
		}),
		nats.ClosedHandler(status),
		ErrorHandler(log),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(urls), err)
	}
	status(nc)
	return nc, nil
}

// ValidateURL reports whether urls is a comma-separated list of NATS server
// URLs: nats://, tls://, ws:// or wss:// with a host and, if given, a
// numeric port (a bare host:port means nats://host:port, as in nats.go).
func ValidateURL(urls string) error {
	if strings.TrimSpace(urls) == "" {
		return errors.New("empty: want nats://host:port")
	}
	for part := range strings.SplitSeq(urls, ",") {
		if err := validateOne(strings.TrimSpace(part)); err != nil {
			return fmt.Errorf("%q: %w", RedactURL(part), err)
		}
	}
	return nil
}

func validateOne(s string) error {
	if s == "" {
		return errors.New("empty server in the list")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "nats", "tls":
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("unexpected path %q", u.Path)
		}
	case "ws", "wss":
	default:
		return fmt.Errorf("scheme %q: want nats, tls, ws or wss", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("empty port")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("unexpected query or fragment")
	}
	return nil
}

// ErrorHandler logs asynchronous errors, such as a subscription falling
// behind (slow consumer), which nats.go would otherwise only print.
func ErrorHandler(log *slog.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			log.Warn("NATS subscription error", "subject", sub.Subject, "err", err)
			return
		}
		log.Warn("NATS error", "err", err)
	})
}

// WaitConnected polls the connection state; nats.go offers no single-shot
// notification for the first successful connect of a retrying connection.
func WaitConnected(ctx context.Context, nc *nats.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// RedactURL hides passwords in a comma-separated list of server URLs so that
// it can be logged and put into errors.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a lone user name is a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// SilentBound is how long Ping waits for the server's answer. A healthy
// server answers within milliseconds; a frozen one, or one behind a
// partition that drops packets, never does while the connection stays up,
// and whatever waits for it (nats.go's drain flushes 10 s per step, a
// request its whole timeout) holds a shutdown until its deadline.
const SilentBound = 2 * time.Second

// Errors of Ping.
var (
	// ErrNotConnected: the connection is down (reconnecting or closed).
	ErrNotConnected = errors.New("not connected to NATS")
	// ErrNoAnswer: the connection is up but the server did not answer.
	ErrNoAnswer = errors.New("the NATS server did not answer a ping")
)

// Ping asks nc's server for an answer and waits at most SilentBound, and
// no longer than ctx allows. It returns nil once the server answered,
// ErrNotConnected if the connection is or went down, ErrNoAnswer (wrapped)
// if the server said nothing, or ctx's error.
func Ping(ctx context.Context, nc *nats.Conn) error {
	if !nc.IsConnected() {
		return ErrNotConnected
	}
	pctx, cancel := context.WithTimeout(ctx, SilentBound)
	defer cancel()
	err := nc.FlushWithContext(pctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w within %s", ErrNoAnswer, SilentBound)
	default:
		return ErrNotConnected // the pending ping is dropped when the connection goes down
	}
}

// Drain lets publishes and acknowledgements still in flight reach the server,
// then closes nc; it closes at once when ctx ends first, when nc is not
// connected (there is nothing to flush then), or when the server does not
// answer a ping within SilentBound (nothing would be flushed to it).
func Drain(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	switch err := Ping(ctx, nc); {
	case err == nil:
	case errors.Is(err, ErrNotConnected):
		nc.Close()
		return nil
	default:
		nc.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	if err := nc.Drain(); err != nil {
		nc.Close()
		return nil
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}
