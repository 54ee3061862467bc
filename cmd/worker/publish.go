package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
)

// defaultPayload fits jobs.ping: a numbered job with a little work.
const defaultPayload = `{"id":"{{n}}","work":"50ms"}`

// defaultPublishURL is the embedded server's default address.
const defaultPublishURL = "nats://127.0.0.1:4222"

// defaultMsgID makes every message of one run distinct, and a message of a
// run distinct from those of other runs.
const defaultMsgID = "{{run}}-{{n}}"

// publishWindow bounds the messages in flight without an acknowledgement.
const publishWindow = 256

// reservedPrefixes are subjects that reach the server's own APIs or other
// clients' replies: publishing there deletes streams or forges answers.
var reservedPrefixes = []string{"$JS.", "$KV.", "$SYS.", "_INBOX.", "$JSC.", "$O."}

const publishUsage = `usage: worker publish [--count N] [--id TEMPLATE] [--url URL] [--timeout D] SUBJECT [PAYLOAD]

Publishes PAYLOAD on SUBJECT into JetStream --count times, up to 256 at once,
and checks that each was stored. {{n}} in PAYLOAD and in --id becomes the
message number, 1 to N; {{run}} in --id a random word drawn once per run.
The payload is sent as given, so malformed JSON is a way to watch the DLQ.

Each message carries Nats-Msg-Id from --id: the stream stores a message whose
id it saw within its duplicate window (JOBS: 2 minutes) only once, so after a
failure rerun the same command with a fixed --id (e.g. --id order-{{n}}) and
nothing is stored twice. --id '' sends no id.

  SUBJECT   jobs.<type> for the queue (jobs.ping), changes.<key> for the feed
            (a key is one token: no dots)
  PAYLOAD   default ` + defaultPayload + `

The URL is --url, else NATS__URL, else ` + defaultPublishURL + `.

Flags:
`

// publishOptions are the subcommand's flags and arguments.
type publishOptions struct {
	url     string
	count   int
	timeout time.Duration
	msgID   string
	subject string
	payload string
}

// publish runs `worker publish` and returns the exit code.
func publish(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	opts, err := parsePublish(args, environ, stderr)
	if code, stop := parseExit("worker publish", err, stderr); stop {
		return code
	}
	log := commandLogger(stderr)
	res, err := send(ctx, opts, log)
	if res.Stored > 0 {
		fmt.Fprintf(stdout, "published %d message(s) on %s", res.Stored, opts.subject)
		if res.Duplicates > 0 {
			fmt.Fprintf(stdout, " (%d already stored under the same id)", res.Duplicates)
		}
		fmt.Fprintln(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker publish: %v\n", err)
		return host.ExitFailure
	}
	return host.ExitOK
}

// commandFlags is the flag set of a subcommand, which prints usage and then
// its flags on -h or a bad flag.
func commandFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseExit turns a subcommand's parse error into its exit code: 0 for
// -h, 2 with the error for anything else. stop is false when err is nil.
func parseExit(name string, err error, stderr io.Writer) (code int, stop bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, flag.ErrHelp):
		return host.ExitOK, true
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return host.ExitUsage, true
}

// commandLogger logs a subcommand's warnings (a lost connection) as text on
// stderr, apart from what it prints for the user.
func commandLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// urlFrom returns --url's default: NATS__URL when set, else the embedded
// server's address.
func urlFrom(environ []string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NATS__URL="); ok && v != "" {
			return v
		}
	}
	return defaultPublishURL
}

func parsePublish(args, environ []string, stderr io.Writer) (publishOptions, error) {
	opts := publishOptions{url: urlFrom(environ), payload: defaultPayload}
	fs := commandFlags("worker publish", publishUsage, stderr)
	fs.StringVar(&opts.url, "url", opts.url, "NATS server URL")
	fs.IntVar(&opts.count, "count", 1, "how many messages to publish")
	fs.StringVar(&opts.msgID, "id", defaultMsgID, "Nats-Msg-Id of each message ({{n}}, {{run}}); empty sends none")
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
	if err := checkSubject(opts.subject); err != nil {
		return opts, err
	}
	if err := natsclient.ValidateURL(opts.url); err != nil {
		return opts, fmt.Errorf("--url: %w", err)
	}
	if opts.count < 1 {
		return opts, fmt.Errorf("--count = %d: must be at least 1", opts.count)
	}
	if opts.timeout <= 0 {
		return opts, fmt.Errorf("--timeout = %s: must be positive", opts.timeout)
	}
	if opts.count > 1 && opts.msgID != "" && !strings.Contains(opts.msgID, "{{n}}") {
		return opts, fmt.Errorf("--id %q: with --count above 1 it needs {{n}}, or every message but the first is dropped as a duplicate", opts.msgID)
	}
	return opts, nil
}

// checkSubject refuses subjects that cannot be published on, that reach the
// server's APIs, or that no stream would take.
func checkSubject(subject string) error {
	if err := natsclient.ValidSubject(subject); err != nil {
		return err
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(strings.ToUpper(subject), p) {
			return fmt.Errorf("subject %q: %s subjects belong to the server and its clients, not to jobs or changes", subject, p)
		}
	}
	if key, ok := strings.CutPrefix(subject, "changes."); ok && strings.Contains(key, ".") {
		return fmt.Errorf("subject %q: change key %q contains dots; a key is one subject token (changes.<key>), e.g. changes.%s",
			subject, key, strings.ReplaceAll(key, ".", "-"))
	}
	return nil
}

// send publishes the messages with a bounded window of unacknowledged ones.
func send(ctx context.Context, opts publishOptions, log *slog.Logger) (natsclient.BatchResult, error) {
	pub, err := natsclient.NewPublisherWith(opts.url, natsclient.PublisherOptions{Conn: natsclient.Options{Name: "worker-publish"}}, log)
	if err != nil {
		return natsclient.BatchResult{}, err
	}
	defer pub.Close()
	if err := pub.WaitConnected(ctx, opts.timeout); err != nil {
		return natsclient.BatchResult{}, fmt.Errorf("no NATS server at %s: %w", natsclient.RedactURL(opts.url), err)
	}
	// {{run}} is fixed for the run: replace it once.
	msgID := strings.ReplaceAll(opts.msgID, "{{run}}", strings.ToLower(rand.Text()[:10]))
	msg := func(i int) *nats.Msg {
		n := strconv.Itoa(i + 1)
		m := nats.NewMsg(opts.subject)
		m.Data = []byte(strings.ReplaceAll(opts.payload, "{{n}}", n))
		if msgID != "" {
			m.Header.Set(nats.MsgIdHdr, strings.ReplaceAll(msgID, "{{n}}", n))
		}
		return m
	}
	res, err := pub.PublishBatch(ctx, opts.count, publishWindow, opts.timeout, msg)
	switch {
	case errors.Is(err, natsclient.ErrUnavailable):
		err = fmt.Errorf("%w (is a worker running? it creates the streams)", err)
	case errors.Is(err, natsclient.ErrOutcomeUnknown):
		err = fmt.Errorf("%w; some messages may have been stored: run the same command again with a fixed --id to store each at most once", err)
	}
	return res, err
}
