package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		_, _ = io.WriteString(w, "Pong")
	}))
	defer ok.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring
		stderr string // a substring
	}{
		{"all succeed", []string{"-url", ok.URL, "-max-requests", "5", "-rate", "500", "-want-body", "Pong"}, 0, "sent=5 failed=0", ""},
		{"post", []string{"-url", ok.URL, "-method", "POST", "-body", `{"work":"1ms"}`, "-max-requests", "3", "-rate", "500"}, 0, "sent=3 failed=0", ""},
		{"for a duration", []string{"-url", ok.URL, "-duration", "100ms", "-rate", "100"}, 0, "failed=0", ""},
		{"failures exit 1", []string{"-url", failing.URL, "-max-requests", "3", "-rate", "500"}, 1, "3× status 503", ""},
		{"wrong body exits 1", []string{"-url", ok.URL, "-max-requests", "2", "-rate", "500", "-want-body", "Ping"}, 1, "failed=2", ""},
		{"no url", nil, 2, "", "-url is required"},
		{"bad rate", []string{"-url", ok.URL, "-rate", "0"}, 2, "", "-rate 0"},
		{"bad method", []string{"-url", ok.URL, "-method", "PUT"}, 2, "", `method "PUT"`},
		{"stray argument", []string{"-url", ok.URL, "extra"}, 2, "", "unexpected arguments"},
		{"unknown flag", []string{"-nope"}, 2, "", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if got := run(ctx, tt.args, &stdout, &stderr); got != tt.code {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", got, tt.code, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q lacks %q", &stdout, tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", &stderr, tt.stderr)
			}
		})
	}
}

// TestRunUntilStopped: with no duration the load runs until the context
// (SIGINT or SIGTERM in main) ends, then reports.
func TestRunUntilStopped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Pong")
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-url", srv.URL, "-rate", "200"}, &stdout, io.Discard) }()
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stdout.String(), "failed=0") {
			t.Errorf("exit %d, stdout %q; want 0 and a report", code, &stdout)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop when its context ended")
	}
}
