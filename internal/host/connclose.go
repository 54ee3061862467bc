package host

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// closeAfterShutdownRequest adds "Connection: close" to every response whose
// header is written once requested is closed, so that net/http closes each
// connection right after its next response and never while a client may be
// writing a request on it. The check is made when the header is written,
// not when the request arrives, so requests in flight at the signal say it
// too.
func closeAfterShutdownRequest(requested <-chan struct{}, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &closingWriter{ResponseWriter: w, requested: requested}
		next.ServeHTTP(cw, r)
		// A handler that wrote nothing gets its header from net/http
		// after it returns.
		cw.beforeHeader()
	})
}

// closingWriter is the ResponseWriter closeAfterShutdownRequest hands to
// handlers. Unwrap keeps http.ResponseController's optional methods
// reachable; Flush, Hijack, ReadFrom and WriteString are passed on as well
// because handlers, WebSocket libraries and io.Copy look for them by type
// assertion.
type closingWriter struct {
	http.ResponseWriter
	requested <-chan struct{}
	decided   bool
}

// beforeHeader runs once, before the final header is written.
func (w *closingWriter) beforeHeader() {
	if w.decided {
		return
	}
	w.decided = true
	select {
	case <-w.requested:
		w.Header().Set("Connection", "close")
	default:
	}
}

func (w *closingWriter) WriteHeader(code int) {
	if code >= 200 { // not for 1xx: interim, or 101 whose connection is handed over
		w.beforeHeader()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.beforeHeader()
	return w.ResponseWriter.Write(p)
}

// Flush writes the header if it is not yet written, so it decides first.
func (w *closingWriter) Flush() {
	w.beforeHeader()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// ReadFrom keeps net/http's sendfile path for io.Copy into the response.
func (w *closingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.beforeHeader()
	return io.Copy(w.ResponseWriter, r)
}

func (w *closingWriter) WriteString(s string) (int, error) {
	w.beforeHeader()
	return io.WriteString(w.ResponseWriter, s)
}

// Hijack hands the connection over; what is written on it is the caller's.
func (w *closingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.decided = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap is for http.ResponseController.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
