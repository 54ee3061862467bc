package runtest_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/runtest"
)

func TestWaitOK(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable) // starting
		}
	}))
	defer srv.Close()
	output := func() string { return "the process's log" }
	nobody := "http://" + runtest.FreeAddr(t)

	t.Run("answers 200 after two 503s", func(t *testing.T) {
		failure, _ := run(func(tb testing.TB) { runtest.WaitOK(tb, srv.URL, 10*time.Second, nil, output) })
		if failure != "" || calls.Load() != 3 {
			t.Errorf("WaitOK failed (%q) after %d calls, want success at the third", failure, calls.Load())
		}
	})
	t.Run("process exits first", func(t *testing.T) {
		exited := make(chan error, 1)
		exited <- errors.New("exit status 2")
		failure, _ := run(func(tb testing.TB) { runtest.WaitOK(tb, nobody, 10*time.Second, exited, output) })
		if !strings.Contains(failure, "exit status 2") || !strings.Contains(failure, "the process's log") {
			t.Errorf("failure = %q, want the exit and the output", failure)
		}
	})
	t.Run("never answers", func(t *testing.T) {
		failure, took := run(func(tb testing.TB) { runtest.WaitOK(tb, nobody, 300*time.Millisecond, nil, output) })
		if !strings.Contains(failure, "within 300ms") || took < 300*time.Millisecond {
			t.Errorf("failure = %q after %s, want the deadline's, not before it", failure, took)
		}
	})
}
