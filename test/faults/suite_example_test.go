//go:build unix

package faults_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/runtest"
)

// Settings of the suite's processes: short lease and acknowledgement
// timings, so that takeovers and redeliveries happen within seconds.
const (
	leaseTTL      = 3 * time.Second
	renewInterval = time.Second
	changeAckWait = 2 * time.Second
	jobAckWait    = 3 * time.Second
	partitions    = 16
	// fetchWait is changefeed.fetch_wait's default, which the suite keeps.
	fetchWait   = time.Second
	leaseBucket = "changefeed-leases"
)

// binaries are the programs the suite runs, built from this module.
type binaries struct{ natsServer, worker, pingapi string }

// buildBinaries builds nats-server at the version in go.mod, the worker and
// pingapi into dir.
func buildBinaries(t testing.TB, dir string) binaries {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/nats-io/nats-server/v2", "./cmd/worker", "./cmd/pingapi")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return binaries{
		natsServer: filepath.Join(dir, "nats-server"),
		worker:     filepath.Join(dir, "worker"),
		pingapi:    filepath.Join(dir, "pingapi"),
	}
}

// worker is one worker process and the instance name it leases under.
type worker struct {
	instance string
	port     int
	proc     *process
}

func (w *worker) readyURL() string { return fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", w.port) }

// phase is one step of the suite: a fault and the recovery after it.
type phase struct {
	name  string
	start time.Time
	// takeover is the fault's figure (see the report's legend); 0 when
	// the phase has none.
	takeover time.Duration
	// problems are bounds the phase did not meet.
	problems []string
}

// suite is the running system and the load on it.
type suite struct {
	t       *testing.T
	ctx     context.Context
	logDir  string
	cluster *natsCluster
	workers []*worker
	pingapi *process
	apiURL  string
	nc      *nats.Conn
	js      jetstream.JetStream

	phases  []*phase
	clock   phaseClock
	jobs    *jobLoad
	changes *changeLoad
	stop    chan struct{}
	loads   []*sync.WaitGroup
	// cancelLoad ends the loads' retries if the drain takes too long.
	cancelLoad context.CancelFunc
}

// TestFaults runs the fault suite. See the package documentation.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs a cluster of processes")
	}
	if os.Getenv("HOSTKIT_FAULTS") == "" {
		t.Skip("set HOSTKIT_FAULTS=1 (make test-faults) to run the fault suite")
	}
	s := newSuite(t)
	s.startLoad()

	s.run("steady", func(p *phase) { s.hold(3 * time.Second) })
	s.run("worker SIGTERM", func(p *phase) { s.workerFault(p, s.workers[0], syscall.SIGTERM, stopBound) })
	s.run("worker SIGKILL", func(p *phase) { s.workerFault(p, s.workers[1], syscall.SIGKILL, crashBound) })
	for i := range 4 {
		w := s.workers[(i+2)%len(s.workers)]
		s.run(fmt.Sprintf("worker SIGSTOP %d", i+1), func(p *phase) { s.workerPause(p, w) })
	}
	s.run("leader node SIGKILL", s.leaderKill)
	s.run("worker node SIGSTOP", s.workerNodePause)
	s.run("pingapi node SIGSTOP", s.pingapiNodePause)
	s.run("cluster down", s.clusterDown)
	s.drain()
	s.check()
}

func newSuite(t *testing.T) *suite {
	ctx := t.Context()
	// HOSTKIT_FAULTS_LOGS keeps the processes' logs, a directory per run,
	// for reading after a failure.
	logDir := t.TempDir()
	if keep := os.Getenv("HOSTKIT_FAULTS_LOGS"); keep != "" {
		var err error
		if err = os.MkdirAll(keep, 0o755); err == nil {
			logDir, err = os.MkdirTemp(keep, time.Now().Format("20060102-150405-"))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("process logs in %s", logDir)
	bins := buildBinaries(t, t.TempDir())
	s := &suite{t: t, ctx: ctx, logDir: logDir}
	s.phases = []*phase{{name: "setup", start: time.Now()}}

	s.cluster = startCluster(t, bins.natsServer, logDir, 3)
	if err := s.cluster.waitHealthy(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	s.connect()
	for _, name := range []string{"worker-a", "worker-b", "worker-c"} {
		w := &worker{instance: name, port: runtest.FreePort(t)}
		w.proc = newProcess(t, name, bins.worker, logDir, s.workerEnv(w))
		s.workers = append(s.workers, w)
	}
	apiPort := runtest.FreePort(t)
	s.apiURL = fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	s.pingapi = newProcess(t, "pingapi", bins.pingapi, logDir, minimalEnv(
		"NATS__URL="+s.cluster.urls(),
		"HTTP__ADDR="+fmt.Sprintf("127.0.0.1:%d", apiPort),
		"LOG__FORMAT=json",
	))
	if err := s.pingapi.start(); err != nil {
		t.Fatal(err)
	}
	if err := s.ensureWorkers(90 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := poll(30*time.Second, 100*time.Millisecond, "pingapi ready", func() bool {
		return httpOK(ctx, s.apiURL+"/healthz/ready")
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *suite) workerEnv(w *worker) []string {
	return minimalEnv(
		"NATS__URL="+s.cluster.urls(),
		"NATS__REPLICAS=3",
		"NATS__CONNECT_TIMEOUT=30s",
		"HTTP__ADDR="+fmt.Sprintf("127.0.0.1:%d", w.port),
		"LOG__FORMAT=json",
		"HOST__SHUTDOWN_TIMEOUT=10s",
		"CHANGEFEED__INSTANCE="+w.instance,
		"CHANGEFEED__PARTITIONS="+strconv.Itoa(partitions),
		"CHANGEFEED__LEASE_TTL="+leaseTTL.String(),
		"CHANGEFEED__RENEW_INTERVAL="+renewInterval.String(),
		"CHANGEFEED__ACK_WAIT="+changeAckWait.String(),
		"CHANGEFEED__RETRY_DELAY=200ms",
		"QUEUE__ACK_WAIT="+jobAckWait.String(),
		"QUEUE__BACKOFF=100ms",
		"QUEUE__MAX_BACKOFF=1s",
	)
}

// connect opens the suite's own connection, with a short ping interval so
// that it leaves a frozen node within seconds.
func (s *suite) connect() {
	nc, err := nats.Connect(s.cluster.urls(),
		nats.Name("faults-suite"),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(2),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.Timeout(time.Second),
	)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		s.t.Fatal(err)
	}
	s.nc, s.js = nc, js
}

// ensureWorkers starts every worker that is not running (a restart, as an
// orchestrator would do, also after an exit the suite did not cause) and
// waits until all are ready.
func (s *suite) ensureWorkers(timeout time.Duration) error {
	return poll(timeout, 100*time.Millisecond, "workers ready", func() bool {
		ready := true
		for _, w := range s.workers {
			if !w.proc.running() {
				// A second apart at least, so that a worker failing at
				// once is not started hundreds of times.
				if w.proc.sinceStart() >= time.Second {
					if err := w.proc.start(); err != nil {
						s.t.Log(err)
					}
				}
				ready = false
				continue
			}
			ready = ready && httpOK(s.ctx, w.readyURL())
		}
		return ready
	})
}

// startLoad starts the job clients and the change writers.
func (s *suite) startLoad() {
	if err := poll(30*time.Second, 100*time.Millisecond, "stream CHANGES", func() bool {
		_, err := s.js.Stream(s.ctx, "CHANGES")
		return err == nil
	}); err != nil {
		s.t.Fatal(err)
	}
	loadCtx, cancel := context.WithCancel(s.ctx)
	s.cancelLoad = cancel
	s.stop = make(chan struct{})
	s.jobs = newJobLoad(s.apiURL, &s.clock)
	s.changes = &changeLoad{js: s.js, phases: &s.clock, pending: map[string]bool{}}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	s.loads = append(s.loads,
		s.jobs.run(loadCtx, s.stop, 4, 100*time.Millisecond),
		s.changes.run(loadCtx, s.stop, keys, 4, 40*time.Millisecond))
}

// run runs one phase; a phase that cannot go on records why and the suite
// moves on to the next, so one broken promise does not hide the others.
func (s *suite) run(name string, f func(p *phase)) {
	p := &phase{name: name, start: time.Now()}
	s.phases = append(s.phases, p)
	s.clock.set(len(s.phases) - 1)
	s.t.Logf("%s: %s", p.start.Format(time.TimeOnly), name)
	f(p)
	if err := s.ensureWorkers(60 * time.Second); err != nil {
		p.fail("after the fault: %v", err)
	}
	if err := s.settle(60 * time.Second); err != nil {
		p.fail("after the fault: %v", err)
	}
}

// settle waits until every job and change in flight now has been
// answered, so that the next fault meets none of this one's retries and
// faults stay one at a time.
func (s *suite) settle(timeout time.Duration) error {
	if s.jobs == nil {
		return nil
	}
	jobs, changes := s.jobs.inFlight(), s.changes.inFlight()
	return poll(timeout, 50*time.Millisecond, "the requests in flight to be answered", func() bool {
		return s.jobs.resolved(jobs) && s.changes.resolved(changes)
	})
}

func (p *phase) fail(format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// hold lets the system run under load for d: the length of a fault or of a
// steady stretch, not a wait for a state.
func (s *suite) hold(d time.Duration) {
	select {
	case <-time.After(d):
	case <-s.ctx.Done():
	}
}
