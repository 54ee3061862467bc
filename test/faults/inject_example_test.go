//go:build unix

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The takeover bounds internal/changefeed documents for lease_ttl T and
// renew_interval I: after SIGTERM the peers take the leases after
// max(drain, I/2), the drain being the in-flight change plus up to
// fetch_wait for an outstanding pull; after SIGKILL or a pause past the
// lease's usable time, within T + I/2 of the last renewal, which was
// before the fault. The documentation assumes round trips of a few
// milliseconds; boundSlack covers them and the scheduling delays of a
// loaded two-core machine, no more.
const (
	stopBound  = fetchWait + boundSlack // max(fetch_wait, I/2) with I/2 < fetch_wait
	crashBound = leaseTTL + renewInterval/2 + boundSlack
	boundSlack = 250 * time.Millisecond
)

// pingapiConns are the connection names pingapi's publisher has given
// itself (the kit's default, then pingapi's own), by which the suite finds
// the node it is connected to.
var pingapiConns = []string{"pingapi", "hostkit-publisher"}

// workerConns is the connection name every worker's engine gives itself.
var workerConns = []string{"hostkit-worker"}

// failoverBound is how long pingapi may stay on a server that stopped
// answering: issue 11 asks for at most 10s by default.
const failoverBound = 10 * time.Second

// leases returns the owner of each partition's lease ("" when free).
func (s *suite) leases() (map[int]string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, leaseBucket)
	if err != nil {
		return nil, err
	}
	owners := map[int]string{}
	for p := range partitions {
		e, err := kv.Get(ctx, strconv.Itoa(p))
		switch {
		case err == jetstream.ErrKeyNotFound:
			owners[p] = ""
		case err != nil:
			return nil, err
		default:
			owners[p] = leaseOwner(e.Value())
		}
	}
	return owners, nil
}

// leaseOwner reads a lease's value: the owner's instance name, or a JSON
// object naming it.
func leaseOwner(v []byte) string {
	var obj struct {
		Owner    string `json:"owner"`
		Instance string `json:"instance"`
	}
	if json.Unmarshal(v, &obj) == nil {
		return obj.Owner + obj.Instance
	}
	return string(v)
}

// heldBy waits until instance holds at least one lease and returns its
// partitions.
func (s *suite) heldBy(instance string) ([]int, error) {
	var held []int
	err := poll(30*time.Second, 100*time.Millisecond, instance+" holding a lease", func() bool {
		owners, err := s.leases()
		if err != nil {
			return false
		}
		held = held[:0]
		for p, o := range owners {
			if o == instance {
				held = append(held, p)
			}
		}
		return len(held) > 0
	})
	return held, err
}

// leaseWatch follows the lease bucket from before a fault, so that a
// takeover is timed by the server's timestamp of the write that made it,
// not by when a poll happened to see it.
type leaseWatch struct {
	w jetstream.KeyWatcher
}

func (s *suite) watchLeases() (*leaseWatch, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, leaseBucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(s.ctx, jetstream.UpdatesOnly())
	if err != nil {
		return nil, err
	}
	return &leaseWatch{w: w}, nil
}

// takenOver waits until a peer of victim has written every partition in
// parts and returns how long after from the last of those writes was stored.
func (lw *leaseWatch) takenOver(from time.Time, victim string, parts []int) (time.Duration, error) {
	pending := map[int]bool{}
	for _, p := range parts {
		pending[p] = true
	}
	var last time.Time
	timeout := time.After(30 * time.Second)
	for len(pending) > 0 {
		select {
		case e, ok := <-lw.w.Updates():
			if !ok {
				return 0, fmt.Errorf("lease watch ended with %d of %s's partitions not taken over", len(pending), victim)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut || e.Created().Before(from) {
				continue
			}
			p, err := strconv.Atoi(e.Key())
			if owner := leaseOwner(e.Value()); err != nil || !pending[p] || owner == "" || owner == victim {
				continue
			}
			delete(pending, p)
			last = e.Created()
		case <-timeout:
			return 0, fmt.Errorf("after 30s %d of %s's partitions not taken over", len(pending), victim)
		}
	}
	return last.Sub(from), nil
}

// workerFault ends a worker with sig, measures how long its peers take to
// hold its partitions, and starts it again.
func (s *suite) workerFault(p *phase, w *worker, sig syscall.Signal, bound time.Duration) {
	if !s.signalAndTakeOver(p, w, sig, bound) {
		return
	}
	if err := w.proc.waitExit(20 * time.Second); err != nil {
		p.fail("%v", err)
		w.proc.kill()
	}
	s.hold(time.Second)
}

// workerPause freezes a worker past its lease TTL, until its peers hold its
// partitions and have handled newer changes, then lets it run on.
func (s *suite) workerPause(p *phase, w *worker) {
	if !s.signalAndTakeOver(p, w, syscall.SIGSTOP, crashBound) {
		return
	}
	s.hold(2 * time.Second)
	if err := w.proc.signal(syscall.SIGCONT); err != nil {
		p.fail("%v", err)
	}
	s.hold(2 * time.Second)
}

// signalAndTakeOver sends sig to w and records in p how long its peers
// take to hold the partitions it held, failing p past bound. It reports
// false if the signal could not be sent (or the leases not watched), so
// the fault did not happen.
func (s *suite) signalAndTakeOver(p *phase, w *worker, sig syscall.Signal, bound time.Duration) bool {
	lw, err := s.watchLeases()
	if err != nil {
		p.fail("%v", err)
		return false
	}
	defer func() { _ = lw.w.Stop() }()
	parts, err := s.heldBy(w.instance)
	if err != nil {
		p.fail("%v", err)
		return false
	}
	at := time.Now()
	if err := w.proc.signal(sig); err != nil {
		p.fail("%v", err)
		return false
	}
	if p.takeover, err = lw.takenOver(at, w.instance, parts); err != nil {
		p.fail("%v", err)
	} else if p.takeover > bound {
		p.fail("takeover took %s, above the stated bound %s", p.takeover, bound)
	}
	return true
}

// leaderKill kills the node leading the JOBS stream, measures how long the
// stream is without a leader, and restarts the node.
func (s *suite) leaderKill(p *phase) {
	leader, err := streamLeader(s.ctx, s.js, "JOBS")
	if err != nil || leader == "" {
		p.fail("JOBS leader: %q, %v", leader, err)
		return
	}
	n := s.cluster.node(leader)
	at := time.Now()
	if err := n.proc.signal(syscall.SIGKILL); err != nil {
		p.fail("%v", err)
		return
	}
	err = poll(30*time.Second, 50*time.Millisecond, "a new JOBS leader", func() bool {
		l, err := streamLeader(s.ctx, s.js, "JOBS")
		return err == nil && l != "" && l != leader
	})
	p.takeover = time.Since(at)
	if err != nil {
		p.fail("%v", err)
	}
	_ = n.proc.waitExit(10 * time.Second)
	s.hold(2 * time.Second)
	s.restartNodes(p, n)
}

func (s *suite) restartNodes(p *phase, nodes ...*natsNode) {
	for _, n := range nodes {
		if err := n.proc.start(); err != nil {
			p.fail("%v", err)
		}
	}
	if err := s.cluster.waitHealthy(s.ctx, 90*time.Second, nodes...); err != nil {
		p.fail("%v", err)
	}
}

// pingapiNodePause freezes the node pingapi publishes through and measures
// how long pingapi takes to connect to another node.
func (s *suite) pingapiNodePause(p *phase) {
	var n *natsNode
	if err := poll(10*time.Second, 100*time.Millisecond, "pingapi's node", func() bool {
		found := s.cluster.clientsNamed(s.ctx, pingapiConns, nil)
		if len(found) == 1 {
			n = found[0]
		}
		return n != nil
	}); err != nil {
		p.fail("%v", err)
		return
	}
	s.freezeNode(p, n, "pingapi", func() bool { return len(s.cluster.clientsNamed(s.ctx, pingapiConns, n)) > 0 })
}

// workerNodePause freezes a node that workers are connected to (one without
// pingapi when there is one, so the row is the workers'), as a node that
// hangs does: their acknowledgements and lease renewals sent to it go
// nowhere until they leave it for another node. The takeover is the time
// until every worker is connected elsewhere.
func (s *suite) workerNodePause(p *phase) {
	var n *natsNode
	if err := poll(10*time.Second, 100*time.Millisecond, "a node with workers", func() bool {
		found := s.cluster.clientsNamed(s.ctx, workerConns, nil)
		api := s.cluster.clientsNamed(s.ctx, pingapiConns, nil)
		for _, f := range found {
			if n == nil || !slices.Contains(api, f) {
				n = f
			}
		}
		return n != nil
	}); err != nil {
		p.fail("%v", err)
		return
	}
	s.freezeNode(p, n, "every worker", func() bool {
		return s.cluster.countNamed(s.ctx, workerConns, n) == len(s.workers)
	})
}

// freezeNode stops node n with SIGSTOP, measures how long until moved holds
// (who, connected to n, has reconnected elsewhere), holds the fault two more
// seconds and lets n go on.
func (s *suite) freezeNode(p *phase, n *natsNode, who string, moved func() bool) {
	at := time.Now()
	if err := n.proc.signal(syscall.SIGSTOP); err != nil {
		p.fail("%v", err)
		return
	}
	err := poll(failoverBound, 100*time.Millisecond, who+" to reconnect elsewhere", moved)
	p.takeover = time.Since(at)
	if err != nil {
		p.fail("%s still on frozen node %s after %s", who, n.name, failoverBound)
	}
	s.hold(2 * time.Second)
	if err := n.proc.signal(syscall.SIGCONT); err != nil {
		p.fail("%v", err)
	}
	if err := s.cluster.waitHealthy(s.ctx, 90*time.Second, n); err != nil {
		p.fail("%v", err)
	}
	s.hold(time.Second)
}

// clusterDown kills every node, keeps the cluster down for a while, starts
// it again and measures how long until a job is accepted again.
func (s *suite) clusterDown(p *phase) {
	for _, n := range s.cluster.nodes {
		if err := n.proc.signal(syscall.SIGKILL); err != nil {
			p.fail("%v", err)
		}
	}
	for _, n := range s.cluster.nodes {
		_ = n.proc.waitExit(10 * time.Second)
	}
	s.hold(5 * time.Second)
	up := time.Now()
	s.restartNodes(p, s.cluster.nodes...)
	err := poll(90*time.Second, 100*time.Millisecond, "a job accepted after the restart", func() bool {
		return !s.jobs.firstAccepted(up).IsZero()
	})
	if err != nil {
		p.fail("%v", err)
	} else {
		p.takeover = s.jobs.firstAccepted(up).Sub(up)
	}
	s.hold(2 * time.Second)
}
