package ping

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/web"
)

// JobsSubject is the subject POST /pingpong/jobs publishes to.
const JobsSubject = "jobs.ping"

// MaxJobBodyBytes caps a job request body; a job is two short strings.
const MaxJobBodyBytes = 4 << 10

// maxIDLen bounds a job id, which travels in every message and header.
const maxIDLen = 128

// IdempotencyKeyHeader carries a job's id in the request (instead of the
// body's id) and in the 202 answer.
const IdempotencyKeyHeader = "Idempotency-Key"

// Publisher stores a message in a stream (natsclient.Publisher). Its errors
// wrap natsclient.ErrUnavailable when the message was certainly not stored
// (503) and natsclient.ErrOutcomeUnknown when it may have been (504).
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg) (natsclient.Ack, error)
}

// Job is the body of POST /pingpong/jobs and the message published for it.
// Work is how long the worker should spend on it, as a Go duration. ID is
// the job's idempotency key: the message is published with it as
// Nats-Msg-Id, so a retry within the JOBS stream's duplicate window (2
// minutes by default) is stored once.
type Job struct {
	ID   string `json:"id"`
	Work string `json:"work"`
}

// jobFields are the only keys a job body may have, spelt exactly so:
// encoding/json would otherwise match "ID" or "Work" too.
var jobFields = map[string]bool{"id": true, "work": true}

// Accepted is the body of the 202 answer: the id the job was published under,
// and whether the queue already held a job with that id (a retry).
type Accepted struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// handleJobs publishes the job in the request body and answers 202 with its
// id, generating one if the client gave none.
func handleJobs(pub Publisher, maxWork time.Duration, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkJSON(r.Header.Get("Content-Type")); err != nil {
			web.WriteProblem(w, r, http.StatusUnsupportedMediaType, err.Error())
			return
		}
		job, err := decodeJob(http.MaxBytesReader(w, r.Body, MaxJobBodyBytes), maxWork)
		if err == nil {
			job.ID, err = jobID(job.ID, r.Header.Get(IdempotencyKeyHeader))
		}
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		dup, err := publishJob(r.Context(), pub, job)
		if err != nil {
			writePublishError(w, r, log, job.ID, err)
			return
		}
		body, _ := json.Marshal(Accepted{ID: job.ID, Duplicate: dup})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(IdempotencyKeyHeader, job.ID)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(append(body, '\n'))
	}
}

// checkJSON accepts application/json only: a form or text/plain body is what
// a cross-site page can post without a CORS preflight.
func checkJSON(contentType string) error {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q: want application/json", contentType)
	}
	return nil
}

// jobID picks the job's id: the body's, else the Idempotency-Key header's
// (both only if equal), else a new random one.
func jobID(body, header string) (string, error) {
	id := body
	switch {
	case body != "" && header != "" && body != header:
		return "", web.Invalid(fmt.Errorf("id %q and %s %q differ", body, IdempotencyKeyHeader, header))
	case id == "":
		id = header
	}
	if id == "" {
		return rand.Text(), nil
	}
	if len(id) > maxIDLen {
		return "", web.Invalid(fmt.Errorf("id: longer than %d bytes", maxIDLen))
	}
	for i := range len(id) {
		if c := id[i]; c <= ' ' || c > '~' {
			return "", web.Invalid(errors.New("id: only visible ASCII characters, no blanks"))
		}
	}
	return id, nil
}

// publishJob publishes job with its id as Nats-Msg-Id and reports whether
// the stream dropped it as a repeat.
func publishJob(ctx context.Context, pub Publisher, job Job) (bool, error) {
	if pub == nil {
		return false, web.Unavailable(errors.New("no job queue is configured"))
	}
	data, err := json.Marshal(job)
	if err != nil {
		return false, fmt.Errorf("encode job: %w", err)
	}
	m := nats.NewMsg(JobsSubject)
	m.Header.Set(nats.MsgIdHdr, job.ID)
	m.Data = data
	ack, err := pub.PublishMsg(ctx, m)
	if err != nil {
		return false, err
	}
	return ack.Duplicate, nil
}

// writePublishError answers a failed publish: 503 when the job was certainly
// not stored, 504 when it may have been (the client should retry with the
// same id), 500 otherwise.
func writePublishError(w http.ResponseWriter, r *http.Request, log *slog.Logger, id string, err error) {
	switch {
	case errors.Is(err, natsclient.ErrOutcomeUnknown):
		w.Header().Set(IdempotencyKeyHeader, id)
		web.WriteProblem(w, r, http.StatusGatewayTimeout, fmt.Sprintf(
			"the job may have been accepted: the queue did not confirm it in time (%v); "+
				"retry with the same id (%s: %s) within 2 minutes and it is stored at most once", err, IdempotencyKeyHeader, id))
	case errors.Is(err, natsclient.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		web.WriteError(w, r, web.Unavailable(fmt.Errorf("job queue unavailable, the job was not accepted: %w", err)))
	default:
		if web.StatusOf(err) == http.StatusInternalServerError {
			log.ErrorContext(r.Context(), "publish job failed", "id", id, "err", err)
		}
		web.WriteError(w, r, err)
	}
}

// decodeJob reads one JSON object with known keys only and checks it. null,
// other JSON values, unknown or wrongly cased keys, trailing data, a bad work
// duration are the client's mistakes (400); a body over the limit stays an
// *http.MaxBytesError (413).
func decodeJob(body io.Reader, maxWork time.Duration) (Job, error) {
	var raw json.RawMessage
	dec := json.NewDecoder(body)
	if err := dec.Decode(&raw); err != nil {
		return Job{}, bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return Job{}, bodyError(err)
		}
		return Job{}, web.Invalid(errors.New("body: want a single JSON object"))
	}
	var fields map[string]json.RawMessage
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) || json.Unmarshal(raw, &fields) != nil {
		return Job{}, web.Invalid(errors.New("body: want a JSON object"))
	}
	for k := range fields {
		if !jobFields[k] {
			return Job{}, web.Invalid(fmt.Errorf("body: unknown field %q (known: id, work)", k))
		}
	}
	var job Job
	if err := json.Unmarshal(raw, &job); err != nil {
		return Job{}, bodyError(err)
	}
	d, err := ParseDelay(job.Work, maxWork)
	if err != nil {
		return Job{}, web.Invalid(fmt.Errorf("work: %w", err))
	}
	job.Work = d.String()
	return job, nil
}

func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return err
	}
	if errors.Is(err, io.EOF) {
		return web.Invalid(errors.New("body: empty, want a JSON object"))
	}
	return web.Invalid(fmt.Errorf("body: %w", err))
}
