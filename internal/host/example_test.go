package host_test

import (
	"context"
	"fmt"

	"github.com/hostkit/hostkit/internal/host"
)

// worker prints each step the host takes it through, like the console
// output of the .NET hosted-lifecycle sample.
type worker struct{}

func (worker) Starting(context.Context) error { fmt.Println("Starting"); return nil }
func (worker) Start(context.Context) error    { fmt.Println("Start"); return nil }
func (worker) Started(context.Context) error  { fmt.Println("Started"); return nil }
func (worker) Stopping(context.Context) error { fmt.Println("Stopping"); return nil }
func (worker) Stop(context.Context) error     { fmt.Println("Stop"); return nil }
func (worker) Stopped(context.Context) error  { fmt.Println("Stopped"); return nil }

// The order of a whole run. The application stops itself once started here;
// a real program stops on SIGTERM or Ctrl-C.
func Example() {
	h := host.New(host.Options{Lifetime: host.NewConsoleLifetime(&host.ManualSignals{}, nil)})
	h.Add("worker", worker{})

	lt := h.Lifetime()
	lt.OnStarted(func() { fmt.Println("OnStarted"); lt.StopApplication() })
	lt.OnStopping(func() { fmt.Println("OnStopping") })
	lt.OnStopped(func() { fmt.Println("OnStopped") })

	err := h.Run(context.Background())
	fmt.Println("exit code", host.ExitCode(err))
	// Output:
	// Starting
	// Start
	// Started
	// OnStarted
	// OnStopping
	// Stopping
	// Stop
	// Stopped
	// OnStopped
	// exit code 0
}
