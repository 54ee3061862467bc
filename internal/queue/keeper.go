package queue

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keeper sends progress signals for the jobs the workers are running, so
// that the server does not deliver a job again while its handler is still
// busy. One goroutine looks at every worker's slot every half period and
// signals the jobs it already saw running at the previous look: a job hears
// from the keeper within a period of starting and then every half period,
// and a job shorter than half a period is never signalled. Running a job
// costs its worker two uncontended locks, not a timer reset and stop.
type keeper struct {
	period time.Duration
	slots  []keepSlot
}

// keepSlot is one worker's running job.
type keepSlot struct {
	mu   sync.Mutex
	msg  jetstream.Msg // nil while the worker is idle
	seen bool          // the keeper saw msg running at its previous look
}

func newKeeper(workers int, period time.Duration) *keeper {
	return &keeper{period: period, slots: make([]keepSlot, workers)}
}

// run signals the running jobs until done is closed.
func (k *keeper) run(done <-chan struct{}) {
	t := time.NewTicker(k.period / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for i := range k.slots {
				k.slots[i].look()
			}
		}
	}
}

// watch records m as the slot's running job.
func (s *keepSlot) watch(m jetstream.Msg) {
	s.mu.Lock()
	s.msg, s.seen = m, false
	s.mu.Unlock()
}

// release records that the slot's job finished.
func (s *keepSlot) release() {
	s.mu.Lock()
	s.msg = nil
	s.mu.Unlock()
}

// look signals the slot's job if it was running at the previous look too.
// A lost signal costs a duplicate at worst; the next look sends another.
func (s *keepSlot) look() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.msg == nil:
	case s.seen:
		_ = s.msg.InProgress()
	default:
		s.seen = true
	}
}
