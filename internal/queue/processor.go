package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/hostkit/hostkit/internal/engine"
)

// processorLabel is the processor label of this package's metrics.
const processorLabel = "queue"

// refillCheck bounds how long a worker waits in the iterator before it looks
// again whether a pull request is due. nats.go's iterator skips its refill
// when the previous request is still being sent (a race that CPU contention
// makes likely with small batches) and then waits for a missed heartbeat:
// seen as 5 s stalls at prefetch 4. Coming back every refillCheck bounds
// such a stall to refillCheck; idle, it costs a timer per worker per period.
const refillCheck = 20 * time.Millisecond

// resubscribeWait is the pause before consuming again after the consumer
// went away (deleted by an operator, cluster restarted without its state).
const resubscribeWait = time.Second

// route is a registered handler with its metric series looked up once.
type route struct {
	handler Handler
	count   *counters
}

// Processor consumes JOBS and runs the handler registered for each job's
// subject. It is a host service; register it after the engine.
type Processor struct {
	eng      *engine.Engine
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	handlers map[string]Handler
	tracer   trace.Tracer // nil: no spans

	// Set by Start, read-only afterwards.
	routes    map[string]route
	unhandled *counters

	started atomic.Bool
	js      jetstream.JetStream
	running atomic.Int64
	// handedBack counts the prefetched jobs given back at Stop.
	handedBack atomic.Int64
	// stopping is stopCtx.Done(): closed by stopFetching, through stop.
	stopping <-chan struct{}
	stopCtx  context.Context
	stop     context.CancelFunc
	stopOnce sync.Once
	// stopBegan is when stopping was closed; written before the close.
	stopBegan time.Time
	// unconfirmed counts the jobs settled while stopping whose outcome the
	// server did not confirm within StopConfirmWait.
	unconfirmed atomic.Int64
	loopDone    chan struct{}

	// handlerCtx is the parent of every handler's context; it is cancelled
	// only when Stop gives up waiting, never by a signal.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	// received counts the jobs out of the iterator; stall holds why the
	// processor is stalled (see watch), nil when it is not.
	received atomic.Int64
	stall    atomic.Pointer[error]

	// keep sends the running jobs' progress signals; set by Start.
	keep *keeper

	mu   sync.Mutex
	iter jetstream.MessagesContext
	err  error // why the processor is not consuming, for Ready
}

// New returns a processor consuming through eng. Register handlers with
// Handle before Start.
func New(eng *engine.Engine, cfg Config, log *slog.Logger, metrics *Metrics) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stopCtx, stop := context.WithCancel(context.Background())
	return &Processor{
		eng:      eng,
		cfg:      cfg,
		log:      log.With("processor", processorLabel),
		metrics:  metrics,
		handlers: make(map[string]Handler),
		stopping: stopCtx.Done(),
		stopCtx:  stopCtx,
		stop:     stop,
		loopDone: make(chan struct{}),
		err:      errors.New("queue processor not started"),
	}, nil
}

// Handle registers h for jobs published on subject, which must be a literal
// subject under "jobs." such as "jobs.ping". Like http.ServeMux, it panics on
// a programming error: a bad subject, a nil handler, a subject registered
// twice or a call after Start.
func (p *Processor) Handle(subject string, h Handler) {
	switch {
	case p.started.Load():
		panic("queue: Handle called after Start")
	case !strings.HasPrefix(subject, "jobs.") || strings.ContainsAny(subject, "*> \t\r\n") ||
		strings.Contains(subject, "..") || strings.HasSuffix(subject, "."):
		panic(fmt.Sprintf("queue: Handle(%q): subject must be a literal subject under jobs.", subject))
	case h == nil:
		panic(fmt.Sprintf("queue: Handle(%q): nil handler", subject))
	}
	if _, dup := p.handlers[subject]; dup {
		panic(fmt.Sprintf("queue: Handle(%q): subject already has a handler", subject))
	}
	p.handlers[subject] = h
}

// Start creates or updates the streams and the consumer and starts
// consuming. The engine must have started. Transient JetStream errors (no
// responders, JetStream temporarily unavailable during a leader election,
// timeouts) are retried with backoff until ctx ends.
func (p *Processor) Start(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("queue processor already started")
	}
	p.js = p.eng.JetStream()
	if p.js == nil {
		return errors.New("queue processor: engine not started (register the engine before the processor)")
	}
	var iter jetstream.MessagesContext
	err := engine.Retry(ctx, p.log, "queue provisioning", func(ctx context.Context) error {
		var err error
		iter, err = p.subscribe(ctx)
		return err
	})
	if err != nil {
		return err
	}
	p.handlerCtx, p.cancelHandler = context.WithCancel(context.Background())
	p.routes = make(map[string]route, len(p.handlers))
	for subject, h := range p.handlers {
		p.routes[subject] = route{handler: h, count: p.metrics.counters(processorLabel, subject)}
	}
	p.unhandled = p.metrics.counters(processorLabel, unhandledSubject)
	p.setIter(iter, nil)
	p.keep = newKeeper(p.cfg.Concurrency, p.cfg.AckWait/3)
	go p.keep.run(p.loopDone)
	go p.loop(iter)
	go p.watch()
	p.log.Info("queue processor started", "stream", JobsStream, "consumer", JobsConsumer,
		"handlers", len(p.handlers), "concurrency", p.cfg.Concurrency, "prefetch", p.cfg.Prefetch,
		"ack_wait", p.cfg.AckWait.String(), "max_deliver", p.cfg.MaxDeliver)
	return nil
}

func (p *Processor) subscribe(ctx context.Context) (jetstream.MessagesContext, error) {
	cons, err := ensure(ctx, p.js, p.cfg, p.eng.Replicas())
	if err != nil {
		return nil, fmt.Errorf("queue processor: %w", err)
	}
	iter, err := cons.Messages(
		jetstream.PullMaxMessages(p.cfg.Prefetch),
		jetstream.PullThresholdMessages(p.cfg.refillBelow()),
		jetstream.PullExpiry(p.cfg.FetchWait),
		// A missed heartbeat (a slow or restarting server) is handled inside
		// the iterator by asking again; it is not a reason to stop a worker.
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return nil, fmt.Errorf("queue processor: consume %s: %w", JobsConsumer, err)
	}
	return iter, nil
}

func (p *Processor) setIter(iter jetstream.MessagesContext, err error) {
	p.mu.Lock()
	p.iter, p.err = iter, err
	p.mu.Unlock()
}

// Ready reports nil while the processor is consuming, and an error wrapping
// ErrStalled while it found itself stalled and has not received a job since.
func (p *Processor) Ready() error {
	select {
	case <-p.stopping:
		return errors.New("queue processor stopping")
	default:
	}
	if err := p.stall.Load(); err != nil {
		return *err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop stops fetching, hands jobs fetched but not started back to the server
// and waits for running handlers, bounded by ctx. When ctx ends first, the
// handlers' contexts are cancelled and the jobs they give up on are handed
// back too; a handler that ignores its context leaves its job unacknowledged,
// to be delivered again after AckWait.
//
// A job finished while stopping is acknowledged and the server's confirmation
// awaited, so that a process exiting after Stop does not leave it to run
// again. Every wait for the server is bounded by Config.StopConfirmWait, not
// by ctx alone: when the server cannot be reached (the whole cluster down),
// no confirmation comes, and waiting for one until ctx ends would only hold
// the host's whole shutdown deadline and then fail. Stop then returns once
// the handlers have finished and their acknowledgements have been tried for
// StopConfirmWait, with an error counting the jobs the server did not
// confirm: they are not lost but delivered again after AckWait. Fetched jobs
// are handed back as long as the connection is up, and at most for
// StopConfirmWait; the rest, too, come back after AckWait. An attempt to
// consume again (after the consumer went away) is abandoned at once.
func (p *Processor) Stop(ctx context.Context) error {
	if !p.started.Load() || p.handlerCtx == nil {
		return nil
	}
	p.stopFetching()
	select {
	case <-p.loopDone:
		p.cancelHandler()
		if n := p.unconfirmed.Load(); n > 0 {
			return fmt.Errorf("queue processor: %d jobs finished while stopping are not recorded, the server did not "+
				"confirm their outcome within queue.stop_confirm_wait (%s): they will be delivered again", n, p.cfg.StopConfirmWait)
		}
		p.log.Info("queue processor stopped", "handed_back", p.handedBack.Load())
		return nil
	case <-ctx.Done():
		p.cancelHandler()
		return fmt.Errorf("queue processor: %d handlers still running: %w", p.running.Load(), ctx.Err())
	}
}

// Stopping is the host's lifecycle hook that runs for every service before
// any Stop: the processor stops taking new jobs the moment the application
// begins to stop, not only when its own turn to stop comes (services stop in
// reverse order, and the change feed, added after it, stops first).
func (p *Processor) Stopping(context.Context) error {
	if p.started.Load() && p.handlerCtx != nil {
		p.stopFetching()
	}
	return nil
}

// stopFetching stops the iterator once; running handlers go on.
func (p *Processor) stopFetching() {
	p.stopOnce.Do(func() {
		p.stopBegan = time.Now()
		p.stop()
		p.mu.Lock()
		// Drain rather than Stop: the buffered jobs come out of the iterator
		// and are handed back at once instead of waiting AckWait.
		p.iter.Drain()
		p.mu.Unlock()
	})
}

// loop runs Concurrency workers over one iterator, and consumes again when
// the iterator fails, until Stop.
func (p *Processor) loop(iter jetstream.MessagesContext) {
	defer close(p.loopDone)
	for {
		errs := make(chan error, p.cfg.Concurrency)
		for i := range p.cfg.Concurrency {
			go func() { errs <- p.work(iter, &p.keep.slots[i]) }()
		}
		var err error
		for range p.cfg.Concurrency {
			err = errors.Join(err, <-errs)
		}
		if p.isStopping() {
			return
		}
		iter.Stop()
		p.log.Error("queue processor stopped consuming; retrying", "err", err)
		p.setIter(iter, fmt.Errorf("queue processor not consuming: %w", err))
		iter = p.resubscribe()
		if iter == nil {
			return
		}
	}
}

// work takes one job at a time from the shared iterator until it closes.
// Once Stop began, the jobs still coming out of the drained iterator's buffer
// are handed back instead of run, until the iterator closes or handBackOver.
func (p *Processor) work(iter jetstream.MessagesContext, keep *keepSlot) error {
	for {
		m, err := iter.Next(jetstream.NextMaxWait(refillCheck))
		if errors.Is(err, nats.ErrTimeout) {
			if p.isStopping() && p.handBackOver() {
				return nil
			}
			continue
		}
		if err != nil {
			if p.isStopping() {
				return nil
			}
			return err
		}
		p.noteReceived()
		if p.isStopping() {
			p.requeue(m)
			p.handedBack.Add(1)
			continue
		}
		p.running.Add(1)
		p.process(m, keep)
		p.running.Add(-1)
	}
}

// resubscribe retries creating the consumer until it works or Stop; it
// returns nil on Stop. Stop cuts an attempt short: a server that does not
// answer would hold it, and Stop with it, for the attempt's whole timeout.
func (p *Processor) resubscribe() jetstream.MessagesContext {
	for {
		select {
		case <-p.stopping:
			return nil
		case <-time.After(resubscribeWait):
		}
		ctx, cancel := context.WithTimeout(p.stopCtx, 10*time.Second)
		iter, err := p.subscribe(ctx)
		cancel()
		if err != nil {
			if p.isStopping() {
				return nil
			}
			p.log.Warn("queue processor cannot consume yet", "err", err)
			continue
		}
		p.mu.Lock()
		select {
		case <-p.stopping:
			// Stop drained the old iterator; this one was never seen by it.
			p.mu.Unlock()
			iter.Stop()
			return nil
		default:
		}
		p.iter, p.err = iter, nil
		p.mu.Unlock()
		p.log.Info("queue processor consuming again")
		return iter
	}
}

// handBackOver reports, once Stop began and the drained iterator's buffer was
// found empty, whether the workers may leave the iterator without waiting for
// it to close. It closes only after a round trip to the server (nats.go's
// unsubscription flush, which waits up to 10 s whatever Stop's context), and
// a server that cannot be reached never completes it. Nothing more comes in
// through a connection that is down; on one that is up but not answering,
// the jobs that might still come are left to AckWait after StopConfirmWait.
func (p *Processor) handBackOver() bool {
	nc := p.eng.Conn()
	return nc == nil || !nc.IsConnected() || time.Since(p.stopBegan) >= p.cfg.StopConfirmWait
}

func (p *Processor) requeue(m jetstream.Msg) {
	// With a delay, however short, the server records the new due time in the
	// consumer's stored state; a plain Nak only queues the job in memory, and
	// a server stopped right after (the embedded one, at shutdown) would
	// deliver it again only after AckWait.
	if err := m.NakWithDelay(time.Millisecond); err != nil {
		p.log.Debug("hand back job", "subject", m.Subject(), "err", err)
	}
}

func (p *Processor) isStopping() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}
