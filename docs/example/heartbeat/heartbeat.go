// Package heartbeat publishes this instance's heartbeat on the change feed:
// every Config.Every, a small JSON document (Beat) on changes.<instance>.
// The feed keeps each key's changes in order, so a consumer sees every
// instance's beats one after the other, and an instance whose beats stop is
// gone.
//
// The heartbeat is a background service: New returns a host.BackgroundFunc
// that beats until the host stops it. A beat that cannot be published is
// logged and the next one tried: NATS being away for a while is no reason
// to stop the process, and readiness already reports it.
package heartbeat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/host"
)

// Config holds the heartbeat.* settings.
type Config struct {
	// Instance names this replica and is the change key of its beats: one
	// subject token, so no dots or blanks. Kubernetes pod names qualify.
	Instance string
	// Every is the time between two beats.
	Every time.Duration
}

// DefaultConfig returns the defaults: the host name up to its first dot
// (the pod name in Kubernetes), a beat every 10 seconds.
func DefaultConfig() Config {
	name, _ := os.Hostname() // empty on failure; New then asks for an instance
	name, _, _ = strings.Cut(name, ".")
	return Config{Instance: name, Every: 10 * time.Second}
}

// Publisher stores a message on a subject; *natsclient.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// Beat is the payload of one heartbeat.
type Beat struct {
	Instance string `json:"instance"`
	// Seq counts the beats since the process started, from 1. It grows for
	// beats that failed too, so a gap shows a lost beat.
	Seq int       `json:"seq"`
	At  time.Time `json:"at"`
}

// New returns the heartbeat as a background service publishing through pub.
// It beats once at start, then every cfg.Every.
func New(pub Publisher, cfg Config, log *slog.Logger) (host.BackgroundFunc, error) {
	subject, err := changefeed.Subject(cfg.Instance)
	if err != nil {
		return nil, fmt.Errorf("heartbeat.instance: %w", err)
	}
	if cfg.Every <= 0 {
		return nil, fmt.Errorf("heartbeat.every = %s: must be positive", cfg.Every)
	}
	return func(ctx context.Context) error {
		tick := time.NewTicker(cfg.Every)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			// Marshal cannot fail on these field types.
			data, _ := json.Marshal(Beat{Instance: cfg.Instance, Seq: seq, At: time.Now().UTC()})
			// A beat is worthless once the next one is due: give up on it then.
			pctx, cancel := context.WithTimeout(ctx, cfg.Every)
			err := pub.Publish(pctx, subject, data)
			cancel()
			switch {
			case ctx.Err() != nil:
				return nil // stopped while publishing
			case err != nil:
				log.WarnContext(ctx, "heartbeat not published; trying again next beat", "seq", seq, "err", err)
			default:
				log.DebugContext(ctx, "heartbeat", "subject", subject, "seq", seq)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}, nil
}
