package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object. Type is "about:blank" unless
// a problem has semantics beyond its status code; Title is then the status
// text. RequestID is an extension member so a client can quote it when it
// reports the problem, and operators can find the matching access-log line.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// The error vocabulary handlers return. StatusOf is the one place that maps
// it to HTTP status codes.
var (
	// ErrInvalid marks a request the client must change before retrying (400).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable marks a dependency that is down for now (503).
	ErrUnavailable = errors.New("service unavailable")
	// ErrNotFound marks an unknown resource or route (404).
	ErrNotFound = errors.New("not found")
	// ErrMethodNotAllowed marks a known route asked with the wrong method (405).
	ErrMethodNotAllowed = errors.New("method not allowed")
)

// kindError gives err one of the vocabulary's kinds while keeping err's own
// message, so problem details read "delay must not be negative" rather than
// "invalid request: delay must not be negative".
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Invalid marks err as the client's fault: StatusOf answers 400.
func Invalid(err error) error { return &kindError{ErrInvalid, err} }

// Unavailable marks err as a dependency being down: StatusOf answers 503.
func Unavailable(err error) error { return &kindError{ErrUnavailable, err} }

// StatusOf maps an error to the HTTP status it should produce. Anything it
// does not know is a 500: a server fault the client cannot fix.
func StatusOf(err error) int {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge
	}
	switch {
	case errors.Is(err, ErrRequestTimeout): // before ErrInvalid: a handler may call a failed read invalid input
		return http.StatusRequestTimeout
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// WriteError answers with the problem details for err. A 500's detail is
// generic: its cause may hold internals, so the cause belongs in the log, which
// the caller (or the Recover middleware) writes.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	detail := err.Error()
	if status == http.StatusInternalServerError {
		detail = "the server failed to handle the request; quote the request id when reporting it"
	}
	WriteProblem(w, r, status, detail)
}

// WriteProblem answers with an about:blank problem of the given status.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := Problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.EscapedPath(), // a URI reference: the decoded Path may hold spaces and quotes
		RequestID: middleware.GetReqID(r.Context()),
	}
	body, err := json.Marshal(p)
	if err != nil {
		// Problem has only strings and an int: Marshal cannot fail.
		panic(err)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// NotFound answers every unknown route with a 404 problem.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, &kindError{ErrNotFound, errors.New("no route for " + r.URL.Path)})
}

// MethodNotAllowed returns the handler that answers a known route asked with
// the wrong method: a 405 problem with the Allow header RFC 9110 requires.
// chi only fills Allow in its own 405 handler, so this one asks routes which
// methods would have matched. A GET route also serves HEAD (NewRouter maps
// it), so Allow names HEAD with it.
func MethodNotAllowed(routes chi.Routes) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range allowProbe {
			if routes.Match(chi.NewRouteContext(), m, r.URL.Path) && !slices.Contains(allow, m) {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead)
				}
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
		}
		WriteError(w, r, &kindError{ErrMethodNotAllowed, errors.New("method " + r.Method + " is not allowed on " + r.URL.Path)})
	}
}

// allowProbe lists the methods MethodNotAllowed tries, in the order Allow names them.
var allowProbe = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}
