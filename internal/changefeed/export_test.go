package changefeed

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SkewClock moves p's monotonic clock forward by d, the way a process that
// was stopped (SIGSTOP) for d finds its clock on resuming.
func SkewClock(p *Processor, d time.Duration) { p.skew.Add(int64(d)) }

// PauseRenewals skips p's renewals and heartbeats until the returned
// function is called; held leases still lapse at their deadlines. It
// returns once the round in flight (if any) has ended: a renewal sent after
// it returns would be one the paused process could not have sent.
func PauseRenewals(p *Processor) (resume func()) {
	p.renewHold.Lock() // held by the round in flight, if any
	p.renewPaused.Store(true)
	p.renewHold.Unlock()
	return func() { p.renewPaused.Store(false) }
}

// StallBalancing stops p's balancing steps, once the step in flight (if
// any) has ended, until the returned function is called.
func StallBalancing(p *Processor) (resume func()) {
	p.balanceHold.Lock()
	return p.balanceHold.Unlock
}

// ConsumerName is the name of partition p's durable consumer.
func ConsumerName(p int) string { return consumerName(p) }

// Assign returns the owner the balancing target gives each lease (by index
// in leases) among members.
func Assign(leases []Lease, members []string) []string {
	if len(members) == 0 {
		return make([]string, len(leases))
	}
	return assign(leases, memberList(members, members[0]))
}

// ConsumerConfig is partition p's durable consumer configuration.
func ConsumerConfig(cfg Config, p int) jetstream.ConsumerConfig { return consumerConfig(cfg, p) }
