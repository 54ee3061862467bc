package host_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

// panicky is a lifecycle service that panics in the step named by at.
type panicky struct {
	svc
	at string
}

func (p *panicky) maybe(step string) {
	p.j.add(step + " " + p.name)
	if p.at == step {
		panic("boom in " + step)
	}
}

func (p *panicky) Start(context.Context) error    { p.maybe("Start"); return nil }
func (p *panicky) Stop(context.Context) error     { p.maybe("Stop"); return nil }
func (p *panicky) Starting(context.Context) error { p.maybe("Starting"); return nil }
func (p *panicky) Started(context.Context) error  { p.maybe("Started"); return nil }
func (p *panicky) Stopping(context.Context) error { p.maybe("Stopping"); return nil }
func (p *panicky) Stopped(context.Context) error  { p.maybe("Stopped"); return nil }

// lockedBuilder is a strings.Builder safe for the logger's goroutines.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPanicIsTheStepsErrorAndEveryOtherServiceStillStops panics in each kind
// of host-called code in turn. Before recovery, any of these killed the
// process (exit 2) and skipped the remaining Stops.
func TestPanicIsTheStepsErrorAndEveryOtherServiceStillStops(t *testing.T) {
	tests := []struct {
		at       string // step of service p that panics, or a lifetime callback
		wantErr  string
		wantStop []string // Stops that must have run
	}{
		{"Starting", "Starting p: panic: boom in Starting", nil},
		{"Start", "Start p: panic: boom in Start", []string{"Stop a"}},
		{"Started", "Started p: panic: boom in Started", []string{"Stop a", "Stop p", "Stop c"}},
		{"Stopping", "Stopping p: panic: boom in Stopping", []string{"Stop a", "Stop p", "Stop c"}},
		{"Stop", "Stop p: panic: boom in Stop", []string{"Stop a", "Stop c"}},
		{"Stopped", "Stopped p: panic: boom in Stopped", []string{"Stop a", "Stop p", "Stop c"}},
		{"OnStarted", "ApplicationStarted callback: panic: boom in OnStarted", []string{"Stop a", "Stop p", "Stop c"}},
		{"OnStopping", "ApplicationStopping callback: panic: boom in OnStopping", []string{"Stop a", "Stop p", "Stop c"}},
		{"OnStopped", "ApplicationStopped callback: panic: boom in OnStopped", []string{"Stop a", "Stop p", "Stop c"}},
		{"background", "background service bg: panic: boom in background", []string{"Stop a", "Stop p", "Stop c"}},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			var logs lockedBuilder
			hs := newHarness(t, host.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, 0)
			lt := hs.h.Lifetime()
			for _, cb := range []struct {
				name string
				on   func(func())
			}{{"OnStarted", lt.OnStarted}, {"OnStopping", lt.OnStopping}, {"OnStopped", lt.OnStopped}} {
				if cb.name == tt.at {
					cb.on(func() { panic("boom in " + cb.name) })
				}
			}
			hs.h.Add("a", &svc{name: "a", j: hs.j})
			hs.h.Add("p", &panicky{svc: svc{name: "p", j: hs.j}, at: tt.at})
			hs.h.AddBackground("bg", func(ctx context.Context) error {
				if tt.at == "background" {
					<-lt.Started() // while the application runs, so every service has started
					panic("boom in background")
				}
				<-ctx.Done()
				return nil
			})
			hs.h.Add("c", &svc{name: "c", j: hs.j})

			done := hs.run(context.Background())
			if strings.HasPrefix(tt.at, "Stop") || tt.at == "OnStopping" || tt.at == "OnStopped" {
				hs.sigtermWhenStarted(t)
			}
			err := waitResult(t, done)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
			if got, want := host.ExitCode(err), host.ExitFailure; got != want {
				t.Errorf("ExitCode = %d, want %d", got, want)
			}
			got := hs.j.get()
			for _, want := range tt.wantStop {
				if !slices.Contains(got, want) {
					t.Errorf("%s did not run after the panic: %q", want, got)
				}
			}
			if !strings.Contains(logs.String(), "panic_test.go") {
				t.Errorf("log lacks the panic's stack:\n%s", logs.String())
			}
		})
	}
}

// TestMainExitsOneOnAPanickingStart runs the whole program: a panic in a
// Start exits 1 (a runtime failure), not 2 (the Go runtime's crash code,
// which the exit-code table reserves for invalid configuration).
func TestMainExitsOneOnAPanickingStart(t *testing.T) {
	var out lockedBuilder
	code := host.Main(context.Background(), []string{"--log.format=json"}, func() []string { return nil }, &out,
		host.Program{Name: "test", Signals: &host.ManualSignals{}, Build: func(h *host.Host) error {
			h.Add("p", &panicky{svc: svc{name: "p", j: &journal{}}, at: "Start"})
			return nil
		}})
	if code != host.ExitFailure {
		t.Fatalf("Main = %d, want %d; output:\n%s", code, host.ExitFailure, out.String())
	}
	if !strings.Contains(out.String(), "Start p: panic: boom in Start") {
		t.Errorf("output does not name the service and the panic:\n%s", out.String())
	}
}
