package web

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of the http.read_timeout and http.max_in_flight keys.
const (
	// DefaultReadTimeout gives a client 30 s to send a request body: ample
	// for the JSON the APIs take, short enough that a client trickling a
	// byte now and then cannot hold a handler, and every shutdown, forever.
	DefaultReadTimeout = 30 * time.Second
	// DefaultMaxInFlight bounds requests served at once. A held request
	// costs about 25 KiB (goroutine, buffers, handler state): 1,000 of them
	// stay within a 128 MiB container with room for the rest.
	DefaultMaxInFlight = 1000
	// RetryAfter is what a shed request is told to wait, in seconds: long
	// enough to let held requests finish, short enough for a client's retry.
	RetryAfter = 1
)

// ErrRequestTimeout marks a request whose body did not arrive within the
// read timeout (408).
var ErrRequestTimeout = errors.New("request body not received in time")

// ReadTimeout bounds how long a handler may wait for the request body: d
// from the moment the handler starts, through http.ResponseController's
// read deadline. A read that passes it fails with an error StatusOf maps to
// 408, and net/http closes the connection after the answer.
//
// Only requests with a body get the deadline, and it is lifted once the
// body has been read: net/http reads the connection in the background
// while a handler runs, and a deadline passing then would cancel the
// request's context, cutting a slow handler that has all it needs. A
// streaming handler that receives a long body extends it for its request:
//
//	http.NewResponseController(w).SetReadDeadline(time.Now().Add(10 * time.Minute))
//
// d <= 0 leaves bodies unbounded.
func ReadTimeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if d <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body == nil || r.Body == http.NoBody {
				next.ServeHTTP(w, r)
				return
			}
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			} // else the writer has no connection (a test recorder): nothing to bound
			next.ServeHTTP(w, r)
		})
	}
}

// deadlineBody lifts the read deadline at the end of the body and marks a
// read that timed out as ErrRequestTimeout.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF && !b.done:
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		err = &kindError{ErrRequestTimeout, err}
	}
	return n, err
}

// LimitInFlight answers 503 with Retry-After once max requests are being
// served, so a flood of slow requests cannot grow the process past its
// memory limit. Requests to the exempt paths (probes, the scrape) are never
// shed: a pod under load must still say it is alive, and its metrics are
// what shows the load. max <= 0 sheds nothing.
func LimitInFlight(max int, exempt ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		var inFlight atomic.Int64
		limit := int64(max)
		retryAfter := []string{strconv.Itoa(RetryAfter)}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, p := range exempt {
				if r.URL.Path == p {
					next.ServeHTTP(w, r)
					return
				}
			}
			defer inFlight.Add(-1)
			if inFlight.Add(1) > limit {
				w.Header()["Retry-After"] = retryAfter
				WriteError(w, r, Unavailable(errors.New("too many requests in flight; retry later")))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
