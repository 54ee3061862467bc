package changefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/natsclient"
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

	// epoch and skew make the monotonic clock of now; skew stays 0 except
	// in tests that simulate a paused process.
	epoch time.Time
	skew  atomic.Int64

	// Set by Start, then read-only.
	base  context.Context // of the partition workers: Start's values, not its cancellation
	conn  *nats.Conn      // the feed's connection, which carries its acknowledgements
	feed  *feed
	table *leaseTable
	view  *view

	workers   sync.WaitGroup
	stop      chan struct{} // closed by Stop: the balance loop ends
	loopDone  chan struct{}
	renewDone chan struct{}
	lagDone   chan struct{}
	// renewHold is held by each renewal round; balanceHold by each
	// balancing step, which a test holds to stall balancing. renewPaused
	// makes rounds skip their writes (a test hook).
	renewHold, balanceHold sync.Mutex
	renewPaused            atomic.Bool
	// leaving is set by Stop under renewHold: no heartbeat after it.
	leaving bool

	mu          sync.Mutex
	started     bool
	running     bool
	stopping    bool
	startErr    error // the last provisioning failure while Start retries
	cancelLoop  context.CancelFunc
	cancelRenew context.CancelFunc
	cancelView  context.CancelFunc
	held        map[int]*lease
	// lastDone holds each partition's latest worker's done channel.
	lastDone map[int]<-chan struct{}
	renewErr error
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
		cfg:       cfg,
		js:        js,
		handler:   handler,
		metrics:   metrics,
		log:       log,
		epoch:     time.Now(),
		stop:      make(chan struct{}),
		loopDone:  make(chan struct{}),
		renewDone: make(chan struct{}),
		lastDone:  map[int]<-chan struct{}{},
		held:      map[int]*lease{},
	}, nil
}

// now is the processor's monotonic clock: it keeps counting while the
// process is stopped (SIGSTOP), so a lease's deadline passes during a pause.
func (pr *Processor) now() time.Duration {
	return time.Since(pr.epoch) + time.Duration(pr.skew.Load())
}

// Start creates or updates the stream, the lease bucket and the consumers,
// retrying transient JetStream errors until ctx ends, then starts watching
// the lease bucket, renewing and balancing. A processor starts once.
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
	// Start's context may end with the start phase; the goroutines run
	// until Stop.
	pr.base = context.WithoutCancel(ctx)
	pr.view = newView(pr.cfg.LeaseTTL, pr.now, pr.log)
	viewCtx, cancelView := context.WithCancel(pr.base)
	// The view is watched from the member's announcement on, while the
	// consumers are provisioned, so that the balancer finds the membership
	// already settled if it has not changed meanwhile.
	kv, f, err := pr.provision(ctx, js, func(kv jetstream.KeyValue) { go pr.view.run(viewCtx, kv, pr.cfg.RetryDelay) })
	if err != nil {
		cancelView()
		return fmt.Errorf("change feed: %w", err)
	}
	pr.feed = f
	pr.conn = js.Conn()
	pr.table = &leaseTable{kv: kv, self: pr.cfg.Instance}
	renewCtx, cancelRenew := context.WithCancel(pr.base)
	loopCtx, cancelLoop := context.WithCancel(pr.base)

	pr.mu.Lock()
	pr.running, pr.startErr = true, nil
	pr.cancelLoop, pr.cancelRenew, pr.cancelView = cancelLoop, cancelRenew, cancelView
	pr.mu.Unlock()
	go pr.renewLoop(renewCtx)
	go pr.lapseLoop(renewCtx)
	go pr.balanceLoop(loopCtx)
	pr.lagDone = make(chan struct{})
	go func() {
		defer close(pr.lagDone)
		if pr.metrics != nil {
			pr.lagLoop(loopCtx)
		}
	}()

	pr.log.Info("change feed started", "instance", pr.cfg.Instance, "partitions", pr.cfg.Partitions,
		"lease_ttl", pr.cfg.LeaseTTL.String(), "renew_interval", pr.cfg.RenewInterval.String(),
		"fencing_margin", Margin(pr.cfg.LeaseTTL).String(), "start_from", pr.cfg.StartFrom,
		"ack_wait", pr.cfg.AckWait.String(), "replicas", pr.cfg.Replicas)
	return nil
}

// Stop leaves the membership, ends balancing and fetching, waits for the
// in-flight changes to be handled and acknowledged (renewing the leases
// meanwhile), then releases every lease so that the peers take the
// partitions over at once. If ctx ends first, the unfinished handlers'
// contexts are cancelled and their changes handed back to the partitions'
// next owners. If the server does not answer a ping within
// natsclient.SilentBound, Stop does the same at once rather than wait for
// it, and reports the leases left to lapse.
func (pr *Processor) Stop(ctx context.Context) error {
	pr.mu.Lock()
	if !pr.running || pr.stopping {
		pr.mu.Unlock()
		return nil
	}
	pr.stopping = true
	pr.mu.Unlock()
	defer pr.cancelView()

	close(pr.stop)
	var errs []error
	// A server that does not answer (frozen, behind a partition, or the
	// whole cluster down) takes no release and confirms no acknowledgement;
	// waiting for it would hold the host's whole shutdown deadline for
	// nothing, as the leases lapse after their TTL anyway and their
	// unconfirmed changes come again to the next owners. Stop then takes
	// the path of a stop out of time: each step gets releaseGrace, and the
	// changes in flight are cancelled.
	if err := natsclient.Ping(ctx, pr.conn); err != nil && ctx.Err() == nil {
		errs = append(errs, fmt.Errorf("change feed: leases left to lapse after changefeed.lease_ttl: %w", err))
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		cancel()
	}
	// Let a running step finish rather than cancel it: an acquisition cut
	// off after the server applied it would leave a lease nobody releases.
	select {
	case <-pr.loopDone:
	case <-ctx.Done():
		pr.cancelLoop()
		<-pr.loopDone
	}
	pr.cancelLoop()
	<-pr.lagDone // no lag reported for a partition after its release
	// Leaving first lets the peers count without this instance while it
	// drains, so they take its leases the moment they are released.
	if err := pr.leave(ctx); err != nil {
		errs = append(errs, fmt.Errorf("change feed: leave the members: %w", err))
	}

	held := pr.heldLeases() // final: the balance loop has ended
	for _, l := range held {
		l.w.stopFetch()
	}
	if err := waitGroup(ctx, &pr.workers); err != nil {
		for _, l := range held {
			l.w.abort()
		}
		errs = append(errs, fmt.Errorf("change feed: in-flight changes left un-acked: %w", err))
	}
	pr.cancelRenew()
	<-pr.renewDone
	pr.releaseAll(ctx, held)
	return errors.Join(errs...)
}

// leave stops the heartbeats and deletes the member key, with a grace
// period if ctx has ended.
func (pr *Processor) leave(ctx context.Context) error {
	pr.renewHold.Lock() // no heartbeat in flight that could land after the delete
	pr.leaving = true
	pr.renewHold.Unlock()
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), releaseGrace)
		defer cancel()
	}
	return pr.table.leave(ctx)
}

// releaseAll deletes the leases in held.
func (pr *Processor) releaseAll(ctx context.Context, held map[int]*lease) {
	var wg sync.WaitGroup
	for _, l := range held {
		wg.Go(func() { pr.release(ctx, l, "stop") })
	}
	wg.Wait()
	pr.log.Info("change feed leases released", "instance", pr.cfg.Instance, "count", len(held))
	pr.metrics.setOwned(0)
}

// Ready reports whether the processor is running, sees the lease bucket and
// could renew its leases in the last round.
func (pr *Processor) Ready() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	switch {
	case pr.started && !pr.running && pr.startErr != nil:
		return fmt.Errorf("change feed starting: %w", pr.startErr)
	case !pr.running:
		return errors.New("change feed not started")
	case pr.stopping:
		return errors.New("change feed stopping")
	case !pr.view.isSynced():
		return errors.New("change feed: lease bucket not watched yet")
	}
	return pr.renewErr
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

func (pr *Processor) heldLeases() map[int]*lease {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return maps.Clone(pr.held)
}

// lagLoop exports the changes not yet acknowledged of each owned partition
// every RenewInterval, on a goroutine of its own so that these requests
// never delay a renewal.
func (pr *Processor) lagLoop(ctx context.Context) {
	tick := time.NewTicker(pr.cfg.RenewInterval)
	defer tick.Stop()
	for {
		for p := range pr.heldLeases() {
			cons, err := pr.feed.consumer(ctx, p)
			if err != nil {
				continue
			}
			info, err := cons.Info(ctx)
			if err != nil {
				pr.log.Debug("change feed lag unknown", "partition", p, "err", err)
				continue
			}
			// Delivered in a batch is not yet handled: both count.
			pr.metrics.setPending(p, info.NumPending+uint64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
