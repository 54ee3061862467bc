package changefeed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// consumerConfig is partition p's durable consumer. MaxAckPending 1 makes
// the server hand out the partition's changes one at a time, in order,
// whoever fetches them; its ack floor is the partition's checkpoint.
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
		MaxAckPending: 1,
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

// provisionFeed creates or updates the stream, the lease bucket and one consumer
// per partition, and returns the consumers indexed by partition. Concurrent
// replicas may run it at once: every step is idempotent.
func provisionFeed(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, []jetstream.Consumer, error) {
	stream, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, leaseBucketConfig(cfg))
	if err != nil {
		return nil, nil, fmt.Errorf("create bucket %s: %w", LeaseBucket, err)
	}
	consumers := make([]jetstream.Consumer, cfg.Partitions)
	for p := range consumers {
		if consumers[p], err = ensureConsumer(ctx, stream, consumerConfig(cfg, p)); err != nil {
			return nil, nil, fmt.Errorf("create consumer %s: %w", consumerConfig(cfg, p).Durable, err)
		}
	}
	return kv, consumers, nil
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
		return stream.UpdateConsumer(ctx, want)
	}
	return nil, errors.New("created and deleted concurrently")
}
