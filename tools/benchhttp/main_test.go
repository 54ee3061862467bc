package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hostkit/hostkit/internal/host"
	"github.com/hostkit/hostkit/internal/web"
)

// The floor is only a floor if it logs what the kit logs: the same message
// with the same attributes. This fails when the kit's access line gains or
// loses one and the floor's does not follow.
func TestFloorLogsTheKitsAccessLine(t *testing.T) {
	const path = "/pingpong/ping"
	var floorOut, kitOut bytes.Buffer

	floor := httptest.NewServer(bareMux(path, slog.New(slog.NewJSONHandler(&floorOut, nil))))
	defer floor.Close()
	get(t, floor.URL+path)

	r, err := web.NewRouter(web.RouterOptions{
		Logger:   slog.New(slog.NewJSONHandler(&kitOut, nil)),
		Registry: prometheus.NewRegistry(),
		Lifetime: host.NewLifetime(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Get(path, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "Pong") })
	kit := httptest.NewServer(r)
	defer kit.Close()
	get(t, kit.URL+path)

	floorKeys, kitKeys := accessKeys(t, floorOut.Bytes()), accessKeys(t, kitOut.Bytes())
	if !slices.Equal(floorKeys, kitKeys) {
		t.Errorf("floor's access line has %v, the kit's %v", floorKeys, kitKeys)
	}
}

func get(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// accessKeys returns the sorted keys of the one "http request" line in out.
func accessKeys(t *testing.T, out []byte) []string {
	t.Helper()
	var keys []string
	for line := range bytes.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if rec["msg"] != "http request" {
			continue
		}
		if keys != nil {
			t.Fatalf("more than one access line in %q", out)
		}
		keys = slices.Sorted(maps.Keys(rec))
	}
	if keys == nil {
		t.Fatalf("no access line in %q", out)
	}
	return keys
}
