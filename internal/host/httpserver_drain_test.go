package host_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// rawConn is one client TCP connection to the server, driven by hand so a
// test sees exactly when the server keeps or closes it.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// send writes a GET for path, without waiting for the answer.
func (c *rawConn) send(tb testing.TB, path string) {
	tb.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		tb.Fatalf("GET %s: write: %v", path, err)
	}
}

// response reads one response and its body; resp.Close reports whether it
// said "Connection: close".
func (c *rawConn) response(path string) (*http.Response, error) {
	resp, err := http.ReadResponse(c.r, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp, errors.New(path + ": " + resp.Status)
	}
	return resp, nil
}

// closedByServer waits until the server closes the connection, and fails tb
// if it sends anything else or keeps it open past five seconds.
func (c *rawConn) closedByServer(tb testing.TB, what string) {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.r.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		tb.Errorf("%s: read %d bytes, err %v; want the server to close the connection (EOF)", what, n, err)
	}
}

// drainHandler answers /slow once released, /empty with a bare 200 (net/http
// writes the header after the handler returns) and anything else with "Pong".
type drainHandler struct {
	entered chan struct{}
	release chan struct{}
}

func (h *drainHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/slow":
		h.entered <- struct{}{}
		<-h.release
		_, _ = io.WriteString(w, "Pong")
	case "/empty":
	default:
		_, _ = io.WriteString(w, "Pong")
	}
}

// signalled is a slog handler that closes done at the server's "shutdown
// requested" record, which it logs once it has acted on the request, so a
// test knows the server has seen it.
type signalled struct {
	slog.Handler
	done chan struct{}
}

func (h *signalled) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "shutdown requested") {
		close(h.done)
	}
	return h.Handler.Handle(ctx, r)
}

// TestHTTPServerKeepsIdleConnectionsThroughShutdownDelay: a pooling proxy
// (nginx upstream keepalive, HAProxy) may write its next request on an idle
// keep-alive connection at any instant, and does not retry a POST that meets
// a closed one. So at the shutdown request the server closes no connection:
// every response written from then on says "Connection: close" (requests in
// flight at the request and handlers that write nothing included), the
// server closes a connection only right after such a response, and idle
// connections close when Stop shuts the listener after the delay.
func TestHTTPServerKeepsIdleConnectionsThroughShutdownDelay(t *testing.T) {
	lt := host.NewLifetime()
	log := &signalled{Handler: slog.NewTextHandler(io.Discard, nil), done: make(chan struct{})}
	h := &drainHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := host.NewHTTPServer("127.0.0.1:0", h, lt, slog.New(log))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(h.release)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	addr := s.Addr().String()

	// Three kept-alive connections before the signal: two go idle, one has
	// a request in flight.
	reused, idle, inFlight := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{reused, idle} {
		c.send(t, "/fast")
		if resp, err := c.response("/fast"); err != nil || resp.Close {
			t.Fatalf("before the signal: err %v; want a kept-alive 200", err)
		}
	}
	inFlight.send(t, "/slow")
	receive(t, h.entered, "the slow request to arrive")

	lt.RequestShutdown()
	receive(t, log.done, "the server to act on the shutdown request")

	// The idle connection opened before the signal still serves, once.
	reused.send(t, "/fast")
	resp, err := reused.response("/fast")
	if err != nil {
		t.Fatalf("request on a connection idle at the signal: %v; want 200 (a proxy would answer 502)", err)
	}
	if !resp.Close {
		t.Error("response after the signal lacks Connection: close")
	}
	reused.closedByServer(t, "after a Connection: close response")

	// The request in flight at the signal is answered with Connection: close.
	close(h.release)
	released = true
	if resp, err := inFlight.response("/slow"); err != nil || !resp.Close {
		t.Errorf("request in flight at the signal: err %v; want 200 with Connection: close", err)
	}

	// So is a handler that writes nothing, on a new connection.
	fresh := dialRaw(t, addr)
	fresh.send(t, "/empty")
	if resp, err := fresh.response("/empty"); err != nil || !resp.Close {
		t.Errorf("empty response after the signal: err %v; want 200 with Connection: close", err)
	}

	// After the delay, Stop closes the connection still idle.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop = %v, want nil: nothing was in flight", err)
	}
	idle.closedByServer(t, "idle connection at Stop")
}

// TestHTTPServerResponsesBeforeTheSignalKeepAlive: the wrapper that adds
// "Connection: close" leaves responses before the signal alone, and keeps
// the writer's optional interfaces reachable, by type assertion too.
func TestHTTPServerResponsesBeforeTheSignalKeepAlive(t *testing.T) {
	flushed := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hijack" {
			hj, ok := w.(http.Hijacker)
			if !ok {
				http.Error(w, "not a Hijacker", http.StatusInternalServerError)
				return
			}
			conn, buf, err := hj.Hijack()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = buf.Flush()
			return
		}
		_, _ = io.WriteString(w, "Po")
		_, isFlusher := w.(http.Flusher)
		if !isFlusher {
			flushed <- errors.New("not an http.Flusher")
		} else {
			flushed <- http.NewResponseController(w).Flush()
		}
		_, _ = io.WriteString(w, "ng")
	})
	_, url := startHTTPServer(t, h, host.NewLifetime())
	c := dialRaw(t, strings.TrimPrefix(url, "http://"))
	for range 3 {
		c.send(t, "/")
		if resp, err := c.response("/"); err != nil || resp.Close {
			t.Fatalf("err %v, Connection: close %v; want a kept-alive 200", err, resp != nil && resp.Close)
		}
		if err := receive(t, flushed, "the flush"); err != nil {
			t.Errorf("Flush through the server's writer = %v, want nil", err)
		}
	}
	c.send(t, "/hijack")
	if resp, err := c.response("/hijack"); err != nil || !resp.Close {
		t.Errorf("hijacked response: err %v; want the handler's own 200", err)
	}
}
