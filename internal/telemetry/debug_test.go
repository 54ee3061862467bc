package telemetry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/telemetry"
)

func TestDebugHandlerServesProfiles(t *testing.T) {
	srv := httptest.NewServer(telemetry.DebugHandler())
	defer srv.Close()
	tests := []struct{ path, want string }{
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/cmdline", ""},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s = %d, want 200 containing %q", tt.path, resp.StatusCode, tt.want)
		}
	}
}
