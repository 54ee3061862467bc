package natsclient

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClassifySortsPublishErrors pins what a caller may conclude from each
// publish error: a 503 answer (ErrUnavailable) must mean the message was
// certainly not stored, since a client then may send it again with a new id.
func TestClassifySortsPublishErrors(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		unavailable bool
		unknown     bool
	}{
		{"no responders", nats.ErrNoResponders, true, false},
		{"no stream response", jetstream.ErrNoStreamResponse, true, false},
		{"connection draining", nats.ErrConnectionDraining, true, false},
		{"stream 503", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true, false},
		// Seen in the fault suite while the stream leader's node was frozen:
		// the first send (or nats.go's retry of it) is still being proposed
		// and may be stored, so this is neither 503 nor 500.
		{"duplicate id in process", &jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}, false, true},
		{"wrapped duplicate id in process", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 409, ErrorCode: 10158}), false, true},
		{"wrong last sequence", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, false, false},
		{"message too big", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum}, false, false},
		{"timeout", context.DeadlineExceeded, false, true},
		{"nats timeout", nats.ErrTimeout, false, true},
		{"max payload", nats.ErrMaxPayload, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify("jobs.x", tt.err)
			if got := errors.Is(err, ErrUnavailable); got != tt.unavailable {
				t.Errorf("classify(%v): ErrUnavailable = %v, want %v (%v)", tt.err, got, tt.unavailable, err)
			}
			if got := errors.Is(err, ErrOutcomeUnknown); got != tt.unknown {
				t.Errorf("classify(%v): ErrOutcomeUnknown = %v, want %v (%v)", tt.err, got, tt.unknown, err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classify(%v) = %v: lost the cause", tt.err, err)
			}
		})
	}
}
