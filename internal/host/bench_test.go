package host_test

import (
	"context"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

// BenchmarkRunNoServices measures the host's own start and stop overhead: a
// whole Run with no services, stopped as soon as it has started.
func BenchmarkRunNoServices(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h := host.New(host.Options{Lifetime: host.NewConsoleLifetime(&host.ManualSignals{}, nil)})
		lt := h.Lifetime()
		lt.OnStarted(lt.StopApplication)
		if err := h.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunTenServices adds ten plain services, to show the cost per service.
func BenchmarkRunTenServices(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h := host.New(host.Options{Lifetime: host.NewConsoleLifetime(&host.ManualSignals{}, nil)})
		for range 10 {
			h.Add("svc", nop{})
		}
		lt := h.Lifetime()
		lt.OnStarted(lt.StopApplication)
		if err := h.Run(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

type nop struct{}

func (nop) Start(context.Context) error { return nil }
func (nop) Stop(context.Context) error  { return nil }
