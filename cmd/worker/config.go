package main

import (
	"errors"

	"github.com/hostkit/hostkit/internal/changefeed"
	"github.com/hostkit/hostkit/internal/engine"
	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/telemetry"
	"github.com/hostkit/hostkit/internal/web"
)

// config holds the worker's own keys, bound to the settings of the packages
// they configure.
type config struct {
	HTTP       web.Config
	Engine     engine.Config
	Queue      queue.Config
	ChangeFeed changefeed.Config
	Telemetry  telemetry.Config
	// example:begin
	Example exampleConfig
	// example:end
}

// declare declares every worker key on c, with the packages' defaults, and
// the checks that span keys.
func (cfg *config) declare(c *host.Config) {
	cfg.HTTP.Declare(c, ":8090", "HTTP listen address for health and metrics")
	cfg.declareEngine(c)
	cfg.declareQueue(c)
	cfg.declareChangeFeed(c)
	cfg.Telemetry.Declare(c)
	// example:begin
	cfg.Example.declare(c)
	// example:end
	c.Check(func() error {
		// One key, two packages: the change feed replicates like the queue.
		cfg.ChangeFeed.Replicas = cfg.Engine.Replicas
		if cfg.ChangeFeed.Instance == "" {
			cfg.ChangeFeed.Instance = changefeed.DefaultConfig().Instance
		}
		return invalid(cfg.Engine.Validate(), cfg.Queue.Validate(), cfg.ChangeFeed.Validate())
	})
}

func (cfg *config) declareEngine(c *host.Config) {
	e := engine.DefaultConfig()
	c.String(&cfg.Engine.URL, "nats.url", "",
		"external NATS cluster (nats://host:4222, comma-separated); empty runs an embedded JetStream server")
	c.String(&cfg.Engine.StoreDir, "nats.embedded.store_dir", e.StoreDir,
		"directory where the embedded server keeps its streams")
	c.String(&cfg.Engine.Addr, "nats.embedded.addr", e.Addr,
		"client address of the embedded server; empty = in-process only, port 0 = any free port")
	c.Bool(&cfg.Engine.SyncAlways, "nats.sync_always", false,
		"embedded server fsyncs every write (slower); otherwise writes survive a process crash and are fsynced every 2m")
	c.Int(&cfg.Engine.Replicas, "nats.replicas", e.Replicas,
		"replicas of the streams the worker creates (3 with a 3-node cluster; 1 for the embedded server)")
	c.Duration(&cfg.Engine.ConnectTimeout, "nats.connect_timeout", e.ConnectTimeout,
		"how long start waits for an external cluster before failing")
	c.Duration(&cfg.Engine.PingInterval, "nats.ping_interval", e.PingInterval,
		"how often the worker pings its NATS server; a server that stops answering is left after ping_interval × (max_pings_outstanding+1)")
	c.Int(&cfg.Engine.MaxPingsOutstanding, "nats.max_pings_outstanding", e.MaxPingsOutstanding,
		"unanswered pings before the worker gives its NATS server up and moves to another node")
	cfg.Engine.Name = e.Name
}

func (cfg *config) declareQueue(c *host.Config) {
	q := queue.DefaultConfig()
	c.Int(&cfg.Queue.Concurrency, "queue.concurrency", q.Concurrency,
		"job handlers running at once in this replica")
	c.Int(&cfg.Queue.Prefetch, "queue.prefetch", q.Prefetch,
		"jobs fetched ahead of free handlers; lower it (down to queue.concurrency) for jobs that take seconds")
	c.Duration(&cfg.Queue.AckWait, "queue.ack_wait", q.AckWait,
		"how long a job of a dead worker waits before it is delivered again; running jobs are kept alive")
	c.Int(&cfg.Queue.MaxDeliver, "queue.max_deliver", q.MaxDeliver,
		"attempts before a failing job goes to the DLQ stream")
	c.Duration(&cfg.Queue.Backoff, "queue.backoff", q.Backoff,
		"delay before retrying a failed job; doubles with every attempt")
	c.Duration(&cfg.Queue.MaxBackoff, "queue.max_backoff", q.MaxBackoff,
		"longest delay between attempts")
	c.Duration(&cfg.Queue.FetchWait, "queue.fetch_wait", q.FetchWait,
		"how long one pull request waits for jobs on an idle queue (heartbeats every half of it)")
	c.Duration(&cfg.Queue.StopConfirmWait, "queue.stop_confirm_wait", q.StopConfirmWait,
		"how long stopping waits for NATS to confirm the jobs it finished; past it (cluster unreachable) they run again after queue.ack_wait")
}

func (cfg *config) declareChangeFeed(c *host.Config) {
	f := changefeed.DefaultConfig()
	// Declared empty so the documented default does not depend on the machine
	// that renders it; the check below fills in the host name.
	c.String(&cfg.ChangeFeed.Instance, "changefeed.instance", "",
		"this replica's name in the lease table, unique among replicas; empty: the host name (the pod name in Kubernetes)")
	c.Int(&cfg.ChangeFeed.Partitions, "changefeed.partitions", f.Partitions,
		"partitions the change feed is split into")
	c.Duration(&cfg.ChangeFeed.LeaseTTL, "changefeed.lease_ttl", f.LeaseTTL,
		"how long a lease lasts without renewal: a dead replica's partitions move within TTL plus half a renew interval; a replica stops handling a partition 0.9 × TTL after its last renewal was sent")
	c.Duration(&cfg.ChangeFeed.RenewInterval, "changefeed.renew_interval", f.RenewInterval,
		"period of lease renewal; below 0.9 × changefeed.lease_ttl; balancing acts on a membership change once it has been stable for half of it")
	c.Choice(&cfg.ChangeFeed.StartFrom, "changefeed.start_from", f.StartFrom,
		[]string{changefeed.StartBeginning, changefeed.StartNow}, "where a brand-new feed starts")
	c.Duration(&cfg.ChangeFeed.AckWait, "changefeed.ack_wait", f.AckWait,
		"how long a change may be handled before it is delivered again")
	c.Duration(&cfg.ChangeFeed.RetryDelay, "changefeed.retry_delay", f.RetryDelay,
		"delay before a failed change is retried")
	c.Int(&cfg.ChangeFeed.Batch, "changefeed.batch", f.Batch,
		"changes of a partition fetched at once; handled one at a time, in order")
	c.Duration(&cfg.ChangeFeed.FetchWait, "changefeed.fetch_wait", f.FetchWait,
		"how long one pull waits for a change")
	c.Duration(&cfg.ChangeFeed.MaxAge, "changefeed.max_age", f.MaxAge,
		"how long the CHANGES stream keeps changes; 0 keeps them")
}

// invalid turns the packages' validation errors into a configuration error,
// which exits 2.
func invalid(errs ...error) error {
	if err := errors.Join(errs...); err != nil {
		return &host.ConfigError{Err: err}
	}
	return nil
}
