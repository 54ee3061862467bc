package host_test

import (
	"strings"
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

func TestNewLoggerFormatsAndLevels(t *testing.T) {
	tests := []struct {
		level, format string
		want          string // a substring of the info line; "" means no line
	}{
		{"info", "json", `"msg":"hello"`},
		{"info", "auto", `"msg":"hello"`}, // not a terminal: JSON for the log collector
		{"info", "text", "INF hello"},     // tint, without colour off a terminal
		{"warn", "json", ""},              // info is below warn
		{"debug", "text", "INF hello"},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var b strings.Builder
			log, err := host.NewLogger(&b, tt.level, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello")
			if tt.want == "" && b.Len() != 0 || tt.want != "" && !strings.Contains(b.String(), tt.want) {
				t.Fatalf("logged %q, want it to contain %q", b.String(), tt.want)
			}
			if tt.format == "text" && strings.Contains(b.String(), "\x1b[") {
				t.Fatalf("text off a terminal has colour codes: %q", b.String())
			}
		})
	}
	for _, bad := range [][2]string{{"verbose", "json"}, {"info", "xml"}} {
		if _, err := host.NewLogger(&strings.Builder{}, bad[0], bad[1]); err == nil {
			t.Errorf("NewLogger(%q, %q) = nil error", bad[0], bad[1])
		}
	}
}
