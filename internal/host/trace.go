package host

import (
	"sync"
	"time"
)

// Phase names one step of the host's sequence in an Event.
type Phase string

// The phases in the order a clean run passes through them. Service phases
// name a service; host phases do not.
const (
	PhaseWaitForStart        Phase = "WaitForStart"
	PhaseStarting            Phase = "Starting"
	PhaseStart               Phase = "Start"
	PhaseStarted             Phase = "Started"
	PhaseApplicationStarted  Phase = "ApplicationStarted"
	PhaseApplicationStopping Phase = "ApplicationStopping"
	PhaseStopping            Phase = "Stopping"
	PhaseStop                Phase = "Stop"
	PhaseStopped             Phase = "Stopped"
	PhaseApplicationStopped  Phase = "ApplicationStopped"
	PhaseLifetimeStop        Phase = "LifetimeStop"
)

// Event is one finished step of the host's sequence.
type Event struct {
	Phase    Phase
	Service  string // empty for host phases
	At       time.Time
	Duration time.Duration
	Err      error
	Overran  bool // the call had not returned when the phase's deadline passed
}

// String returns "Phase" or "Phase service", the form tests compare.
func (e Event) String() string {
	if e.Service == "" {
		return string(e.Phase)
	}
	return string(e.Phase) + " " + e.Service
}

// Recorder collects events; pass its Record method as Options.Trace.
// It is safe for concurrent use, as concurrent phases require.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Record appends e.
func (r *Recorder) Record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of what was recorded, in order.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Strings returns each event's String, in order.
func (r *Recorder) Strings() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, e.String())
	}
	return out
}
