// Package ping is the ping API: GET /pingpong/ping answers "Pong", after an
// optional delay that makes it a handy slow request for shutdown and rollout
// tests, and POST /pingpong/jobs hands a job to a queue through Publisher.
// The handlers know nothing of NATS or of the host; they are plain
// http.Handlers made by functions that take what they need.
package ping

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hostkit/hostkit/internal/web"
)

// DefaultMaxDelay is ping.max_delay's default: the longest delay a ping may ask for.
const DefaultMaxDelay = 60 * time.Second

// ParseDelay parses the delay query value s, a Go duration such as "35s" or
// "600ms". Empty means no delay. A delay that does not parse, is negative, or
// exceeds max is an error that says which.
func ParseDelay(s string, max time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 250ms or 5s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	if d > max {
		return 0, fmt.Errorf("%q exceeds the maximum of %s", s, max)
	}
	return d, nil
}

// handlePing answers "Pong", after the delay the query asks for. The wait
// follows the request context, so a client that gives up frees the handler
// at once; the shutdown signal does not cancel it, so a draining server
// still answers the requests it accepted.
func handlePing(maxDelay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, err := delayOf(r.URL.RawQuery, maxDelay)
		if err != nil {
			web.WriteError(w, r, web.Invalid(err))
			return
		}
		if d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Pong")
	}
}

// delayOf reads the delay parameter from a raw query. The query is parsed
// strictly: a malformed query or a repeated delay is the client's mistake,
// not something to guess about.
func delayOf(rawQuery string, maxDelay time.Duration) (time.Duration, error) {
	if rawQuery == "" {
		return 0, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, fmt.Errorf("malformed query: %w", err)
	}
	vals := q["delay"]
	switch len(vals) {
	case 0:
		return 0, nil
	case 1:
		d, err := ParseDelay(vals[0], maxDelay)
		if err != nil {
			return 0, fmt.Errorf("delay: %w", err)
		}
		return d, nil
	}
	return 0, errors.New("delay: give it at most once")
}
