package runtest_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/runtest"
)

// Before Silence the silencer is a transparent pipe; after it, nothing
// passes either way, the connection stays open, and what the client sent
// is seen for the pattern.
func TestSilencerForwardsThenSwallows(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // an echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
				return
			}
		}
	}()
	s := runtest.NewSilencer(t, ln.Addr().String())
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "hello\n" {
		t.Fatalf("echo before Silence = %q, %v; want hello", line, err)
	}

	swallowed := s.Silence([]byte("PING"))
	if _, err := c.Write([]byte("a PING here\n")); err != nil {
		t.Fatalf("write while silent: %v (the connection must stay open)", err)
	}
	select {
	case <-swallowed:
	case <-time.After(5 * time.Second):
		t.Fatal("the pattern sent while silent was not seen")
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := r.ReadString('\n'); err == nil || !isTimeout(err) {
		t.Fatalf("read while silent = %q, %v; want nothing until the deadline", line, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
