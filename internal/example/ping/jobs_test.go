package ping_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/example/ping"
)

func TestJobsRejectsBadRequests(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		detail string
	}{
		{"empty body", "", 400, "empty"},
		{"not JSON", "work=5s", 400, "invalid character"},
		{"unknown field", `{"id":"a","work":"1ms","priority":1}`, 400, `unknown field "priority"`},
		{"wrong type", `{"id":1}`, 400, "cannot unmarshal"},
		{"bad work", `{"work":"soon"}`, 400, `work: "soon" is not a duration`},
		{"negative work", `{"work":"-1s"}`, 400, "work: \"-1s\" is negative"},
		{"work above the maximum", `{"work":"2s"}`, 400, "exceeds the maximum"},
		{"two objects", `{"work":"1ms"}{"work":"1ms"}`, 400, "single JSON object"},
		{"trailing garbage", `{"work":"1ms"} x`, 400, "invalid character"},
		{"id too long", fmt.Sprintf(`{"id":%q}`, strings.Repeat("x", 129)), 400, "longer than 128"},
		{"oversized body", fmt.Sprintf(`{"id":%q}`, strings.Repeat("x", ping.MaxJobBodyBytes)), 413, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			rec := serve(newAPI(t, pub), "POST", "/pingpong/jobs", tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			checkProblem(t, rec, tt.status, tt.detail)
			if len(pub.messages) != 0 {
				t.Errorf("published %d messages for a rejected job, want none", len(pub.messages))
			}
		})
	}
}

func TestJobsPublishes(t *testing.T) {
	tests := []struct {
		name, body string
		wantID     string // empty: any generated id
		wantWork   string
	}{
		{"client id", `{"id":"job-1","work":"50ms"}`, "job-1", "50ms"},
		{"generated id", `{"work":"1s"}`, "", "1s"},
		{"no work", `{"id":"job-2"}`, "job-2", "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{}
			rec := serve(newAPI(t, pub), "POST", "/pingpong/jobs", tt.body)
			if rec.Code != 202 {
				t.Fatalf("status = %d, want 202 (body %s)", rec.Code, rec.Body)
			}
			var acc ping.Accepted
			if err := json.Unmarshal(rec.Body.Bytes(), &acc); err != nil {
				t.Fatalf("answer %q: %v", rec.Body, err)
			}
			if acc.ID == "" || (tt.wantID != "" && acc.ID != tt.wantID) {
				t.Errorf("answered id %q, want %q (or a generated one if empty)", acc.ID, tt.wantID)
			}
			if len(pub.messages) != 1 || pub.subjects[0] != ping.JobsSubject {
				t.Fatalf("published to %v, want one message to %s", pub.subjects, ping.JobsSubject)
			}
			var job ping.Job
			if err := json.Unmarshal(pub.messages[0], &job); err != nil {
				t.Fatalf("published %q: %v", pub.messages[0], err)
			}
			if job.ID != acc.ID || job.Work != tt.wantWork {
				t.Errorf("published %+v, want id %q and work %q", job, acc.ID, tt.wantWork)
			}
		})
	}
}

func TestJobsGeneratedIDsDiffer(t *testing.T) {
	pub := &fakePublisher{}
	api := newAPI(t, pub)
	serve(api, "POST", "/pingpong/jobs", `{}`)
	serve(api, "POST", "/pingpong/jobs", `{}`)
	if len(pub.messages) != 2 || string(pub.messages[0]) == string(pub.messages[1]) {
		t.Errorf("two jobs without id published %q; want two different ids", pub.messages)
	}
}

func TestJobsPublisherFailures(t *testing.T) {
	tests := []struct {
		name   string
		pub    ping.Publisher
		status int
		detail string
	}{
		{"queue unavailable", &fakePublisher{err: fmt.Errorf("nats: no servers: %w", errQueueDown)}, 503, "job queue unavailable"},
		{"no publisher", nil, 503, "no job queue is configured"},
		{"other failure", &fakePublisher{err: errors.New("stream full")}, 500, "quote the request id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(newAPI(t, tt.pub), "POST", "/pingpong/jobs", `{"work":"1ms"}`)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			checkProblem(t, rec, tt.status, tt.detail)
		})
	}
}
