package host_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

// TestStopRequestedBeforeOrDuringStartIsDeterministic repeats three ways to
// ask for a stop before the application has started. Once the stop is
// requested no further Start may run and ApplicationStarted must never fire;
// before the fix the start goroutine raced the request and lost a few times
// in a hundred.
func TestStopRequestedBeforeOrDuringStartIsDeterministic(t *testing.T) {
	runs := 1000
	if testing.Short() {
		runs = 100
	}
	tests := []struct {
		name string
		// setup registers the services and returns the context to run with.
		setup func(h *host.Host) context.Context
	}{
		{"StopApplication in a Start", func(h *host.Host) context.Context {
			h.Add("stopper", &svc{name: "stopper", j: &journal{}, start: func(context.Context) error {
				h.Lifetime().StopApplication()
				return nil
			}})
			return context.Background()
		}},
		{"StopApplication before Run", func(h *host.Host) context.Context {
			h.Lifetime().StopApplication()
			return context.Background()
		}},
		{"cancelled context", func(h *host.Host) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			violations := 0
			var first string
			for i := range runs {
				h := host.New(host.Options{Lifetime: host.NewConsoleLifetime(&host.ManualSignals{}, nil)})
				started, fired := false, false
				ctx := tt.setup(h)
				h.Add("next", &svc{name: "next", j: &journal{}, start: func(context.Context) error {
					started = true
					return nil
				}})
				h.Lifetime().OnStarted(func() { fired = true })
				err := h.Run(ctx)
				if started || fired || err != nil {
					violations++
					if first == "" {
						first = fmt.Sprintf("run %d: next started = %v, OnStarted fired = %v, Run = %v", i, started, fired, err)
					}
				}
			}
			if violations != 0 {
				t.Fatalf("%d of %d runs violated the stop request; first: %s", violations, runs, first)
			}
		})
	}
}
