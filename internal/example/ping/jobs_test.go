package ping_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/natsclient"
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
		{"wrong-case key", `{"ID":"a","work":"1ms"}`, 400, `unknown field "ID"`},
		{"wrong-case work", `{"Work":"1ms"}`, 400, `unknown field "Work"`},
		{"null", `null`, 400, "want a JSON object"},
		{"array", `[{"work":"1ms"}]`, 400, "want a JSON object"},
		{"string", `"job"`, 400, "want a JSON object"},
		{"id with a blank", `{"id":"a b"}`, 400, "visible ASCII"},
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
			if pub.ids[0] != acc.ID {
				t.Errorf("published with Nats-Msg-Id %q, want the job id %q", pub.ids[0], acc.ID)
			}
			if got := rec.Header().Get(ping.IdempotencyKeyHeader); got != acc.ID {
				t.Errorf("%s = %q, want the job id %q", ping.IdempotencyKeyHeader, got, acc.ID)
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
		{"queue unavailable", &fakePublisher{err: fmt.Errorf("publish: %w: nats: no responders", natsclient.ErrUnavailable)}, 503, "was not accepted"},
		{"outcome unknown", &fakePublisher{err: fmt.Errorf("publish: %w: nats: timeout", natsclient.ErrOutcomeUnknown)}, 504, "may have been accepted"},
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

func TestJobsRequiresJSONContentType(t *testing.T) {
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		t.Run(ct, func(t *testing.T) {
			pub := &fakePublisher{}
			req := httptest.NewRequest("POST", "/pingpong/jobs", strings.NewReader(`{"work":"1ms"}`))
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			rec := httptest.NewRecorder()
			newAPI(t, pub).ServeHTTP(rec, req)
			if rec.Code != http.StatusUnsupportedMediaType {
				t.Fatalf("Content-Type %q: status %d, want 415", ct, rec.Code)
			}
			checkProblem(t, rec, 415, "want application/json")
			if len(pub.messages) != 0 {
				t.Errorf("published %d messages, want none", len(pub.messages))
			}
		})
	}
	req := httptest.NewRequest("POST", "/pingpong/jobs", strings.NewReader(`{"work":"1ms"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	rec := httptest.NewRecorder()
	newAPI(t, &fakePublisher{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("application/json with charset: status %d, want 202", rec.Code)
	}
}

// A client that retries with the same id (in the body or the
// Idempotency-Key header) gets 202 again, and the job is stored once.
func TestJobsRetryWithSameIDIsStoredOnce(t *testing.T) {
	pub := &fakePublisher{}
	api := newAPI(t, pub)
	post := func(body, key string) ping.Accepted {
		t.Helper()
		req := httptest.NewRequest("POST", "/pingpong/jobs", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set(ping.IdempotencyKeyHeader, key)
		}
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d, want 202 (%s)", rec.Code, rec.Body)
		}
		var acc ping.Accepted
		if err := json.Unmarshal(rec.Body.Bytes(), &acc); err != nil {
			t.Fatal(err)
		}
		return acc
	}
	first := post(`{"id":"order-1","work":"1ms"}`, "")
	again := post(`{"work":"1ms"}`, "order-1")
	if first.ID != "order-1" || again.ID != "order-1" || first.Duplicate || !again.Duplicate {
		t.Fatalf("answers %+v then %+v, want id order-1, the second a duplicate", first, again)
	}
	if len(pub.messages) != 1 {
		t.Fatalf("stored %d jobs, want 1", len(pub.messages))
	}
	req := httptest.NewRequest("POST", "/pingpong/jobs", strings.NewReader(`{"id":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ping.IdempotencyKeyHeader, "b")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	checkProblem(t, rec, 400, "differ")
}
