package host_test

import (
	"testing"

	"github.com/hostkit/hostkit/internal/host"
)

func TestMaskedHidesSecrets(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"nats.url", "nats://u:p@h:4222", "nats://u:xxxxx@h:4222"},
		{"nats.url", "nats://tok@h:4222", "nats://xxxxx@h:4222"},
		{"nats.url", "nats://h1:4222,nats://u:p@h2:4222", "nats://h1:4222,nats://u:xxxxx@h2:4222"},
		{"nats.url", "nats://u:p@h:port", "nats://xxxxx@h:port"},
		{"nats.url", "", ""},
		{"http.addr", ":8080", ":8080"},
		{"db.PASSWORD", "x", "xxxxx"},
		{"api.token", "x", "xxxxx"},
		{"tls.key_file", "/etc/k", "xxxxx"},
		{"oauth.client_secret", "x", "xxxxx"},
	}
	for _, tt := range tests {
		if got := host.Masked(tt.key, tt.value); got != tt.want {
			t.Errorf("Masked(%q, %q) = %q, want %q", tt.key, tt.value, got, tt.want)
		}
	}
}
