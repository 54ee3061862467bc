package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
)

// defaultPayload fits jobs.ping: a numbered job with a little work.
const defaultPayload = `{"id":"{{n}}","work":"50ms"}`

// defaultPublishURL is the embedded server's default address.
const defaultPublishURL = "nats://127.0.0.1:4222"

const publishUsage = `usage: worker publish [--count N] [--url URL] [--timeout D] SUBJECT [PAYLOAD]

Publishes PAYLOAD on SUBJECT into JetStream --count times and waits for each
to be stored. {{n}} in PAYLOAD becomes the message number, 1 to N. The
payload is sent as given, so malformed JSON is a way to watch the DLQ.

  SUBJECT   jobs.<type> for the queue (jobs.ping), changes.<key> for the feed
  PAYLOAD   default ` + defaultPayload + `

The URL is --url, else NATS__URL, else ` + defaultPublishURL + `.

Flags:
`

// publishOptions are the subcommand's flags and arguments.
type publishOptions struct {
	url     string
	count   int
	timeout time.Duration
	subject string
	payload string
}

// publish runs `worker publish` and returns the exit code.
func publish(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	opts, err := parsePublish(args, environ, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return host.ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker publish: %v\n", err)
		return host.ExitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := send(ctx, opts, log)
	if n > 0 {
		fmt.Fprintf(stdout, "published %d message(s) on %s\n", n, opts.subject)
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker publish: %v\n", err)
		return host.ExitFailure
	}
	return host.ExitOK
}

func parsePublish(args, environ []string, stderr io.Writer) (publishOptions, error) {
	opts := publishOptions{url: defaultPublishURL, payload: defaultPayload}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NATS__URL="); ok && v != "" {
			opts.url = v
		}
	}
	fs := flag.NewFlagSet("worker publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, publishUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.url, "url", opts.url, "NATS server URL")
	fs.IntVar(&opts.count, "count", 1, "how many messages to publish")
	fs.DurationVar(&opts.timeout, "timeout", 10*time.Second, "how long to wait for the server, and for each message to be stored")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	switch fs.NArg() {
	case 1:
	case 2:
		opts.payload = fs.Arg(1)
	default:
		fs.Usage()
		return opts, errors.New("want SUBJECT and at most one PAYLOAD")
	}
	opts.subject = fs.Arg(0)
	if err := natsclient.ValidSubject(opts.subject); err != nil {
		return opts, err
	}
	if opts.count < 1 {
		return opts, fmt.Errorf("--count = %d: must be at least 1", opts.count)
	}
	if opts.timeout <= 0 {
		return opts, fmt.Errorf("--timeout = %s: must be positive", opts.timeout)
	}
	return opts, nil
}

// send publishes the messages one by one and returns how many were stored.
func send(ctx context.Context, opts publishOptions, log *slog.Logger) (int, error) {
	pub, err := natsclient.NewPublisher(opts.url, log)
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	if err := waitConnected(ctx, pub, opts.timeout); err != nil {
		return 0, fmt.Errorf("no NATS server at %s: %w", natsclient.RedactURL(opts.url), err)
	}
	for i := 1; i <= opts.count; i++ {
		data := strings.ReplaceAll(opts.payload, "{{n}}", strconv.Itoa(i))
		pctx, cancel := context.WithTimeout(ctx, opts.timeout)
		err := pub.Publish(pctx, opts.subject, []byte(data))
		cancel()
		if err != nil {
			if errors.Is(err, natsclient.ErrUnavailable) {
				err = fmt.Errorf("%w (is a worker running? it creates the streams)", err)
			}
			return i - 1, err
		}
	}
	return opts.count, nil
}

// waitConnected gives a publisher, which connects in the background, time to
// reach the server before the first message.
func waitConnected(ctx context.Context, pub *natsclient.Publisher, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for pub.Ready() != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
