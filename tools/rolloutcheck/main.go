// Command rolloutcheck sends steady load to a URL during a rollout and
// reports what failed and how long requests took. It runs for -duration,
// or until SIGINT or SIGTERM when -duration is 0, then waits for the
// requests in flight and prints sent, failed and latency percentiles.
// It exits 1 if any request failed, 2 on bad usage.
//
//	rolloutcheck -url http://127.0.0.1:8080/pingpong/ping -duration 60s -rate 50
//	rolloutcheck -url http://127.0.0.1:8080/pingpong/jobs -method POST -body '{"work":"10ms"}'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hostkit/hostkit/internal/rollout"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the load until ctx ends or the duration passes, and
// returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rolloutcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts rollout.LoadOptions
	var body string
	fs.StringVar(&opts.URL, "url", "", "URL to load (required)")
	fs.StringVar(&opts.Method, "method", "GET", "GET or POST")
	fs.StringVar(&body, "body", "", "JSON body sent with every request (POST)")
	fs.StringVar(&opts.WantBody, "want-body", "", "exact body a successful response must have (empty: any)")
	fs.IntVar(&opts.Rate, "rate", 50, "requests per second")
	fs.DurationVar(&opts.Duration, "duration", 0, "how long to run; 0 runs until SIGINT or SIGTERM")
	fs.IntVar(&opts.MaxRequests, "max-requests", 0, "stop after this many requests; 0 means no limit")
	fs.IntVar(&opts.Concurrency, "concurrency", 64, "most requests in flight at once")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "per-request timeout (default 30s)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := validate(opts, fs.NArg()); err != nil {
		fmt.Fprintf(stderr, "rolloutcheck: %v\n", err)
		fs.Usage()
		return 2
	}
	opts.Body = []byte(body)

	report, err := rollout.Load(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "rolloutcheck: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, report)
	if report.Failed > 0 {
		return 1
	}
	return 0
}

func validate(opts rollout.LoadOptions, extraArgs int) error {
	switch {
	case extraArgs > 0:
		return errors.New("unexpected arguments; every option is a flag")
	case opts.URL == "":
		return errors.New("-url is required")
	case opts.Rate <= 0 || opts.Rate > 10000:
		return fmt.Errorf("-rate %d: want 1..10000", opts.Rate)
	case opts.Duration < 0 || opts.MaxRequests < 0 || opts.Concurrency < 0 || opts.Timeout < 0:
		return errors.New("-duration, -max-requests, -concurrency and -timeout must not be negative")
	}
	return nil
}
