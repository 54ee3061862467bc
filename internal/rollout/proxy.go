package rollout

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
)

// Proxy is a round-robin reverse proxy over a set of backends that can
// change while it serves, as an ingress's endpoint list does during a
// rolling update.
//
// It never retries a failed request on another backend: a request that
// reaches a backend that is gone fails with 502, so the load generator sees
// exactly what a client behind a lagging ingress would. (Go's transport may
// still resend a request that was never written to a reused connection the
// backend had just closed; nothing reached the backend then, and ingresses
// do the same.)
type Proxy struct {
	transport *http.Transport

	mu       sync.RWMutex
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	url      *url.URL
	proxy    *httputil.ReverseProxy
	inFlight atomic.Int64
}

// NewProxy returns a proxy with no backends; it answers 503 until one is added.
func NewProxy() *Proxy {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &Proxy{transport: t}
}

// Add puts a backend (http://host:port) into the rotation.
func (p *Proxy) Add(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("proxy backend %q: want http://host:port", rawURL)
	}
	b := &backend{url: u}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: p.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "proxy: backend "+u.Host+": "+err.Error(), http.StatusBadGateway)
		},
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.ContainsFunc(p.backends, func(x *backend) bool { return x.url.String() == u.String() }) {
		return fmt.Errorf("proxy backend %s: already added", u)
	}
	p.backends = append(p.backends, b)
	return nil
}

// Remove takes a backend out of the rotation. Requests already sent to it
// carry on.
func (p *Proxy) Remove(rawURL string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.backends, func(b *backend) bool { return b.url.String() == rawURL })
	if i < 0 {
		return fmt.Errorf("proxy backend %s: not in the rotation", rawURL)
	}
	p.backends = slices.Delete(p.backends, i, i+1)
	return nil
}

// Backends lists the backends in the rotation.
func (p *Proxy) Backends() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, len(p.backends))
	for i, b := range p.backends {
		out[i] = b.url.String()
	}
	return out
}

// InFlight returns how many requests the proxy has sent to the backend and
// not yet answered, or an error if it is not in the rotation.
func (p *Proxy) InFlight(rawURL string) (int, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, b := range p.backends {
		if b.url.String() == rawURL {
			return int(b.inFlight.Load()), nil
		}
	}
	return 0, errors.New("proxy backend " + rawURL + ": not in the rotation")
}

// ServeHTTP sends r to the next backend in turn.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.RLock()
	var b *backend
	if n := len(p.backends); n > 0 {
		b = p.backends[p.next.Add(1)%uint64(n)]
	}
	p.mu.RUnlock()
	if b == nil {
		http.Error(w, "proxy: no backend", http.StatusServiceUnavailable)
		return
	}
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	b.proxy.ServeHTTP(w, r)
}

// CloseIdleConnections closes the proxy's idle connections to backends.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }
