package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// Check is an optional readiness check, such as "can I reach NATS". Probe
// must return promptly; it gets a context bounded by CheckTimeout.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
	// DegradeOnly makes a failing Probe keep readiness at 200 and name the
	// check in the body as degraded: for a dependency that every replica
	// shares, where taking replicas out of rotation would not help and would
	// take their other endpoints down too.
	DegradeOnly bool
}

// CheckTimeout bounds each readiness check, well inside the few seconds a
// Kubernetes probe waits, so a hung dependency reads as "not ready" rather
// than as a probe timeout.
const CheckTimeout = time.Second

// Live answers 200 whenever the process can serve HTTP at all, including
// during the shutdown delay: liveness failing there would get the pod killed
// instead of drained.
func Live() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeText(w, "live\n")
	}
}

// Ready answers 200 once lt has started and every check passes, and 503 from
// the moment a shutdown is requested (the termination signal, before the
// shutdown delay) so load balancers stop sending new traffic while the
// process still serves what they send meanwhile.
func Ready(lt *host.Lifetime, checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := readiness(r.Context(), lt, checks); err != nil {
			// Neither answer may be cached: a probe must see the state now.
			w.Header().Set("Cache-Control", "no-store")
			WriteError(w, r, Unavailable(err))
			return
		}
		body := "ready\n"
		for _, c := range checks {
			if !c.DegradeOnly {
				continue
			}
			if err := probe(r.Context(), c); err != nil {
				body += fmt.Sprintf("degraded: %s: %v\n", c.Name, err)
			}
		}
		writeText(w, body)
	}
}

// readiness returns why the process is not ready, or nil.
func readiness(ctx context.Context, lt *host.Lifetime, checks []Check) error {
	select {
	case <-lt.ShutdownRequested():
		return errors.New("shutting down")
	default:
	}
	select {
	case <-lt.Started():
	default:
		return errors.New("starting")
	}
	for _, c := range checks {
		if c.DegradeOnly {
			continue
		}
		if err := probe(ctx, c); err != nil {
			return fmt.Errorf("check %s: %w", c.Name, err)
		}
	}
	return nil
}

func probe(ctx context.Context, c Check) error {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	return c.Probe(ctx)
}

func writeText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, body)
}
