package runtest_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/hostkit/hostkit/internal/runtest"
)

func TestFreeAddrIsAFreeLoopbackAddress(t *testing.T) {
	addr := runtest.FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("FreeAddr() = %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("FreeAddr() = %q, want a loopback address", addr)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr() %s: %v", addr, err)
	}
	l.Close()
}

func TestFreePortDiffersWhileTaken(t *testing.T) {
	first := runtest.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(first)))
	if err != nil {
		t.Fatalf("listen on FreePort() %d: %v", first, err)
	}
	defer l.Close()
	if second := runtest.FreePort(t); second == first || second <= 0 {
		t.Errorf("FreePort() = %d with %d taken, want another port", second, first)
	}
}
