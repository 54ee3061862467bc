package ping

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hostkit/hostkit/internal/web"
)

// JobsSubject is the subject POST /pingpong/jobs publishes to.
const JobsSubject = "jobs.ping"

// MaxJobBodyBytes caps a job request body; a job is two short strings.
const MaxJobBodyBytes = 4 << 10

// maxIDLen bounds a client-chosen job id, which travels in every message.
const maxIDLen = 128

// Publisher hands a message to a queue. Publish returns once the queue has
// accepted data, or with an error; when the queue is down the error should
// match (errors.Is) the sentinel given as Options.Unavailable, so clients get
// a 503 they may retry rather than a 500.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// Job is the body of POST /pingpong/jobs and the message published for it.
// Work is how long the worker should spend on it, as a Go duration.
type Job struct {
	ID   string `json:"id"`
	Work string `json:"work"`
}

// Accepted is the body of the 202 answer: the id the job was published under.
type Accepted struct {
	ID string `json:"id"`
}

// handleJobs publishes the job in the request body and answers 202 with its
// id, generating one if the client gave none.
func handleJobs(pub Publisher, unavailable error, maxWork time.Duration, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job, err := decodeJob(http.MaxBytesReader(w, r.Body, MaxJobBodyBytes), maxWork)
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		data, err := json.Marshal(job)
		if err != nil {
			web.WriteError(w, r, fmt.Errorf("encode job: %w", err))
			return
		}
		if err := publish(r.Context(), pub, unavailable, data); err != nil {
			if web.StatusOf(err) == http.StatusInternalServerError {
				log.ErrorContext(r.Context(), "publish job failed", "id", job.ID, "err", err)
			}
			web.WriteError(w, r, err)
			return
		}
		body, _ := json.Marshal(Accepted{ID: job.ID})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(append(body, '\n'))
	}
}

// publish sends data and gives its error a place in web's vocabulary.
func publish(ctx context.Context, pub Publisher, unavailable error, data []byte) error {
	if pub == nil {
		return web.Unavailable(errors.New("no job queue is configured"))
	}
	err := pub.Publish(ctx, JobsSubject, data)
	switch {
	case err == nil:
		return nil
	case unavailable != nil && errors.Is(err, unavailable):
		return web.Unavailable(fmt.Errorf("job queue unavailable: %w", err))
	}
	return fmt.Errorf("publish to %s: %w", JobsSubject, err)
}

// decodeJob reads one JSON job and checks it. Unknown fields, trailing data,
// a bad work duration or an oversized id are the client's mistakes (400); a
// body over the limit stays an *http.MaxBytesError (413).
func decodeJob(body io.Reader, maxWork time.Duration) (Job, error) {
	var job Job
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&job); err != nil {
		return Job{}, bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return Job{}, bodyError(err)
		}
		return Job{}, web.Invalid(errors.New("body: want a single JSON object"))
	}
	d, err := ParseDelay(job.Work, maxWork)
	if err != nil {
		return Job{}, web.Invalid(fmt.Errorf("work: %w", err))
	}
	job.Work = d.String()
	switch {
	case len(job.ID) > maxIDLen:
		return Job{}, web.Invalid(fmt.Errorf("id: longer than %d bytes", maxIDLen))
	case job.ID == "":
		job.ID = rand.Text()
	}
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
