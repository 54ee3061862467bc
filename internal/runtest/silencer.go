package runtest

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Silencer forwards TCP connections from its own loopback address to a
// target until Silence: from then on it swallows what either side sends and
// closes nothing, as a frozen server or a network partition that drops
// packets does. The client's connection stays up; only answers stop.
type Silencer struct {
	ln     net.Listener
	silent atomic.Bool
	wg     sync.WaitGroup

	pattern   []byte
	swallowed chan struct{}
	once      sync.Once
}

// NewSilencer forwards to target until the test ends.
func NewSilencer(tb testing.TB, target string) *Silencer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Silencer{ln: ln, swallowed: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			s.wg.Go(func() { s.pipe(up, c, true) })
			s.wg.Go(func() { s.pipe(c, up, false) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// SilenceURL starts a Silencer in front of the server at serverURL
// (scheme://host:port, such as a NATS client URL) and returns it with the
// URL that reaches the server through it.
func SilenceURL(tb testing.TB, serverURL string) (*Silencer, string) {
	tb.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		tb.Fatalf("silence %q: %v", serverURL, err)
	}
	s := NewSilencer(tb, u.Host)
	u.Host = s.Addr()
	return s, u.String()
}

// Addr is the address clients connect to.
func (s *Silencer) Addr() string { return s.ln.Addr().String() }

// Silence stops forwarding. If pattern is not nil, the channel returned is
// closed once the client has sent, while silent, bytes holding it: the
// request the test waits to see swallowed.
func (s *Silencer) Silence(pattern []byte) <-chan struct{} {
	s.pattern = pattern
	s.silent.Store(true)
	return s.swallowed
}

// pipe copies src to dst until silence; fromClient marks the direction in
// which Silence's pattern is watched for.
func (s *Silencer) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	var seen []byte // the last chunks while silent, for a pattern split across reads
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		if s.silent.Load() {
			if fromClient && s.pattern != nil {
				seen = append(seen, buf[:n]...)
				if bytes.Contains(seen, s.pattern) {
					s.once.Do(func() { close(s.swallowed) })
				}
				seen = seen[max(0, len(seen)-len(s.pattern)):]
			}
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}
