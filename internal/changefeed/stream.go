package changefeed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

// Names shared with writers and operators.
const (
	// StreamName is the JetStream stream holding the feed.
	StreamName = "CHANGES"
	// LeaseBucket is the key-value bucket holding one lease per partition,
	// keyed by the partition number, valued by the owner's instance name.
	LeaseBucket = "changefeed-leases"
	// subjectPrefix is the first token of every change's subject.
	subjectPrefix = "changes"
)

// Subject returns the subject a writer publishes a change of key to. A key
// is one subject token: not empty, without '.', '*', '>' or white space.
func Subject(key string) (string, error) {
	if err := validToken(key); err != nil {
		return "", fmt.Errorf("change key %q: %w", key, err)
	}
	return subjectPrefix + "." + key, nil
}

func validToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("contains %q, which cannot be part of a subject token", s[i:i+1])
	}
	return nil
}

// StreamConfig returns the configuration of the feed's stream. Writers
// publish to changes.<key>; the stream's subject transform rewrites that to
// changes.<partition>.<key> with the server's partition() mapping function
// (a hash of the key modulo the partition count), so every change of one key
// lands in one partition and the writers need not know the partition count.
func StreamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Change feed: changes.<key>, partitioned into changes.<partition>.<key>.",
		Subjects:    []string{subjectPrefix + ".*"},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      subjectPrefix + ".*",
			Destination: fmt.Sprintf("%s.{{partition(%d,1)}}.{{wildcard(1)}}", subjectPrefix, cfg.Partitions),
		},
		Retention: jetstream.LimitsPolicy,
		MaxAge:    cfg.MaxAge,
		Storage:   jetstream.FileStorage,
		Replicas:  cfg.Replicas,
	}
}

// leaseBucketConfig has no TTL: a lease's expiry is judged by its readers
// (see leases.go), so the bucket only keeps the latest value per key.
func leaseBucketConfig(cfg Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "Change feed leases: partition -> owning instance.",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}
}

// consumerConfig is partition p's durable consumer: its ack floor is the
// partition's checkpoint. MaxAckPending = 2 × Batch lets one pull fetch a
// batch of the partition's changes while the previous batch's
// acknowledgements are on their way; only the lease's owner pulls, one pull
// at a time, and it resets the consumer to its ack floor when it acquires
// the lease (see consume), so changes a previous owner held come again,
// first and in order.
func consumerConfig(cfg Config, p int) jetstream.ConsumerConfig {
	deliver := jetstream.DeliverAllPolicy
	if cfg.StartFrom == StartNow {
		deliver = jetstream.DeliverNewPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:       consumerName(p),
		Description:   fmt.Sprintf("Change feed partition %d.", p),
		FilterSubject: partitionSubject(p),
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // a failing change is retried until it succeeds: skipping it would break the order
		MaxAckPending: 2 * cfg.Batch,
	}
}

func consumerName(p int) string { return "changefeed-" + strconv.Itoa(p) }

// partitionSubject is the subject of partition p's changes; it doubles as
// the subject label of the processed-messages counter, whose cardinality it
// bounds by the partition count (the keys are unbounded).
func partitionSubject(p int) string { return fmt.Sprintf("%s.%d.*", subjectPrefix, p) }

// keyOf returns the key of a stored change's subject, changes.<p>.<key>.
func keyOf(subject string) string {
	parts := strings.SplitN(subject, ".", 3)
	return parts[len(parts)-1]
}

// provisionFeed creates or updates the stream, the lease bucket and one
// consumer per partition. Concurrent replicas may run it at once: every
// step is idempotent. Consumers that exist as configured cost no request
// beyond one listing (per 256), so that a replica starting next to running
// ones joins them quickly at any partition count. announce, if not nil,
// runs once the bucket exists, before the consumers are looked at.
func provisionFeed(ctx context.Context, js jetstream.JetStream, cfg Config,
	announce func(context.Context, jetstream.KeyValue) error) (jetstream.KeyValue, *feed, error) {
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, leaseBucketConfig(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("create bucket %s: %w", LeaseBucket, err)
	}
	if announce != nil {
		if err := announce(ctx, kv); err != nil {
			return nil, nil, err
		}
	}
	existing := map[string]jetstream.ConsumerConfig{}
	list := stream.ListConsumers(ctx)
	for info := range list.Info() {
		existing[info.Name] = info.Config
	}
	if err := list.Err(); err != nil {
		return nil, nil, fmt.Errorf("list consumers of %s: %w", StreamName, err)
	}
	f := &feed{stream: stream, consumers: make([]jetstream.Consumer, cfg.Partitions)}
	for p := range f.consumers {
		want := consumerConfig(cfg, p)
		if have, ok := existing[want.Durable]; ok {
			want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
			if sameConsumer(have, want) {
				continue // looked up when the partition is first acquired
			}
		}
		if f.consumers[p], err = ensureConsumer(ctx, stream, want); err != nil {
			return nil, nil, fmt.Errorf("create consumer %s: %w", want.Durable, err)
		}
	}
	return kv, f, nil
}

// feed holds the stream and, per partition, the consumer once looked up.
type feed struct {
	stream    jetstream.Stream
	mu        sync.Mutex
	consumers []jetstream.Consumer
}

// reset makes partition p's consumer forget every delivery not yet
// acknowledged: the next pull starts at the ack floor.
func (f *feed) reset(ctx context.Context, p int) error {
	if _, err := f.stream.ResetConsumer(ctx, consumerName(p)); err != nil {
		return fmt.Errorf("reset consumer %s to its ack floor: %w", consumerName(p), err)
	}
	return nil
}

// consumer returns partition p's consumer, looking it up the first time.
func (f *feed) consumer(ctx context.Context, p int) (jetstream.Consumer, error) {
	f.mu.Lock()
	c := f.consumers[p]
	f.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := f.stream.Consumer(ctx, consumerName(p))
	if err != nil {
		return nil, fmt.Errorf("look up consumer %s: %w", consumerName(p), err)
	}
	f.mu.Lock()
	f.consumers[p] = c
	f.mu.Unlock()
	return c, nil
}

// ensureConsumer creates the consumer, or updates an existing one while
// keeping its start position: the server refuses to change a durable's
// deliver policy, and its checkpoint must survive a change of start_from.
func ensureConsumer(ctx context.Context, stream jetstream.Stream, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for range 2 { // a second round if a peer created it between our lookup and create
		c, err := stream.Consumer(ctx, want.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			c, err = stream.CreateConsumer(ctx, want)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue
			}
			return c, err
		}
		if err != nil {
			return nil, err
		}
		have := c.CachedInfo().Config
		want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
		if sameConsumer(have, want) {
			return c, nil // one request per partition, not two, when replicas start together
		}
		return stream.UpdateConsumer(ctx, want)
	}
	return nil, errors.New("created and deleted concurrently")
}

// sameConsumer reports whether have already has every setting of want that
// consumerConfig sets.
func sameConsumer(have, want jetstream.ConsumerConfig) bool {
	return have.Durable == want.Durable && have.Description == want.Description &&
		have.FilterSubject == want.FilterSubject && have.DeliverPolicy == want.DeliverPolicy &&
		have.AckPolicy == want.AckPolicy && have.AckWait == want.AckWait &&
		have.MaxDeliver == want.MaxDeliver && have.MaxAckPending == want.MaxAckPending
}
