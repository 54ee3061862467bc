package host_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

// slowHandler answers "Pong" after delay, honouring the request context as
// the ping handler does; other paths answer at once. It reports each slow
// request on entered and, if its context ends first, on cancelled.
type slowHandler struct {
	delay     time.Duration
	entered   chan string
	cancelled chan struct{}
}

func newSlowHandler(delay time.Duration) *slowHandler {
	return &slowHandler{delay: delay, entered: make(chan string, 16), cancelled: make(chan struct{}, 16)}
}

func (h *slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/slow" {
		h.entered <- r.URL.Path
		select {
		case <-time.After(h.delay):
		case <-r.Context().Done():
			h.cancelled <- struct{}{}
			return
		}
	}
	_, _ = io.WriteString(w, "Pong")
}

// startHTTPServer starts a server on a free loopback port and stops it when
// the test ends.
func startHTTPServer(tb testing.TB, h http.Handler, lt *host.Lifetime) (*host.HTTPServer, string) {
	tb.Helper()
	s := host.NewHTTPServer("127.0.0.1:0", h, lt, nil)
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	return s, "http://" + s.Addr().String()
}

type httpResult struct {
	resp *http.Response
	body string
	err  error
}

// getAsync sends a GET in the background.
func getAsync(client *http.Client, url string) <-chan httpResult {
	ch := make(chan httpResult, 1)
	go func() {
		resp, err := client.Get(url)
		if err != nil {
			ch <- httpResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		ch <- httpResult{resp: resp, body: string(body), err: err}
	}()
	return ch
}

func receive[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestHTTPServerStartFailsWhenPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	s := host.NewHTTPServer(taken.Addr().String(), http.NotFoundHandler(), host.NewLifetime(), nil)
	err = s.Start(context.Background())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a taken port = %v, want EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("error %q should say the address and that it is in use", err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Start = %v, want nil", err)
	}
}

func TestHTTPServerAddrIsTheBoundPort(t *testing.T) {
	s := host.NewHTTPServer("127.0.0.1:0", http.NotFoundHandler(), host.NewLifetime(), nil)
	if s.Addr() != nil {
		t.Errorf("Addr before Start = %v, want nil", s.Addr())
	}
	_, url := startHTTPServer(t, http.NotFoundHandler(), host.NewLifetime())
	if strings.HasSuffix(url, ":0") {
		t.Errorf("Addr = %s, want the port the kernel picked", url)
	}
}

func TestHTTPServerTurnsKeepAlivesOffAtShutdownRequest(t *testing.T) {
	lt := host.NewLifetime()
	_, url := startHTTPServer(t, newSlowHandler(0), lt)
	client := &http.Client{Transport: &http.Transport{}}

	r := receive(t, getAsync(client, url+"/fast"), "response before shutdown")
	if r.err != nil || r.resp.Close {
		t.Fatalf("before shutdown: err %v; want a kept-alive response without Connection: close", r.err)
	}

	lt.RequestShutdown()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := receive(t, getAsync(client, url+"/fast"), "response after shutdown request")
		if r.err != nil || r.body != "Pong" {
			t.Fatalf("after shutdown request: body %q, err %v; want the server still serving", r.body, r.err)
		}
		if r.resp.Close { // the client reports "Connection: close" here, not in Header
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("responses never carried Connection: close after the shutdown request")
		}
	}

	// New connections are still accepted during the shutdown delay.
	fresh := &http.Client{Transport: &http.Transport{}}
	if r := receive(t, getAsync(fresh, url+"/fast"), "response on a new connection"); r.err != nil || !r.resp.Close {
		t.Errorf("new connection during shutdown: err %v; want Pong with Connection: close", r.err)
	}
}

func TestHTTPServerStopWaitsForInFlightRequests(t *testing.T) {
	lt := host.NewLifetime()
	h := newSlowHandler(300 * time.Millisecond)
	s, url := startHTTPServer(t, h, lt)
	client := &http.Client{Transport: &http.Transport{}}

	inFlight := getAsync(client, url+"/slow")
	receive(t, h.entered, "the slow request to arrive")
	began := time.Now()
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- s.Stop(ctx)
	}()

	r := receive(t, inFlight, "the in-flight response")
	if r.err != nil || r.body != "Pong" {
		t.Fatalf("in-flight request during Stop: body %q, err %v; want Pong", r.body, r.err)
	}
	if err := receive(t, stopped, "Stop"); err != nil {
		t.Fatalf("Stop = %v, want nil after the request drained", err)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Errorf("Stop returned after %s, before the in-flight request could finish", took)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Error("the server still accepts connections after Stop")
	}
}

func TestHTTPServerStopTimeoutClosesAndNamesWhatWasLeft(t *testing.T) {
	lt := host.NewLifetime()
	h := newSlowHandler(time.Hour)
	s, url := startHTTPServer(t, h, lt)

	inFlight := getAsync(&http.Client{Transport: &http.Transport{}}, url+"/slow?delay=1h")
	receive(t, h.entered, "the slow request to arrive")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want a DeadlineExceeded error", err)
	}
	if !strings.Contains(err.Error(), "1 request(s) in flight: GET /slow?delay=1h") {
		t.Errorf("Stop error %q should name the request it cut off", err)
	}
	receive(t, h.cancelled, "the cut-off request's context to be cancelled")
	if r := receive(t, inFlight, "the cut-off response"); r.err == nil {
		t.Errorf("cut-off request got %q, want a connection error", r.body)
	}
}

func TestHTTPServerStopBeforeStartIsANoOp(t *testing.T) {
	s := host.NewHTTPServer("127.0.0.1:0", http.NotFoundHandler(), host.NewLifetime(), nil)
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start = %v, want nil", err)
	}
}

// TestHTTPServerDrainsThroughDelayedShutdown is the seed scenario in
// milliseconds: a 600 ms request, shutdown delay 200 ms, shutdown timeout 2 s.
// The signal must not cancel the request; the client gets Pong, sent with
// Connection: close, and the host stops cleanly.
func TestHTTPServerDrainsThroughDelayedShutdown(t *testing.T) {
	sigs := &host.ManualSignals{}
	hst := host.New(host.Options{
		ShutdownTimeout: 2 * time.Second,
		Lifetime:        host.NewDelayedShutdownLifetime(sigs, 200*time.Millisecond, nil),
	})
	h := newSlowHandler(600 * time.Millisecond)
	s := host.NewHTTPServer("127.0.0.1:0", h, hst.Lifetime(), nil)
	hst.Add("http", s)
	ran := make(chan error, 1)
	go func() { ran <- hst.Run(context.Background()) }()
	receive(t, hst.Lifetime().Started(), "the host to start")
	url := "http://" + s.Addr().String()

	inFlight := getAsync(&http.Client{Transport: &http.Transport{}}, url+"/slow")
	receive(t, h.entered, "the slow request to arrive")
	if !sigs.Send(syscall.SIGTERM) {
		t.Fatal("nobody listens for SIGTERM")
	}

	r := receive(t, inFlight, "the slow response")
	if r.err != nil || r.body != "Pong" {
		t.Fatalf("slow request across SIGTERM: body %q, err %v; want Pong", r.body, r.err)
	}
	if !r.resp.Close {
		t.Error("response finished during shutdown lacks Connection: close")
	}
	if err := receive(t, ran, "Run to return"); err != nil {
		t.Errorf("Run = %v, want nil: everything drained within the timeout", err)
	}
	select {
	case <-h.cancelled:
		t.Error("the shutdown signal cancelled the request context")
	default:
	}
}

// TestHTTPServerShutdownTimeoutFailsTheRun: a request that outlives the
// shutdown timeout is cut off and the run fails, so the process exits 1.
func TestHTTPServerShutdownTimeoutFailsTheRun(t *testing.T) {
	hst := host.New(host.Options{
		ShutdownTimeout: 150 * time.Millisecond,
		Lifetime:        host.NewConsoleLifetime(&host.ManualSignals{}, nil),
	})
	h := newSlowHandler(time.Hour)
	s := host.NewHTTPServer("127.0.0.1:0", h, hst.Lifetime(), nil)
	hst.Add("http", s)
	ran := make(chan error, 1)
	go func() { ran <- hst.Run(context.Background()) }()
	receive(t, hst.Lifetime().Started(), "the host to start")

	getAsync(&http.Client{Transport: &http.Transport{}}, "http://"+s.Addr().String()+"/slow")
	receive(t, h.entered, "the slow request to arrive")
	hst.Lifetime().StopApplication()

	err := receive(t, ran, "Run to return")
	if got, want := host.ExitCode(err), host.ExitFailure; got != want {
		t.Errorf("exit code = %d (%v), want %d", got, err, want)
	}
	if err == nil || !strings.Contains(err.Error(), "GET /slow") {
		t.Errorf("Run error %v should name the request that was cut off", err)
	}
}

// TestHTTPServerRejectsOversizedAndMalformedRequests: the server itself
// answers 4xx before any handler runs.
func TestHTTPServerRejectsOversizedAndMalformedRequests(t *testing.T) {
	_, url := startHTTPServer(t, newSlowHandler(0), host.NewLifetime())
	addr := strings.TrimPrefix(url, "http://")
	tests := []struct {
		name, request string
		status        string
	}{
		{"header over MaxHeaderBytes", "GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", host.MaxHeaderBytes+4096) + "\r\n\r\n", "431"},
		{"malformed request line", "GET\r\n\r\n", "400"},
		{"malformed header", "GET /fast HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", "400"},
		{"unsupported protocol", "GET /fast HTTP/9.9\r\nHost: x\r\n\r\n", "505"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, tt.request); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, "HTTP/1.1 "+tt.status) {
				t.Errorf("status line = %q, want %s", line, tt.status)
			}
		})
	}
}
