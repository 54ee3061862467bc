package changefeed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of the provisioning retries: the first pause, the longest, and
// the most one attempt may take, so that a request lost to a server that
// stopped answering does not use up the whole start phase.
const (
	provisionBackoff    = 100 * time.Millisecond
	provisionMaxBackoff = 5 * time.Second
	provisionAttempt    = 10 * time.Second
)

// provision runs provisionFeed until it succeeds, fails for good, or ctx
// ends. JetStream answers "no responders", 503 (err_code 10008, "JetStream
// system temporarily unavailable") or nothing at all while a cluster elects
// its leaders; those are retried with jittered exponential backoff, and
// Ready reports the last of them meanwhile.
//
// The instance announces itself as a member as soon as the lease bucket
// exists, before it looks at the consumers: replicas started together
// then appear within a round trip of each other, and their peers count
// them all in one balancing step (see balanceLoop) rather than in waves as
// each finishes provisioning. Should provisioning then fail, the
// announcement is withdrawn. announced runs after the first announcement.
func (pr *Processor) provision(ctx context.Context, js jetstream.JetStream, announced func(jetstream.KeyValue)) (jetstream.KeyValue, *feed, error) {
	var bucket jetstream.KeyValue // the bucket announced in, once announced
	announce := func(ctx context.Context, kv jetstream.KeyValue) error {
		if err := (&leaseTable{kv: kv, self: pr.cfg.Instance}).heartbeat(ctx); err != nil {
			return fmt.Errorf("announce the member: %w", err)
		}
		if bucket == nil {
			bucket = kv
			announced(kv)
		}
		return nil
	}
	kv, f, err := pr.provisionRetrying(ctx, js, announce)
	if err != nil && bucket != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseGrace)
		defer cancel()
		if lerr := (&leaseTable{kv: bucket, self: pr.cfg.Instance}).leave(lctx); lerr != nil {
			err = errors.Join(err, fmt.Errorf("withdraw the member: %w", lerr))
		}
	}
	return kv, f, err
}

// provisionRetrying is provision's loop of attempts.
func (pr *Processor) provisionRetrying(ctx context.Context, js jetstream.JetStream,
	announce func(context.Context, jetstream.KeyValue) error) (jetstream.KeyValue, *feed, error) {
	backoff := provisionBackoff
	var last error // the last transient error, reported if ctx ends mid-attempt
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, provisionAttempt)
		kv, f, err := provisionFeed(actx, js, pr.cfg, announce)
		cancel()
		if err == nil {
			return kv, f, nil
		}
		if ctx.Err() != nil {
			return nil, nil, errors.Join(last, err, ctx.Err())
		}
		if !transient(err) {
			return nil, nil, err
		}
		last = err
		pr.mu.Lock()
		pr.startErr = err
		pr.mu.Unlock()
		pause := backoff/2 + rand.N(backoff/2+1)
		pr.log.Warn("change feed provisioning failed; retrying", "attempt", attempt, "retry_in", pause.String(), "err", err)
		sleep(ctx, pause)
		if ctx.Err() != nil {
			return nil, nil, errors.Join(last, ctx.Err())
		}
		backoff = min(2*backoff, provisionMaxBackoff)
	}
}

// transient reports whether err is one a JetStream cluster gives while it
// starts or elects leaders, which a later attempt may not meet.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.Code == 504 ||
			apiErr.ErrorCode == 10008 || // JetStream system temporarily unavailable
			apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled ||
			apiErr.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	return false
}
