package runtest

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago: the
// kernel picks it for a listener that is closed again at once. Another
// process may take it before the test binds it, but tests here never ask for
// fixed ports, so a collision is unlikely. Prefer listening on
// "127.0.0.1:0" directly when the code under test can say which port it got.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns 127.0.0.1:port with a port from FreePort. Nothing listens
// there when it returns, so it also serves as an address that refuses
// connections.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}
