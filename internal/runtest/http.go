package runtest

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// httpInterval is how often WaitOK asks: a process coming up is usually
// seconds away, and each attempt may wait for a connection.
const httpInterval = 50 * time.Millisecond

// WaitOK waits until GET url answers 200, for a process the test started
// (a binary, `make run`). It fails tb with the process's output when the
// process exits first (a value on exited) or within passes; output is read
// only then. Like tb.Fatalf, it must be called from the goroutine running
// the test.
func WaitOK(tb testing.TB, url string, within time.Duration, exited <-chan error, output func() string) {
	tb.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(httpInterval)
	defer tick.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			tb.Fatalf("the process exited (%v) before %s answered 200:\n%s", err, url, output())
		case <-deadline.C:
			tb.Fatalf("%s did not answer 200 within %s:\n%s", url, within, output())
		case <-tick.C:
		}
	}
}
