package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/queue"
)

const dlqUsage = `usage: worker dlq list [--url URL]
       worker dlq replay [--url URL] (--all | ID...)

list prints the dead letters in stream DLQ, oldest first: the DLQ sequence,
the job's id (its Nats-Msg-Id), its subject, attempts, when it failed and
the last error.

replay publishes dead letters back on their original subject, as new jobs,
and removes each from the DLQ once stored. An ID is a job id as list shows
it, or #SEQ for a DLQ sequence. --all replays every dead letter.

The URL is --url, else NATS__URL, else ` + defaultPublishURL + `.

Flags:
`

// dlqOptions are the subcommand's flags and arguments.
type dlqOptions struct {
	url     string
	timeout time.Duration
	all     bool
	action  string
	ids     []string
}

// dlq runs `worker dlq` and returns the exit code.
func dlq(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	opts, err := parseDLQ(args, environ, stderr)
	if code, stop := parseExit("worker dlq", err, stderr); stop {
		return code
	}
	log := commandLogger(stderr)
	nc, err := natsclient.Dial(opts.url, natsclient.Options{Name: "worker-dlq"}, log)
	if err == nil {
		defer nc.Close()
		err = natsclient.WaitConnected(ctx, nc, opts.timeout)
		if err != nil {
			err = fmt.Errorf("no NATS server at %s: %w", natsclient.RedactURL(opts.url), err)
		}
	}
	if err == nil {
		var js jetstream.JetStream
		if js, err = jetstream.New(nc); err == nil {
			ctx, cancel := context.WithTimeout(ctx, opts.timeout)
			defer cancel()
			if opts.action == "list" {
				err = listDLQ(ctx, js, stdout)
			} else {
				err = replayDLQ(ctx, js, opts, stdout)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "worker dlq %s: %v\n", opts.action, err)
		return host.ExitFailure
	}
	return host.ExitOK
}

func parseDLQ(args, environ []string, stderr io.Writer) (dlqOptions, error) {
	opts := dlqOptions{url: urlFrom(environ)}
	fs := commandFlags("worker dlq", dlqUsage, stderr)
	fs.StringVar(&opts.url, "url", opts.url, "NATS server URL")
	fs.DurationVar(&opts.timeout, "timeout", 30*time.Second, "how long the whole command may take")
	fs.BoolVar(&opts.all, "all", false, "replay every dead letter")
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return opts, flag.ErrHelp
		}
		return opts, errors.New("want list or replay")
	}
	opts.action = args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return opts, err
	}
	opts.ids = fs.Args()
	if err := natsclient.ValidateURL(opts.url); err != nil {
		return opts, fmt.Errorf("--url: %w", err)
	}
	switch {
	case opts.action == "list" && (opts.all || len(opts.ids) > 0):
		return opts, errors.New("list takes no --all and no ids")
	case opts.action == "replay" && opts.all == (len(opts.ids) > 0):
		return opts, errors.New("replay wants --all or ids, not both and not neither")
	}
	return opts, nil
}

func listDLQ(ctx context.Context, js jetstream.JetStream, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tID\tSUBJECT\tATTEMPTS\tFAILED\tERROR")
	n := 0
	err := queue.ListDeadLetters(ctx, js, func(e queue.DeadLetterEntry) bool {
		n++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", e.Sequence, orDash(e.ID), e.Subject, e.Attempts,
			e.Time.Format(time.RFC3339), e.Error)
		return true
	})
	if n > 0 {
		_ = tw.Flush()
	}
	fmt.Fprintf(out, "%d dead letter(s)\n", n)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// replayDLQ replays the dead letters opts names, all of them when one is
// missing: an ID that matches nothing is an error.
func replayDLQ(ctx context.Context, js jetstream.JetStream, opts dlqOptions, out io.Writer) error {
	want := map[string]bool{}
	for _, id := range opts.ids {
		want[id] = true
	}
	var seqs []uint64
	err := queue.ListDeadLetters(ctx, js, func(e queue.DeadLetterEntry) bool {
		key := "#" + strconv.FormatUint(e.Sequence, 10)
		if opts.all || want[key] || (e.ID != "" && want[e.ID]) {
			seqs = append(seqs, e.Sequence)
			delete(want, key)
			delete(want, e.ID)
		}
		return true
	})
	if err != nil {
		return err
	}
	var errs []error
	replayed := 0
	for _, seq := range seqs {
		e, err := queue.Replay(ctx, js, seq, checkSubject)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		replayed++
		fmt.Fprintf(out, "replayed #%d (id %s) on %s\n", seq, orDash(e.ID), e.Subject)
	}
	fmt.Fprintf(out, "%d dead letter(s) replayed\n", replayed)
	if len(want) > 0 {
		var missing []string
		for id := range want {
			missing = append(missing, id)
		}
		errs = append(errs, fmt.Errorf("no dead letter with id %s", strings.Join(missing, ", ")))
	}
	return errors.Join(errs...)
}
