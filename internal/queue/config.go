package queue

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the processor. Start from DefaultConfig.
type Config struct {
	// Concurrency is how many handlers run at once in this replica.
	Concurrency int
	// Prefetch is how many jobs this replica asks the server for ahead of
	// its handlers; a new pull asks for the free room once half of it is
	// free (once all of it is, when half would not leave a job for every
	// handler: see refillBelow). Fetching in batches is what makes short jobs fast. The cost: a fetched job is not available to other replicas,
	// and while it waits for a free handler nothing keeps it alive, so a job
	// waiting longer than AckWait runs again elsewhere. Jobs wait up to about
	// Prefetch/Concurrency handler durations; with the defaults (64, 4, 30s)
	// that is fine for jobs under ~1.5s. For longer jobs lower it, down to
	// Concurrency.
	Prefetch int
	// AckWait is how long the server waits for an acknowledgement or a
	// progress signal before delivering a job again. It bounds how long a
	// job of a killed worker waits before another replica runs it.
	AckWait time.Duration
	// MaxDeliver is how many attempts a job gets before it goes to the DLQ.
	MaxDeliver int
	// Backoff is the delay before the second attempt; it doubles with every
	// further attempt, up to MaxBackoff.
	Backoff time.Duration
	// MaxBackoff caps the delay between attempts.
	MaxBackoff time.Duration
	// FetchWait is how long one pull request waits for jobs when JOBS has
	// fewer than it asked for: an idle replica sends one pull per FetchWait.
	// It also paces the stall check: a replica that received nothing for
	// two checks (2×FetchWait apart) while JOBS holds undelivered jobs
	// consumes again (see Config.StallBound), so it bounds how long a pull
	// lost with a server that restarted or stopped answering goes unnoticed.
	FetchWait time.Duration
	// StopConfirmWait bounds how long stopping waits for the server: for it
	// to confirm the acknowledgement of a job finished while stopping (and
	// the copy of one dead-lettered), and for the round trip that ends the
	// hand-back of the fetched jobs. A healthy server answers in
	// milliseconds; the bound matters only when it cannot be reached (the
	// whole cluster down), and then a job whose acknowledgement is not
	// confirmed runs again after AckWait instead of the stop waiting for
	// the host's whole shutdown deadline. It leaves room for a reconnect to
	// another node and a consumer leader election, a few seconds.
	StopConfirmWait time.Duration
}

// DefaultConfig returns the defaults of the queue.* configuration keys.
func DefaultConfig() Config {
	return Config{
		Concurrency: 4,
		Prefetch:    64,
		AckWait:     30 * time.Second,
		MaxDeliver:  5,
		Backoff:     time.Second,
		MaxBackoff:  time.Minute,
		FetchWait:   time.Second,

		StopConfirmWait: 5 * time.Second,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("queue.concurrency = %d: must be at least 1", c.Concurrency))
	}
	if c.Prefetch < 1 {
		errs = append(errs, fmt.Errorf("queue.prefetch = %d: must be at least 1", c.Prefetch))
	}
	if c.AckWait < 30*time.Millisecond {
		errs = append(errs, fmt.Errorf("queue.ack_wait = %s: must be at least 30ms", c.AckWait))
	}
	if c.MaxDeliver < 1 {
		errs = append(errs, fmt.Errorf("queue.max_deliver = %d: must be at least 1", c.MaxDeliver))
	}
	if c.Backoff < 0 {
		errs = append(errs, fmt.Errorf("queue.backoff = %s: must not be negative", c.Backoff))
	}
	if c.MaxBackoff < c.Backoff {
		errs = append(errs, fmt.Errorf("queue.max_backoff = %s: must not be below queue.backoff (%s)", c.MaxBackoff, c.Backoff))
	}
	if c.FetchWait < time.Second || c.FetchWait > time.Minute {
		errs = append(errs, fmt.Errorf("queue.fetch_wait = %s: must be between 1s and 1m (the least nats.go allows)", c.FetchWait))
	}
	if c.StopConfirmWait <= 0 {
		errs = append(errs, fmt.Errorf("queue.stop_confirm_wait = %s: must be positive", c.StopConfirmWait))
	}
	return errors.Join(errs...)
}

// refillBelow is how few jobs may be buffered or on their way before the
// processor asks for more. Half of Prefetch (fewer, larger pulls) when that
// still leaves a job for every worker; below that (Prefetch under twice
// Concurrency, as for long jobs) the processor asks only once nothing is left,
// for a whole Prefetch. Topping up each finished job instead costs a pull
// request per job, and that round trip, not the jobs, then bounds the rate:
// at Prefetch = Concurrency = 4, ProcessorVsBare ran 15-20% faster asking at
// empty than topping up. A worker then idles only when it finishes within the
// round trip of the pull that refills an empty buffer: often for jobs of
// microseconds, which gain more from the larger pulls, about never for the
// long jobs such a Prefetch is meant for.
func (c Config) refillBelow() int {
	if half := (c.Prefetch + 1) / 2; half >= c.Concurrency {
		return half
	}
	return 1
}

// backoff is the delay after a failed attempt (1 for the first delivery).
func (c Config) backoff(attempt int) time.Duration {
	d := c.Backoff
	for i := 1; i < attempt && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}
