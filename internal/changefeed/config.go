package changefeed

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"
)

// Values of Config.StartFrom.
const (
	// StartBeginning makes a brand-new feed deliver every change the stream
	// still holds.
	StartBeginning = "beginning"
	// StartNow makes a brand-new feed deliver only changes published after
	// its consumers were created.
	StartNow = "now"
)

// maxPartitions bounds the consumer count: every partition is one durable
// consumer on the server and one lease renewal per renew interval.
const maxPartitions = 1024

// maxBatch bounds the changes one owner holds per partition.
const maxBatch = 4096

// instancePattern is what an instance name may look like: it is part of a
// key in the lease bucket (member.<instance>), whose keys allow these
// characters in dot-separated tokens. Kubernetes pod names qualify.
var instancePattern = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// Margin returns the fencing margin for a lease TTL: a held lease is used
// only until its last successful renewal's send time + ttl - Margin(ttl).
// Peers judge it expired no earlier than ttl after they first saw that
// renewal, so the margin is what is left for an acknowledgement to land
// and for clock-rate differences between machines.
func Margin(ttl time.Duration) time.Duration { return ttl / 10 }

// Config is the processor's configuration. Each field names its config key;
// start from DefaultConfig.
type Config struct {
	// Instance names this replica in the lease table (changefeed.instance).
	// It must differ between live replicas: in Kubernetes, the pod name.
	Instance string
	// Partitions is the number of partitions the feed is split into
	// (changefeed.partitions). Changing it re-hashes keys, so per-key order is
	// only kept across the change if the feed was drained first.
	Partitions int
	// LeaseTTL is how long a lease stays valid without renewal
	// (changefeed.lease_ttl): the time a crashed replica's partitions wait
	// before a peer takes them over.
	LeaseTTL time.Duration
	// RenewInterval is the period of lease renewal (changefeed.renew_interval).
	// It must be below LeaseTTL - Margin(LeaseTTL), with room for a
	// renewal's round trip; a balancing change waits RenewInterval/2 for the
	// membership to settle.
	RenewInterval time.Duration
	// StartFrom is where a brand-new feed starts (changefeed.start_from):
	// StartBeginning or StartNow. An existing consumer keeps its checkpoint.
	StartFrom string
	// AckWait is how long the server waits for a handler's verdict before it
	// redelivers (changefeed.ack_wait). It must exceed the slowest handler.
	AckWait time.Duration
	// RetryDelay is how long a change whose handler failed waits before it is
	// redelivered (changefeed.retry_delay), and the pause after a failed fetch.
	RetryDelay time.Duration
	// Batch is how many changes of a partition one pull may fetch
	// (changefeed.batch): the consumer's MaxAckPending. The owner handles a
	// batch's changes one at a time, in order, acknowledging each.
	Batch int
	// FetchWait is how long one pull waits for a change
	// (changefeed.fetch_wait). It bounds how long Stop and a lost lease wait
	// for an outstanding pull to end.
	FetchWait time.Duration
	// MaxAge is how long the stream keeps changes, processed or not
	// (changefeed.max_age); 0 keeps them until deleted by hand.
	MaxAge time.Duration
	// Replicas is the replica count of the stream, its consumers and the
	// lease bucket (nats.replicas).
	Replicas int
}

// DefaultConfig returns the documented defaults. Instance defaults to the
// host name, which is the pod name in Kubernetes.
func DefaultConfig() Config {
	host, _ := os.Hostname() // empty on failure; Validate then asks for changefeed.instance
	return Config{
		Instance:      host,
		Partitions:    16,
		LeaseTTL:      30 * time.Second,
		RenewInterval: 10 * time.Second,
		StartFrom:     StartBeginning,
		AckWait:       30 * time.Second,
		RetryDelay:    time.Second,
		Batch:         64,
		FetchWait:     time.Second,
		MaxAge:        7 * 24 * time.Hour,
		Replicas:      1,
	}
}

// Validate reports every invalid field, naming its config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.Instance == "":
		bad("changefeed.instance is empty: set it to a name unique among the replicas")
	case !instancePattern.MatchString(c.Instance):
		bad("changefeed.instance = %q: use letters, digits, '-', '_', '=', '/' and single inner dots", c.Instance)
	}
	if c.Partitions < 1 || c.Partitions > maxPartitions {
		bad("changefeed.partitions = %d: must be between 1 and %d", c.Partitions, maxPartitions)
	}
	if c.LeaseTTL <= 0 {
		bad("changefeed.lease_ttl = %s: must be positive", c.LeaseTTL)
	}
	if c.RenewInterval <= 0 || c.RenewInterval >= c.LeaseTTL-Margin(c.LeaseTTL) {
		bad("changefeed.renew_interval = %s: must be positive and less than 0.9 × changefeed.lease_ttl (%s), the lease's usable time",
			c.RenewInterval, c.LeaseTTL)
	}
	if c.StartFrom != StartBeginning && c.StartFrom != StartNow {
		bad("changefeed.start_from = %q: must be %q or %q", c.StartFrom, StartBeginning, StartNow)
	}
	if c.AckWait <= 0 {
		bad("changefeed.ack_wait = %s: must be positive", c.AckWait)
	}
	if c.RetryDelay < 0 {
		bad("changefeed.retry_delay = %s: must not be negative", c.RetryDelay)
	}
	if c.Batch < 1 || c.Batch > maxBatch {
		bad("changefeed.batch = %d: must be between 1 and %d", c.Batch, maxBatch)
	}
	if c.FetchWait <= 0 {
		bad("changefeed.fetch_wait = %s: must be positive", c.FetchWait)
	}
	// The server refuses a MaxAge below 100ms.
	if c.MaxAge != 0 && c.MaxAge < 100*time.Millisecond {
		bad("changefeed.max_age = %s: must be 0 (keep all) or at least 100ms", c.MaxAge)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("nats.replicas = %d: must be between 1 and 5", c.Replicas)
	}
	return errors.Join(errs...)
}
