package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JobsStreamConfig is the JOBS stream: files on disk, work-queue retention so
// that an acknowledged job is deleted.
func JobsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        JobsStream,
		Description: "hostkit worker jobs; removed once a handler succeeds",
		Subjects:    []string{JobsSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// DLQStreamConfig is the DLQ stream: failed messages are kept until an
// operator removes or replays them. Its window for duplicate message IDs is
// what makes dead-lettering the same delivery twice (a crash between copying
// and terminating it) store one copy.
func DLQStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "hostkit worker dead letters; error and attempts in headers",
		Subjects:    []string{DLQSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  10 * time.Minute,
	}
}

// jobsConsumerConfig is the shared durable consumer. MaxDeliver is unlimited
// on the server because the processor itself dead-letters a job on its last
// attempt; a server-side limit would instead leave the job stranded in JOBS.
func jobsConsumerConfig(cfg Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:     JobsConsumer,
		Description: "hostkit worker queue processor, shared by all replicas",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     cfg.AckWait,
		MaxDeliver:  -1,
	}
}

// ensure creates or updates the streams and the consumer, so that a start
// after a configuration change applies it and a fresh server needs no setup.
func ensure(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) (jetstream.Consumer, error) {
	for _, sc := range []jetstream.StreamConfig{JobsStreamConfig(replicas), DLQStreamConfig(replicas)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, JobsStream, jobsConsumerConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("create or update consumer %s: %w", JobsConsumer, err)
	}
	return cons, nil
}
