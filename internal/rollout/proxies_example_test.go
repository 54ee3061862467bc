package rollout_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hostkit/hostkit/internal/engine/enginetest"
	"github.com/hostkit/hostkit/internal/queue"
	"github.com/hostkit/hostkit/internal/rollout"
)

// proxyCase is one rolling update behind a real proxy: D is pingapi's
// shutdown delay, L how long after SIGTERM the proxy is told the instance is
// gone (its endpoint update lag). The load is posts POSTs and gets GETs at
// the given rates; the instances are rolled one step after another until
// the POSTs are sent.
type proxyCase struct {
	proxy             string // nginx or haproxy
	delay, lag        time.Duration
	posts, gets       int
	postRate, getRate int
	wantNoFailures    bool // D > L: not one request may fail
	wantSomeFailures  bool // D = 0 < L: the proxy sends to a stopped instance
}

// proxyFigures is what one case measured, for the table the test prints.
type proxyFigures struct {
	c         proxyCase
	steps     int
	learned   time.Duration // longest SIGTERM → proxy updated, L plus the update itself
	post, get rollout.Report
	proxyLog  string // what the proxy logged about its upstreams, in counts
}

// TestProxyRollout rolls real pingapi processes one step at a time behind
// real nginx (configured as ingress-nginx configures its upstreams: an
// HTTP/1.1 keep-alive pool of 320, proxy_next_upstream "error timeout", POST
// never retried once sent) and HAProxy (http-reuse always), under POST and
// GET load. A pooling proxy writes its next request on an idle pooled
// connection at any instant and does not retry a POST that meets a closed
// one: with D > L pingapi must close no connection under its feet (0 failed
// requests); with D = 0 the proxy keeps sending to a stopped instance for L
// and requests fail, which shows the test sees failures when there are some.
//
// ROLLOUT_PINGAPI=path runs a given pingapi build instead of this tree's
// (to measure an older one); ROLLOUT_PROXY_POSTS scales the POST count.
func TestProxyRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx, HAProxy, NATS and pingapi processes under load")
	}
	posts := envInt(t, "ROLLOUT_PROXY_POSTS", 20000)
	// With D = 0, HAProxy answers 503 once its 3 retries of a refused
	// connection (a second apart) fail: a few steps show it. nginx retries a
	// refused connection on the next server, even a POST (nothing was sent);
	// what fails there is a POST sent on a pooled connection that the
	// stopping instance closes as idle, the race the shutdown delay exists
	// for, which needs more steps to show.
	zeroDelayPosts := map[string]int{"nginx": 8000, "haproxy": 1000}
	var cases []proxyCase
	for _, proxy := range []string{"nginx", "haproxy"} {
		// GETs are idempotent, so the proxies retry them on a closed
		// connection: the POSTs carry the proof, the GETs come along. L is
		// the simulated lag; an nginx reload adds a few hundred
		// milliseconds, up to two seconds on a crowded machine, hence
		// D = 3s.
		cases = append(cases,
			proxyCase{proxy: proxy, delay: 3 * time.Second, lag: 200 * time.Millisecond,
				posts: posts, postRate: 1250, gets: posts / 10, getRate: 125, wantNoFailures: true},
			proxyCase{proxy: proxy, delay: 0, lag: 200 * time.Millisecond,
				posts: zeroDelayPosts[proxy], postRate: 1250, gets: 250, getRate: 125, wantSomeFailures: true},
		)
	}
	var (
		mu      sync.Mutex
		figures []proxyFigures
	)
	t.Cleanup(func() { printFigures(t, figures) })
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s D=%s L=%s", c.proxy, c.delay, c.lag), func(t *testing.T) {
			requireProxy(t, c.proxy)
			f := rollBehindProxy(t, c)
			mu.Lock()
			figures = append(figures, f)
			mu.Unlock()
			switch {
			case c.wantNoFailures:
				if f.post.Failed != 0 || f.get.Failed != 0 {
					t.Errorf("D=%s > L=%s: failed POSTs %d of %d, GETs %d of %d; want 0\nPOST %s\nGET %s",
						c.delay, c.lag, f.post.Failed, f.post.Sent, f.get.Failed, f.get.Sent, f.post, f.get)
				}
				if f.post.Sent < c.posts {
					t.Errorf("POSTs sent = %d, want %d", f.post.Sent, c.posts)
				}
				if f.learned >= c.delay {
					t.Errorf("the proxy learned of a removal after %s, not within D=%s: the case does not test D > L", f.learned, c.delay)
				}
			case c.wantSomeFailures:
				if f.post.Failed+f.get.Failed == 0 {
					t.Errorf("D=0, L=%s: no request failed in %d POSTs and %d GETs over %d steps; want some: the proxy sent to stopped instances",
						c.lag, f.post.Sent, f.get.Sent, f.steps)
				}
			}
		})
	}
}

// rollBehindProxy runs one case: NATS, the first pingapi, the proxy, the
// load, and rolling steps until the POSTs are sent.
func rollBehindProxy(t *testing.T, c proxyCase) proxyFigures {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	eng := enginetest.Start(t, "", "127.0.0.1:0", nil)
	if _, err := eng.JetStream().CreateOrUpdateStream(ctx, queue.JobsStreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nats.url=" + eng.ClientURL(), "--host.shutdown_delay=" + c.delay.String(),
		"--host.shutdown_timeout=5s", "--log.level=info"} // info: Start reads the address from a log line
	current := startPingapi(ctx, t, args)
	bal := startBalancer(ctx, t, c.proxy, current.URL)

	f := proxyFigures{c: c}
	var loads sync.WaitGroup
	loads.Add(2)
	go func() {
		defer loads.Done()
		f.post = mustLoad(ctx, t, rollout.LoadOptions{
			URL: bal.URL() + "/pingpong/jobs", Method: "POST", Body: []byte(`{"work":"1ms"}`),
			Rate: c.postRate, MaxRequests: c.posts, Timeout: 10 * time.Second,
		})
	}()
	go func() {
		defer loads.Done()
		f.get = mustLoad(ctx, t, rollout.LoadOptions{
			URL: bal.URL() + "/pingpong/ping", WantBody: "Pong",
			Rate: c.getRate, MaxRequests: c.gets, Timeout: 10 * time.Second,
		})
	}()
	postsDone := make(chan struct{})
	go func() { loads.Wait(); close(postsDone) }()

	var exits sync.WaitGroup
	for step := 0; ; step++ {
		// Let the proxy pool connections to the current instance first.
		select {
		case <-postsDone:
		case <-time.After(300 * time.Millisecond):
		}
		if isClosed(postsDone) {
			break
		}
		next := startPingapi(ctx, t, args)
		if err := bal.Add(ctx, next.URL); err != nil {
			t.Fatal(err)
		}
		old := current
		if err := old.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		signalled := time.Now()
		<-time.After(c.lag) // the lag is what is simulated, not a state to wait for
		if err := bal.Remove(ctx, old.URL); err != nil {
			t.Fatal(err)
		}
		f.learned = max(f.learned, time.Since(signalled))
		f.steps++
		current = next
		exits.Go(func() {
			if code, err := old.Wait(ctx); err != nil || code != 0 {
				t.Errorf("old instance %s: exit %d, %v; want 0\n%s", old.URL, code, err, lastLines(old.Log(), 20))
			}
		})
	}
	exits.Wait()
	f.proxyLog = upstreamErrors(bal.Log())
	t.Logf("%s D=%s L=%s steps=%d learned≤%s upstream errors: %s\nPOST %s\nGET %s", c.proxy, c.delay, c.lag,
		f.steps, f.learned.Round(time.Millisecond), f.proxyLog, f.post, f.get)
	return f
}

// upstreamErrors counts the upstream errors nginx logs, by kind, so a
// figure says whether a 502 was a refused connection (retried unless every
// try failed) or a pooled connection closed under a request (never retried
// for a POST).
func upstreamErrors(log string) string {
	kinds := []struct{ name, text string }{
		{"prematurely closed", "upstream prematurely closed"},
		{"reset", "(104: Connection reset by peer)"},
		{"refused", "(111: Connection refused)"},
		{"no live upstreams", "no live upstreams"},
	}
	var out []string
	for _, k := range kinds {
		if n := strings.Count(log, k.text); n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, k.name))
		}
	}
	if len(out) == 0 {
		return "none logged"
	}
	return strings.Join(out, ", ")
}

func mustLoad(ctx context.Context, t *testing.T, opts rollout.LoadOptions) rollout.Report {
	rep, err := rollout.Load(ctx, opts)
	if err != nil {
		t.Errorf("load: %v", err)
	}
	return rep
}

func startPingapi(ctx context.Context, t *testing.T, args []string) *rollout.Instance {
	t.Helper()
	inst, err := rollout.Start(ctx, pingapi, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Kill)
	if err := inst.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return inst
}

func startBalancer(ctx context.Context, t *testing.T, proxy, backend string) balancer {
	t.Helper()
	var (
		b   balancer
		err error
	)
	switch proxy {
	case "nginx":
		b, err = rollout.StartNginx(ctx, "", t.TempDir(), backend)
	case "haproxy":
		b, err = rollout.StartHAProxy(ctx, "", t.TempDir(), backend)
	default:
		t.Fatalf("unknown proxy %q", proxy)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func printFigures(t *testing.T, figures []proxyFigures) {
	if len(figures) == 0 {
		return
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "proxy\tD\tL\tlearned≤\tsteps\tPOSTs\tfailed\tGETs\tfailed\t")
	for _, f := range figures {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", f.c.proxy, f.c.delay, f.c.lag,
			f.learned.Round(time.Millisecond), f.steps, f.post.Sent, f.post.Failed, f.get.Sent, f.get.Failed)
	}
	_ = w.Flush()
	t.Logf("real-proxy rollout figures:\n%s", b.String())
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", key, v)
	}
	return n
}
