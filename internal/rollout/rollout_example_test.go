package rollout_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
	"github.com/hostkit/hostkit/internal/web"
)

// pingapi is the binary TestMain builds for the simulation.
var pingapi string

// TestMain builds pingapi, or takes the build ROLLOUT_PINGAPI names (to
// measure another version, such as one before a fix). Under -short no test
// runs it, so nothing is built.
func TestMain(m *testing.M) {
	flag.Parse()
	if pingapi = os.Getenv("ROLLOUT_PINGAPI"); pingapi != "" || testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(rollout.RunWithBinary(m.Run, "github.com/hostkit/hostkit/cmd/pingapi", &pingapi))
}

// scenario is one rolling update: D is the new instances' shutdown delay,
// L the ingress lag (how long the proxy keeps sending to the old instance
// after it got SIGTERM).
type scenario struct {
	delay, lag time.Duration
}

// result is what a rolling update produced.
type result struct {
	load     rollout.Report
	slowBody string // what the slow request in flight at SIGTERM got
	slowErr  error
	oldExit  int
}

// TestRollout replaces one pingapi instance by another behind the proxy
// while the load generator sends steady traffic, as a Kubernetes rolling
// update does: start the new one, wait until ready, add it, SIGTERM the old
// one, and drop it from the proxy only after the ingress lag.
func TestRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pingapi processes")
	}
	t.Run("delay longer than ingress lag loses nothing", func(t *testing.T) {
		res := rollingUpdate(t, scenario{delay: 600 * time.Millisecond, lag: 150 * time.Millisecond})
		if res.load.Failed != 0 {
			t.Errorf("failed requests = %d, want 0:\n%s", res.load.Failed, res.load)
		}
		if res.load.Sent < 200 {
			t.Errorf("sent = %d, want at least 200: the load was not steady", res.load.Sent)
		}
		checkSlow(t, res)
	})
	t.Run("no delay with ingress lag fails requests", func(t *testing.T) {
		res := rollingUpdate(t, scenario{delay: 0, lag: 300 * time.Millisecond})
		if res.load.Failed == 0 {
			t.Errorf("failed requests = 0, want some: the proxy sent to a stopped instance for %s\n%s",
				300*time.Millisecond, res.load)
		}
		// What was accepted before the signal is still drained.
		checkSlow(t, res)
	})
}

func checkSlow(t *testing.T, res result) {
	t.Helper()
	if res.slowErr != nil || res.slowBody != "Pong" {
		t.Errorf("slow request in flight at SIGTERM: body %q, err %v; want Pong", res.slowBody, res.slowErr)
	}
	if res.oldExit != 0 {
		t.Errorf("old instance exit code = %d, want 0", res.oldExit)
	}
}

func rollingUpdate(t *testing.T, sc scenario) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	proxy := rollout.NewProxy()
	front := httptest.NewServer(proxy)
	defer front.Close()
	defer proxy.CloseIdleConnections()

	old := startInstance(ctx, t, sc)
	mustAdd(t, proxy, old.URL)
	// The new instance starts before the slow request, so that the SIGTERM
	// below comes while the slow request is surely still in flight.
	next := startInstance(ctx, t, sc) // returns once ready

	// A slow request is in flight at the old instance when it gets SIGTERM.
	slow := make(chan result, 1)
	go func() {
		var r result
		r.slowBody, r.slowErr = get(front.URL + "/pingpong/ping?delay=600ms")
		slow <- r
	}()
	runtest.Poll(ctx, t, "slow request in flight at the old instance", func() bool {
		n, err := proxy.InFlight(old.URL)
		return err == nil && n == 1
	})
	// In flight at the proxy is not yet accepted by the instance: a SIGTERM
	// before the instance read the request closes the listener under it
	// (with no shutdown delay, at once), and the proxy answers 502. Wait
	// until the instance's own gauge counts it (the scrape counts itself).
	runtest.Poll(ctx, t, "slow request in the old instance's handler", func() bool {
		return instanceInFlight(old.URL) >= 2
	})

	loadDone := make(chan rollout.Report, 1)
	go func() {
		rep, err := rollout.Load(ctx, rollout.LoadOptions{
			URL: front.URL + "/pingpong/ping", WantBody: "Pong",
			Rate: 200, Duration: 2 * time.Second, MaxRequests: 600, Timeout: 5 * time.Second,
		})
		if err != nil {
			t.Errorf("load: %v", err)
		}
		loadDone <- rep
	}()

	// The rolling update, while the load runs.
	mustAdd(t, proxy, next.URL)
	if err := old.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-time.After(sc.lag) // the lag is what is simulated, not a state to wait for
	if err := proxy.Remove(old.URL); err != nil {
		t.Fatal(err)
	}

	var res result
	var err error
	if res.oldExit, err = old.Wait(ctx); err != nil {
		t.Fatalf("old instance: %v", err)
	}
	res.load = <-loadDone
	s := <-slow
	res.slowBody, res.slowErr = s.slowBody, s.slowErr
	t.Logf("D=%s L=%s: %s", sc.delay, sc.lag, res.load)
	return res
}

func startInstance(ctx context.Context, t *testing.T, sc scenario) *rollout.Instance {
	t.Helper()
	inst, err := rollout.Start(ctx, pingapi,
		"--host.shutdown_delay="+sc.delay.String(), "--host.shutdown_timeout=5s", "--log.level=info")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		inst.Kill()
		if t.Failed() {
			t.Logf("instance %s log:\n%s", inst.URL, lastLines(inst.Log(), 30))
		}
	})
	if err := inst.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return inst
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), err
}

// instanceInFlight sums http_server_active_requests over the methods from
// the instance's /metrics, or returns -1 if it cannot.
func instanceInFlight(url string) int {
	page, err := get(url + web.MetricsPath)
	if err != nil {
		return -1
	}
	n, found := 0, false
	for line := range strings.Lines(page) {
		if rest, ok := strings.CutPrefix(line, "http_server_active_requests{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			m, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return -1
			}
			n, found = n+m, true
		}
	}
	if !found {
		return -1
	}
	return n
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
