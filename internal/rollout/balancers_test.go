package rollout_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/rollout"
)

// TestRealProxiesFollowTheirBackends: nginx and HAProxy send to the backends
// they were given, to an added one, and, once Remove returns, never to a
// removed one. The rollout figures rest on this.
func TestRealProxiesFollowTheirBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nginx and HAProxy processes")
	}
	for _, proxy := range []string{"nginx", "haproxy"} {
		t.Run(proxy, func(t *testing.T) {
			requireProxy(t, proxy)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, na := countingBackend(t, "a", 200)
			b, nb := countingBackend(t, "b", 200)
			var (
				bal balancer
				err error
			)
			if proxy == "nginx" {
				bal, err = rollout.StartNginx(ctx, "", t.TempDir(), a.URL)
			} else {
				bal, err = rollout.StartHAProxy(ctx, "", t.TempDir(), a.URL)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(bal.Stop)
			client := &http.Client{Timeout: 5 * time.Second}

			if got := answers(t, client, bal.URL(), 4); got["a"] != 4 {
				t.Fatalf("answers with backend a only = %v, want 4 from a", got)
			}
			if err := bal.Add(ctx, b.URL); err != nil {
				t.Fatal(err)
			}
			if err := bal.Add(ctx, b.URL); err == nil {
				t.Error("adding a backend twice succeeded, want an error")
			}
			if got := answers(t, client, bal.URL(), 20); got["a"] == 0 || got["b"] == 0 {
				t.Errorf("answers with a and b = %v, want both", got)
			}
			if err := bal.Remove(ctx, a.URL); err != nil {
				t.Fatal(err)
			}
			before := na.Load()
			if got := answers(t, client, bal.URL(), 10); got["b"] != 10 {
				t.Errorf("answers after removing a = %v, want 10 from b", got)
			}
			if na.Load() != before {
				t.Errorf("removed backend got %d more requests", na.Load()-before)
			}
			if err := bal.Remove(ctx, a.URL); err == nil {
				t.Error("removing a backend twice succeeded, want an error")
			}
			if nb.Load() == 0 {
				t.Error("added backend got no request")
			}
		})
	}
}

// answers sends n GETs through url and counts the bodies.
func answers(tb testing.TB, client *http.Client, url string, n int) map[string]int {
	tb.Helper()
	got := map[string]int{}
	for range n {
		resp, err := client.Get(url + "/")
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("GET through the proxy: status %d, err %v", resp.StatusCode, err)
		}
		got[string(body)]++
	}
	return got
}

// requireProxy skips without the proxy, unless CI is set: there .ci/run
// installs it, and its absence is a failure.
func requireProxy(t *testing.T, name string) {
	t.Helper()
	err := rollout.LookProxy(name)
	switch {
	case err == nil:
	case errors.Is(err, rollout.ErrNotInstalled) && os.Getenv("CI") == "":
		t.Skipf("%v: skipping the real-proxy test", err)
	default:
		t.Fatal(err)
	}
}

// balancer is a real proxy whose backends change during a rollout.
type balancer interface {
	URL() string
	Add(ctx context.Context, url string) error
	Remove(ctx context.Context, url string) error
	Log() string
	Stop()
}
