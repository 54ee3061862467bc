package host

import (
	"net/url"
	"strings"
)

// secretWords mark a key whose whole value is a secret.
var secretWords = []string{"password", "token", "secret", "key"}

// masked replaces a secret in logged configuration.
const masked = "xxxxx"

// Masked returns value as it may be logged for key: the whole value masked
// when the key's name says password, token, secret or key; otherwise with
// the userinfo of every URL in it masked (a comma-separated list of URLs,
// as nats.url takes, included): the password of user:password, or a lone
// user, which NATS and others read as a token.
func Masked(key, value string) string {
	if value == "" {
		return value
	}
	name := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return masked
		}
	}
	parts := strings.Split(value, ",")
	for i, part := range parts {
		parts[i] = maskUserinfo(part)
	}
	return strings.Join(parts, ",")
}

func maskUserinfo(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// Unparsable, yet it may hold a userinfo: mask all before the @.
		_, rest, ok := strings.Cut(s, "://")
		at := strings.LastIndex(rest, "@")
		if !ok || at < 0 {
			return masked
		}
		return s[:len(s)-len(rest)] + masked + rest[at:]
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	u.User = url.User(masked)
	return u.String()
}
