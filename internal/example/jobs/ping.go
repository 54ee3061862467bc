// Package jobs holds the worker's job handlers, one function per job type.
// Ping is the example to copy: decode the payload, treat input that can never
// work as permanent (queue.Permanent), return an error for anything worth
// retrying, and honour ctx. A new job type is wired with one line in
// cmd/worker:
//
//	q.Handle("jobs.ping", jobs.Ping)
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hostkit/hostkit/internal/queue"
)

// PingJob is the payload of a jobs.ping message, e.g.
// {"id": "42", "work": "50ms"}.
type PingJob struct {
	// ID names the job in logs; optional.
	ID string `json:"id"`
	// Work is how long the job pretends to work, as a Go duration; empty is
	// no work.
	Work string `json:"work"`
	// Fail, when set, makes every attempt fail with this text, to watch the
	// retries and the DLQ at work.
	Fail string `json:"fail,omitempty"`
}

// ErrPingFailed is returned for a job that asked to fail.
var ErrPingFailed = errors.New("ping job failed on request")

// DefaultMaxWork caps a ping job's work unless PingUpTo says otherwise; it
// matches pingapi's ping.max_delay, which bounds what POST /pingpong/jobs
// accepts.
const DefaultMaxWork = 60 * time.Second

// Ping handles jobs.ping with work capped at DefaultMaxWork.
func Ping(ctx context.Context, msg queue.Message) error { return ping(ctx, msg, DefaultMaxWork) }

// PingUpTo returns the jobs.ping handler with work capped at maxWork: a job
// published around pingapi (worker publish, another producer) asking for
// hours would otherwise hold every shutdown to its timeout and come back
// after each restart.
func PingUpTo(maxWork time.Duration) queue.Handler {
	return func(ctx context.Context, msg queue.Message) error { return ping(ctx, msg, maxWork) }
}

// ping simulates min(Work, maxWork) worth of processing and stops early with
// ctx's error when ctx ends. Malformed JSON or a bad duration is a permanent
// failure: no attempt could ever succeed.
func ping(ctx context.Context, msg queue.Message, maxWork time.Duration) error {
	var job PingJob
	if err := json.Unmarshal(msg.Data, &job); err != nil {
		return queue.Permanent(fmt.Errorf("jobs.ping: malformed JSON: %w", err))
	}
	var work time.Duration
	if job.Work != "" {
		d, err := time.ParseDuration(job.Work)
		if err != nil {
			return queue.Permanent(fmt.Errorf("jobs.ping %q: work: %w", job.ID, err))
		}
		if d < 0 {
			return queue.Permanent(fmt.Errorf("jobs.ping %q: work %s: must not be negative", job.ID, d))
		}
		work = min(d, maxWork)
	}
	if err := sleep(ctx, work); err != nil {
		return fmt.Errorf("jobs.ping %q: %w", job.ID, err)
	}
	if job.Fail != "" {
		return fmt.Errorf("jobs.ping %q: %w: %s", job.ID, ErrPingFailed, job.Fail)
	}
	return nil
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
