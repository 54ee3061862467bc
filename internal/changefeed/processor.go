package changefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// releaseGrace is the time Stop allows itself to release the leases when its
// own context has already expired: one round trip per lease that spares the
// peers waiting a whole LeaseTTL for them.
const releaseGrace = time.Second

// Processor runs a change feed's handler on the partitions whose leases it
// holds. It is a host service: Start provisions the feed and starts
// balancing, Stop finishes in-flight changes and releases the leases.
type Processor struct {
	cfg     Config
	js      func() jetstream.JetStream
	handler Handler
	metrics *Metrics
	log     *slog.Logger
	tracer  trace.Tracer // nil: no spans

	// Set by Start, then read-only.
	base      context.Context // of the partition workers: Start's values, not its cancellation
	consumers []jetstream.Consumer
	table     *leaseTable

	workers  sync.WaitGroup
	stop     chan struct{} // closed by Stop: the balance loop ends after its cycle
	loopDone chan struct{}
	// lastDone holds each partition's latest worker's done channel; used by
	// the balance loop only.
	lastDone map[int]<-chan struct{}

	mu         sync.Mutex
	started    bool
	running    bool
	stopping   bool
	cancelLoop context.CancelFunc
	held       map[int]heldLease // written by the balance loop, and by Stop once it has ended
	cycleErr   error
}

// heldLease is a lease this instance holds and the worker consuming its
// partition.
type heldLease struct {
	rev     uint64
	renewed time.Time // when the request that wrote rev was sent
	w       *worker
}

// New returns a processor that passes the changes of the partitions it
// comes to own to handler. js returns the JetStream connection when Start
// runs (a method value such as engine.JetStream, which is nil until the
// engine has started). metrics may be nil; log may be nil to discard logs.
func New(cfg Config, js func() jetstream.JetStream, handler Handler, metrics *Metrics, log *slog.Logger) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if js == nil || handler == nil {
		return nil, errors.New("change feed: a JetStream source and a handler are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processor{
		cfg:      cfg,
		js:       js,
		handler:  handler,
		metrics:  metrics,
		log:      log,
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		lastDone: map[int]<-chan struct{}{},
		held:     map[int]heldLease{},
	}, nil
}

// Start creates or updates the stream, the lease bucket and the consumers,
// then starts the balance loop, whose first cycle acquires leases at once.
// A processor starts once.
func (pr *Processor) Start(ctx context.Context) error {
	pr.mu.Lock()
	if pr.started {
		pr.mu.Unlock()
		return errors.New("change feed: already started")
	}
	pr.started = true
	pr.mu.Unlock()

	js := pr.js()
	if js == nil {
		return errors.New("change feed: no JetStream connection (is the engine started?)")
	}
	kv, consumers, err := provision(ctx, js, pr.cfg)
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	pr.consumers = consumers
	pr.table = newLeaseTable(kv, pr.cfg.Instance, pr.cfg.LeaseTTL)
	// Start's context may end with the start phase; the loop and the
	// workers run until Stop.
	pr.base = context.WithoutCancel(ctx)
	loopCtx, cancel := context.WithCancel(pr.base)

	pr.mu.Lock()
	pr.running, pr.cancelLoop = true, cancel
	pr.mu.Unlock()
	go pr.loop(loopCtx)

	pr.log.Info("change feed started", "instance", pr.cfg.Instance, "partitions", pr.cfg.Partitions,
		"lease_ttl", pr.cfg.LeaseTTL.String(), "renew_interval", pr.cfg.RenewInterval.String(), "start_from", pr.cfg.StartFrom,
		"ack_wait", pr.cfg.AckWait.String(), "replicas", pr.cfg.Replicas)
	return nil
}

// Stop ends the balance loop and the fetching, waits for the in-flight
// changes to be handled and acknowledged, then releases every lease so that
// the peers take the partitions over within one RenewInterval. If ctx ends
// first, the unfinished handlers' contexts are cancelled and their changes
// left un-acked, to be redelivered to the partitions' next owners.
func (pr *Processor) Stop(ctx context.Context) error {
	pr.mu.Lock()
	if !pr.running || pr.stopping {
		pr.mu.Unlock()
		return nil
	}
	pr.stopping = true
	pr.mu.Unlock()
	defer pr.cancelLoop()

	// Let a running cycle finish rather than cancel it: an acquisition
	// cut off after the server applied it would leave a lease nobody
	// releases.
	close(pr.stop)
	select {
	case <-pr.loopDone:
	case <-ctx.Done():
		pr.cancelLoop()
		<-pr.loopDone
	}

	held := pr.heldLeases() // final: the loop has ended
	for _, h := range held {
		h.w.stopFetch()
	}
	var errs []error
	if err := waitGroup(ctx, &pr.workers); err != nil {
		for _, h := range held {
			h.w.abort()
		}
		errs = append(errs, fmt.Errorf("change feed: in-flight changes left un-acked: %w", err))
	}
	errs = append(errs, pr.releaseAll(ctx, held))
	return errors.Join(errs...)
}

// Ready reports whether the processor is running and its last balance
// cycle could renew and read the leases.
func (pr *Processor) Ready() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	switch {
	case !pr.running:
		return errors.New("change feed not started")
	case pr.stopping:
		return errors.New("change feed stopping")
	}
	return pr.cycleErr
}

// Owned returns the partitions whose leases the processor holds, in order.
func (pr *Processor) Owned() []int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	owned := make([]int, 0, len(pr.held))
	for p := range pr.held {
		owned = append(owned, p)
	}
	slices.Sort(owned)
	return owned
}

func (pr *Processor) heldLeases() map[int]heldLease {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return maps.Clone(pr.held)
}

// releaseAll deletes the leases in held.
func (pr *Processor) releaseAll(ctx context.Context, held map[int]heldLease) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), releaseGrace)
		defer cancel()
	}
	var errs []error
	for p, h := range held {
		if err := pr.table.release(ctx, p, h.rev); err != nil {
			errs = append(errs, fmt.Errorf("change feed: release lease %d (it expires after %s): %w", p, pr.cfg.LeaseTTL, err))
		}
		pr.metrics.dropPending(p)
	}
	pr.mu.Lock()
	clear(pr.held)
	pr.mu.Unlock()
	pr.metrics.setOwned(0)
	pr.log.Info("change feed leases released", "instance", pr.cfg.Instance, "count", len(held))
	return errors.Join(errs...)
}

// waitGroup waits for wg, or until ctx is done.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
