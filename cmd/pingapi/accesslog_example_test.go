package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestGracefulStopLosesNoAccessLogLine sends a burst of requests, stops
// pingapi with SIGTERM the moment the last answer arrives, and counts the
// access log lines: the log is written in batches off the request path, so
// this proves the stop flushes the last batch.
func TestGracefulStopLosesNoAccessLogLine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst := start(ctx, t, "--nats.url=nats://"+closedPort(t))
	const clients, each = 8, 250
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Go(func() {
			for range each {
				resp, err := client.Get(inst.URL + "/pingpong/ping")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if err := inst.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := inst.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("exit = %d, %v; want 0", code, err)
	}
	n, last := 0, ""
	for line := range strings.Lines(inst.Log()) {
		var rec struct{ Msg, Path string }
		if json.Unmarshal([]byte(line), &rec) == nil {
			last = rec.Msg
			if rec.Msg == "http request" && rec.Path == "/pingpong/ping" {
				n++
			}
		}
	}
	// The line logged just before Main returns is the one a missing flush
	// loses first.
	if last != "application stopped" {
		t.Errorf("last log line %q, want \"application stopped\"", last)
	}
	if n != clients*each {
		t.Errorf("%d access log lines for /pingpong/ping, want %d", n, clients*each)
	}
}
