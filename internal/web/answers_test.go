package web_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/web"
)

// TestMethodNotAllowedAllowsEveryServedMethod: a GET route also serves HEAD
// (the router maps it), so Allow must name it, or a client that trusts
// Allow never tries HEAD.
func TestMethodNotAllowedAllowsEveryServedMethod(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	tests := []struct {
		method, path string
		want         []string
	}{
		{"DELETE", "/ok", []string{"GET", "HEAD"}},
		{"POST", web.LivePath, []string{"GET", "HEAD"}},
		{"PUT", "/echo", []string{"POST"}},
	}
	for _, tt := range tests {
		resp := f.do(t, tt.method, tt.path, "")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s = %d, want 405", tt.method, tt.path, resp.StatusCode)
		}
		var got []string
		for _, v := range resp.Header.Values("Allow") {
			for m := range strings.SplitSeq(v, ",") {
				got = append(got, strings.TrimSpace(m))
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

// TestProblemInstanceIsAnEscapedURIReference: the decoded path may hold
// spaces, quotes and non-ASCII, which are not valid in a URI reference.
func TestProblemInstanceIsAnEscapedURIReference(t *testing.T) {
	f := newFixture(t, startedLifetime(t))
	for _, target := range []string{"/no%20such%22route/%C3%A9?q=1", "/a%2Fb", "/plain"} {
		p := decodeProblem(t, f.do(t, "GET", target, ""))
		want, _, _ := strings.Cut(target, "?")
		if p.Instance != want {
			t.Errorf("GET %s: instance = %q, want the escaped path %q", target, p.Instance, want)
		}
		if u, err := url.Parse(p.Instance); err != nil || u.String() != p.Instance {
			t.Errorf("GET %s: instance %q is not a valid URI reference (%v)", target, p.Instance, err)
		}
	}
}

// TestUnreadyAnswerForbidsCaching: a cached 503 (or a cached 200 later) would
// make a probe through a cache see a state that has passed.
func TestUnreadyAnswerForbidsCaching(t *testing.T) {
	lt := startedLifetime(t)
	lt.RequestShutdown()
	resp := newFixture(t, lt).do(t, "GET", web.ReadyPath, "")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ready = %d, want 503", resp.StatusCode)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}
