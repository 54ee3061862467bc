package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrStalled is wrapped into Ready's error while the processor, with
// workers free, received no job over two stall checks although JOBS held
// jobs not yet delivered to any replica.
var ErrStalled = errors.New("queue processor stalled")

// stallPeriod is how often an idle processor checks that it is not stalled.
//
// Why it must check: nats.go's iterator finds a lost pull request (its server
// restarted, or a pull sent while the consumer had no leader yet came back
// as "no responders", which the iterator ignores while still counting the
// request as pending) only through missed heartbeats, and it watches them
// only inside one Next call that lasts two heartbeat intervals. The workers
// call Next with refillCheck, far shorter, so that watch never fires: after
// the whole cluster was restarted, all workers waited forever with jobs in
// JOBS. A check costs one consumer info request per period, only while no
// job came in.
func (c Config) stallPeriod() time.Duration { return 2 * c.FetchWait }

// StallBound is how long after the consumer answers again (its stream and
// consumer leaders elected) a processor that lost its pull requests at most
// takes to consume again: two silent checks, the pause before consuming again
// and the round trips of the consumer update and first pull (bounded here
// by a stall period).
func (c Config) StallBound() time.Duration { return 4*c.stallPeriod() + resubscribeWait }

// watch checks every stallPeriod whether the processor is stalled and, if so,
// marks it not ready and stops its iterator, so that loop consumes again
// with a new one. It returns when the processor stops.
func (p *Processor) watch() {
	period := p.cfg.stallPeriod()
	t := time.NewTicker(period)
	defer t.Stop()
	last := p.received.Load()
	suspect := false // the previous check found jobs waiting while none came
	for {
		select {
		case <-p.stopping:
			return
		case <-t.C:
		}
		if n := p.received.Load(); n != last || p.running.Load() >= int64(p.cfg.Concurrency) {
			// Jobs came in, or every worker is busy and not asking for more.
			last, suspect = n, false
			continue
		}
		waiting, err := p.undelivered(period)
		switch {
		case err != nil:
			// JetStream does not answer (cluster down, leader election): the
			// iterator cannot be helped now; look again next period.
			p.log.Debug("queue stall check", "err", err)
			continue
		case waiting == 0:
			suspect = false
			continue
		case !suspect:
			// A job stored a moment ago may be on its way to this replica.
			suspect = true
			continue
		}
		suspect = false
		err = fmt.Errorf("%w: no job received for %s while %d wait in %s; consuming again",
			ErrStalled, 2*period, waiting, JobsStream)
		p.log.Warn("queue processor stalled; consuming again", "err", err)
		p.stall.Store(&err)
		p.restartIter()
	}
}

// undelivered asks the consumer how many jobs it holds that no replica has
// been given yet, counting none while the consumer cannot take more (its
// acknowledgement limit is reached).
func (p *Processor) undelivered(timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := p.js.Consumer(ctx, JobsStream, JobsConsumer)
	if err != nil {
		return 0, err
	}
	info := cons.CachedInfo()
	if limit := info.Config.MaxAckPending; limit > 0 && info.NumAckPending >= limit {
		return 0, nil
	}
	return info.NumPending, nil
}

// restartIter stops the current iterator unless the processor stops: its
// workers return, and loop consumes again with a new one.
func (p *Processor) restartIter() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isStopping() {
		return
	}
	p.iter.Stop()
}

// noteReceived counts a job out of the iterator and clears a stall.
func (p *Processor) noteReceived() {
	p.received.Add(1)
	if p.stall.Load() != nil {
		p.stall.Store(nil)
	}
}
