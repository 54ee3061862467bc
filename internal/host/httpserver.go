package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Timeouts of the HTTP server. There is deliberately no ReadTimeout and no
// WriteTimeout: both run for the whole request, so either would cut off a
// legitimately slow request (a 35 s ping; net/http even cancels the request
// context when the read deadline passes during the handler). Handlers bound
// their own work; the server bounds what a client can stall on: the header,
// and idle keep-alive connections.
const (
	// ReadHeaderTimeout bounds reading a request's header (slow-loris clients).
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes keep-alive connections idle this long; longer than
	// the usual 60 s of load balancers, so they, not we, close idle
	// connections and never reuse one we are closing.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes caps a request's header; larger ones get 431.
	MaxHeaderBytes = 64 << 10
)

// HTTPServer is a Service that serves HTTP for the application's lifetime
// and drains gracefully:
//
//   - Start binds the listener before it returns, so a port in use fails the
//     start (exit 1), then serves in a goroutine.
//   - When the lifetime's ShutdownRequested closes (the termination signal,
//     before any shutdown delay), every response whose header is written
//     from then on carries "Connection: close" (requests in flight at the
//     signal included), so clients and proxies open new connections, which
//     the load balancer sends elsewhere once it has seen readiness fail. No
//     connection is closed at the signal: a connection closes right after a
//     response that said so, and one that stays idle is closed by Stop. A
//     pooling proxy (nginx upstream keepalive, HAProxy) may write a request
//     on an idle connection at any instant and does not retry a POST that
//     meets a closed one, so closing idle connections at the signal would
//     fail requests. New connections are still accepted meanwhile.
//   - Stop stops accepting, closes idle connections and waits for in-flight
//     requests (http.Server.Shutdown) until ctx ends; then it closes what is
//     left and returns an error naming it. By then, after the shutdown
//     delay, the proxies have stopped sending here.
//
// Request contexts derive from a base context of the server's own, never
// from the signal context: a termination signal must not cancel the requests
// the shutdown sequence is waiting for. They are cancelled only when Stop
// gives up on them.
type HTTPServer struct {
	addr string
	srv  *http.Server
	lt   *Lifetime
	log  *slog.Logger

	cancelRequests context.CancelFunc
	requests       requestSet
	cut            atomic.Bool // set when Stop gives up on the requests left

	mu        sync.Mutex
	ln        net.Listener
	serveDone chan struct{}
	serveErr  error
}

// NewHTTPServer returns an HTTP server for handler on addr (host:port; port 0
// picks a free one, see Addr). It serves nothing until Start.
func NewHTTPServer(addr string, handler http.Handler, lt *Lifetime, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &HTTPServer{addr: addr, lt: lt, log: log, cancelRequests: cancel}
	s.srv = &http.Server{
		Handler:           s.requests.track(closeAfterShutdownRequest(lt.ShutdownRequested(), handler)),
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(base, cutKey{}, &s.cut) },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Start binds the listener and serves in the background. A bind error (the
// port is in use, the address is invalid) is returned, failing the start.
func (s *HTTPServer) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("http server: address %s is already in use (is another instance running?): %w", s.addr, err)
		}
		return fmt.Errorf("http server: listen on %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.ln, s.serveDone = ln, make(chan struct{})
	s.mu.Unlock()
	s.log.Info("http server listening", "addr", ln.Addr().String())
	go s.serve(ln)
	go s.logShutdownRequest()
	return nil
}

// Addr returns the address the server listens on, or nil before Start.
func (s *HTTPServer) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// serve runs until Stop. Should Serve fail on its own (the listener broke),
// the application cannot do its job: stop it, and let Stop report why.
func (s *HTTPServer) serve(ln net.Listener) {
	defer close(s.serveDone)
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return
	}
	s.mu.Lock()
	s.serveErr = fmt.Errorf("http server: serve: %w", err)
	s.mu.Unlock()
	s.log.Error("http server failed: stopping the application", "err", err)
	s.lt.StopApplication()
}

// logShutdownRequest says when responses start to close their connections.
// It does not call SetKeepAlivesEnabled(false): that also closes every idle
// connection at once, under the feet of a proxy about to reuse one.
func (s *HTTPServer) logShutdownRequest() {
	select {
	case <-s.lt.ShutdownRequested():
		s.log.Info("shutdown requested: responses say Connection: close, idle connections stay open, still serving")
	case <-s.serveDone:
	}
}

// Stop stops accepting connections and waits for in-flight requests until
// ctx ends. If they have not finished by then, it closes every connection,
// cancels the requests' contexts and returns an error naming them.
func (s *HTTPServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	done := s.serveDone
	s.mu.Unlock()
	if done == nil {
		return nil // never started
	}
	var stopErr error
	if err := s.srv.Shutdown(ctx); err != nil {
		left := s.requests.describe()
		// Close the connections before cancelling the requests: a handler
		// that returns on cancellation without writing would otherwise
		// have net/http send an empty 200, a cut-off request that looks
		// like a success.
		s.cut.Store(true)
		closeErr := s.srv.Close()
		s.cancelRequests()
		stopErr = errors.Join(fmt.Errorf("http server: shutdown: closed with %s: %w", left, err), closeErr)
	}
	s.cancelRequests()
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(stopErr, s.serveErr)
}

type cutKey struct{}

// CutByShutdown reports whether the HTTPServer that received the request
// ctx belongs to has cut it off because the shutdown timeout passed. A
// handler's own answer (a read error, a context error) hides that cause;
// the access log and the metrics ask here instead.
func CutByShutdown(ctx context.Context) bool {
	cut, _ := ctx.Value(cutKey{}).(*atomic.Bool)
	return cut != nil && cut.Load()
}

// requestSet tracks in-flight requests so a shutdown that times out can say
// which requests it cut off.
type requestSet struct {
	mu  sync.Mutex
	set map[*http.Request]time.Time
}

func (rs *requestSet) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		if rs.set == nil {
			rs.set = make(map[*http.Request]time.Time)
		}
		rs.set[r] = time.Now()
		rs.mu.Unlock()
		defer func() {
			rs.mu.Lock()
			delete(rs.set, r)
			rs.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// describe names the in-flight requests, oldest first, at most a few of them.
func (rs *requestSet) describe() string {
	const show = 5
	rs.mu.Lock()
	type req struct {
		what  string
		since time.Time
	}
	reqs := make([]req, 0, len(rs.set))
	for r, since := range rs.set {
		reqs = append(reqs, req{r.Method + " " + r.URL.RequestURI(), since})
	}
	rs.mu.Unlock()
	if len(reqs) == 0 {
		return "no request in flight (idle connections only)"
	}
	slices.SortFunc(reqs, func(a, b req) int { return a.since.Compare(b.since) })
	names := make([]string, 0, show)
	for _, r := range reqs[:min(len(reqs), show)] {
		names = append(names, fmt.Sprintf("%s (for %s)", r.what, time.Since(r.since).Round(time.Millisecond)))
	}
	more := ""
	if len(reqs) > show {
		more = fmt.Sprintf(" and %d more", len(reqs)-show)
	}
	return fmt.Sprintf("%d request(s) in flight: %s%s", len(reqs), strings.Join(names, ", "), more)
}
