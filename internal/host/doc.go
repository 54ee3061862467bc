// Package host runs a program's services the way the .NET Generic Host
// (Microsoft.Extensions.Hosting) does, in plain Go: interfaces, contexts and
// channels, no reflection and no container.
//
// # The pieces
//
//   - A Service (IHostedService) has Start and Stop. Start returns once the
//     service runs; Stop once it has let go of everything.
//   - A Service may also have any of the lifecycle hooks Starting, Started,
//     Stopping and Stopped (IHostedLifecycleService).
//   - A BackgroundFunc (BackgroundService.ExecuteAsync) is a func(ctx) error
//     run in its own goroutine. Stop cancels ctx and waits for it to return.
//     If it returns an error while the application runs, the host logs it and
//     stops the application, and the process exits 1 (.NET exits 0 before .NET 11).
//   - The Lifetime (IHostApplicationLifetime) tells every service when the
//     application has Started, when a shutdown was requested, when it is
//     Stopping and when it has Stopped, as channels and as callbacks;
//     StopApplication asks for the stop.
//   - A HostLifetime (IHostLifetime) decides when the host starts and what
//     stops it. NewConsoleLifetime stops on SIGINT, SIGTERM, SIGQUIT or SIGHUP.
//     NewDelayedShutdownLifetime marks the shutdown as requested at the signal
//     (readiness turns 503) but keeps everything serving for a delay before it
//     stops, so a load balancer that is slow to drop the pod sends its last
//     requests to a process that still answers them.
//
// # The sequence
//
// Start: WaitForStart, then every Starting, every Start, every Started, then
// ApplicationStarted. Stop: ApplicationStopping, then every Stopping, every
// Stop, every Stopped, then ApplicationStopped and the lifetime's Stop.
// Services start in the order they were added and stop in reverse (LIFO);
// Options can run each phase for all services at once instead.
//
// Where .NET and uber/fx leave gaps, the host closes them:
//
//   - A failed start (an error, the startup timeout, or a stop request during
//     start) stops exactly the services whose Start succeeded, in reverse.
//   - ShutdownTimeout is one deadline for the whole stop sequence. Every Stop
//     is still called after it passes, with the expired context, errors are
//     joined, and the host returns promptly naming the services that did not
//     finish: a stuck service cannot hang the process.
//   - A second termination signal during shutdown returns at once with an
//     ExitError of 128 + the signal's number.
//   - A panic in a Start, Stop, hook, Lifetime callback or background func is
//     recovered as a *PanicError: that step's error, logged with the stack.
//     The sequence goes on, so every other service still stops and drains.
//   - Once a stop is requested (StopApplication, a signal, Run's context
//     cancelled, even before Run), no further start step runs and
//     ApplicationStarted never fires.
//
// # Exit codes
//
//	0    clean stop, also after SIGTERM, SIGINT, SIGQUIT or SIGHUP
//	1    runtime failure: start failed, a background service failed, a service
//	     panicked, shutdown timed out
//	2    invalid configuration or usage
//	128+n  exit forced by a second signal n (130 for SIGINT, 143 for SIGTERM)
//
// # Programs
//
// A binary's main calls Main with a Program: Main loads the configuration
// (Config: defaults, YAML file, environment, flags), builds a slog logger
// (tint on a terminal, JSON otherwise), lets the program add its services,
// runs the host and returns the exit code. Options.Trace receives each step
// as an Event, so tests can assert the whole order without real signals;
// ManualSignals stands in for the process's signals.
package host
