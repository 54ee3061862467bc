package web

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hostkit/hostkit/internal/host"
)

// observed is the response writer the observing middleware (AccessLog,
// Metrics, Recover) share: the outermost makes it, the others reuse it, so a
// request pays for one wrapper, one clock read and one route lookup.
type observed struct {
	http.ResponseWriter
	r      *http.Request
	rctx   *chi.Context
	start  time.Time
	status int
	bytes  int
	route  string
	// aborted is set by Recover when a panic came after the header was
	// sent, so the response was cut short.
	aborted bool
}

// The faults that end a request without the answer its handler meant to
// give. They replace the status code in metrics and join it in the access
// log, as no status code says them.
const (
	FaultShutdownTimeout = "shutdown_timeout" // cut off when the shutdown timeout passed
	FaultPanic           = "panic"            // the handler panicked after the header was sent
)

// fault names the request's fault, or "".
func (o *observed) fault() string {
	switch {
	case host.CutByShutdown(o.r.Context()):
		return FaultShutdownTimeout
	case o.aborted:
		return FaultPanic
	}
	return ""
}

// observe returns w as an *observed, reusing the one an outer middleware made.
func observe(w http.ResponseWriter, r *http.Request) *observed {
	if o, ok := w.(*observed); ok {
		return o
	}
	return &observed{ResponseWriter: w, r: r, rctx: chi.RouteContext(r.Context()), start: time.Now()}
}

func (o *observed) WriteHeader(code int) {
	if o.status == 0 && code >= 200 { // 1xx responses are not the final status
		o.status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	n, err := o.ResponseWriter.Write(b)
	o.bytes += n
	return n, err
}

// Flush lets streaming handlers flush through the wrapper; Unwrap lets
// http.ResponseController reach everything else (deadlines, hijacking).
func (o *observed) Flush() { _ = http.NewResponseController(o.ResponseWriter).Flush() }

// Unwrap returns the wrapped writer, for http.ResponseController.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// wroteHeader reports whether the response has started.
func (o *observed) wroteHeader() bool { return o.status != 0 }

// finalStatus is the status the finished request answered. A handler that
// wrote nothing answered 200, as net/http does, unless the client had gone:
// then nothing was sent and 499 (nginx's "client closed request") says so.
func (o *observed) finalStatus() int {
	if o.status != 0 {
		return o.status
	}
	if o.r.Context().Err() != nil {
		return 499
	}
	return http.StatusOK
}

// routePattern is the chi route pattern that served the request, or
// "unmatched": labelling by pattern, never by raw path, keeps metric
// cardinality bounded. Call it once the handler has returned.
func (o *observed) routePattern() string {
	if o.route == "" {
		o.route = "unmatched"
		if o.rctx != nil {
			if p := o.rctx.RoutePattern(); p != "" {
				o.route = p
			}
		}
	}
	return o.route
}
