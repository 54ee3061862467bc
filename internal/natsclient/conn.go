// Package natsclient connects to NATS and publishes into JetStream streams,
// without the NATS server: programs that only publish (pingapi, worker
// publish) link this and not the embedded engine, which keeps them small.
package natsclient

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Dial connects to the NATS servers at url and keeps reconnecting for as long
// as the connection is open. It does not fail when no server is reachable:
// the connection then starts in the reconnecting state. name labels the
// connection on the server.
func Dial(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(2*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		ErrorHandler(log),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(url), err)
	}
	return nc, nil
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

// Drain lets publishes and acknowledgements still in flight reach the server,
// then closes nc; it closes at once when ctx ends first or when nc is not
// connected (there is nothing to flush then).
func Drain(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
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
