package web

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// RequestID gives every request an id and echoes it in the X-Request-Id
// response header, so a client can quote it. A client's own X-Request-Id is
// kept when it is short and printable, so a trace can span services; else
// the id is this process's random prefix and a counter. The id is stored
// under chi's key, so middleware.GetReqID reads it.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(middleware.RequestIDHeader)
		if !validRequestID(id) {
			var buf [40]byte
			id = string(strconv.AppendUint(append(buf[:0], requestIDPrefix...), requestIDSeq.Add(1), 10))
		}
		w.Header()[middleware.RequestIDHeader] = []string{id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

var (
	requestIDPrefix = rand.Text()[:10] + "-"
	requestIDSeq    atomic.Uint64
)

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}

// AccessLog logs one line per request through log: request id, method,
// path, status and duration. That is five attributes, the most a slog
// record holds without allocating, as this runs for every request; the route
// pattern and sizes are in the metrics. Requests to the quiet routes (probes
// and scrapes, which arrive every few seconds and answer 503 on purpose while
// starting and draining) are logged at debug; other 5xx answers as errors.
func AccessLog(log *slog.Logger, quiet ...string) func(http.Handler) http.Handler {
	quietSet := make(map[string]bool, len(quiet))
	for _, q := range quiet {
		quietSet[q] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o := observe(w, r)
			// Deferred, so a response aborted by a panic is logged too.
			defer logRequest(log, quietSet, o, r)
			next.ServeHTTP(o, r)
		})
	}
}

// logRequest writes the access-log line of a finished request. A request
// with a fault (cut by the shutdown timeout, aborted by a panic) is an
// error, and the line says which in a sixth attribute; a cut request's
// status is 0, as no answer reached the client.
func logRequest(log *slog.Logger, quietSet map[string]bool, o *observed, r *http.Request) {
	status, fault := o.finalStatus(), o.fault()
	if fault == FaultShutdownTimeout {
		status = 0 // whatever the handler wrote, the connection was closed under it
	}
	level := slog.LevelInfo
	switch {
	case fault != "":
		level = slog.LevelError
	case quietSet[o.routePattern()]:
		// Probes answer 503 on purpose while starting and draining.
		level = slog.LevelDebug
	case status >= 500:
		level = slog.LevelError
	}
	ctx := r.Context()
	h := log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	// The record is made here rather than by log.LogAttrs, which would walk
	// the stack for a source location nobody reads; one clock read serves
	// the record's time and the duration.
	now := time.Now()
	rec := slog.NewRecord(now, level, "http request", 0)
	rec.AddAttrs(
		slog.String("request_id", middleware.GetReqID(ctx)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", now.Sub(o.start)), // JSON: integer nanoseconds; text: "1.2ms"
	)
	if fault != "" {
		rec.AddAttrs(slog.String("fault", fault))
	}
	_ = h.Handle(ctx, rec)
}

// Recover turns a panicking handler into a 500 problem and an error log line
// with the stack, so one bad request does not take the process down.
// http.ErrAbortHandler is re-panicked: it is net/http's way to abort a
// response on purpose. If the handler had already sent its header, a
// problem can no longer be written, so the connection is aborted instead:
// a truncated response is better than one that looks complete.
func Recover(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o := observe(w, r)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					o.aborted = true
					panic(v)
				}
				log.LogAttrs(r.Context(), slog.LevelError, "handler panicked",
					slog.String("request_id", middleware.GetReqID(r.Context())),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("panic", fmt.Sprint(v)),
					slog.String("stack", string(debug.Stack())),
				)
				if o.wroteHeader() {
					o.aborted = true
					panic(http.ErrAbortHandler)
				}
				WriteError(o, r, errors.New("handler panicked"))
			}()
			next.ServeHTTP(o, r)
		})
	}
}

// LimitBody caps every request body at n bytes; a handler reading past the
// cap gets an *http.MaxBytesError, which StatusOf maps to 413.
func LimitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, n)
			}
			next.ServeHTTP(w, r)
		})
	}
}
