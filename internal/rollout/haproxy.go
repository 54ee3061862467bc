package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// HAProxy is a real HAProxy in front of a changing set of backends, with
// server-side connection reuse ("http-reuse always": idle connections to a
// backend are shared by every client) and keep-alive on both sides. Add and
// Remove go through its runtime API, as an ingress controller's endpoint
// updates do, so there is no reload: a removed server is put in maintenance
// (no new requests) and finishes what it has.
type HAProxy struct {
	dir, sock string
	port      int
	cmd       *foreground

	mu      sync.Mutex
	servers map[string]string // host:port → server name
	next    int
}

var haproxyConfig = template.Must(template.New("haproxy").Parse(`# written by hostkit's rollout tests
global
  maxconn 8192
  stats socket {{.Sock}} level admin

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
  retries 3

frontend web
  bind 127.0.0.1:{{.Port}}
  default_backend pingapi

backend pingapi
  balance roundrobin
{{- range $name, $addr := .Servers}}
  server {{$name}} {{$addr}}
{{- end}}
`))

// haproxyBackend is the backend whose servers Add and Remove change.
const haproxyBackend = "pingapi"

// StartHAProxy runs haproxy (bin, "" for haproxy on PATH or in /usr/sbin)
// from dir, a directory it owns, on a free loopback port, in front of
// backends (URLs such as http://127.0.0.1:8080). It returns once HAProxy
// accepts connections and answers on its runtime API.
func StartHAProxy(ctx context.Context, bin, dir string, backends ...string) (*HAProxy, error) {
	bin, hosts, port, err := prepareProxy(bin, "haproxy", backends)
	if err != nil {
		return nil, err
	}
	h := &HAProxy{dir: dir, sock: filepath.Join(dir, "admin.sock"), port: port, servers: map[string]string{}}
	named := map[string]string{}
	for _, hp := range hosts {
		name := h.name(hp)
		named[name] = hp
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	f, err := os.Create(conf)
	if err != nil {
		return nil, err
	}
	err = haproxyConfig.Execute(f, map[string]any{"Sock": h.sock, "Port": port, "Servers": named})
	if err := errors.Join(err, f.Close()); err != nil {
		return nil, err
	}
	if h.cmd, err = startForeground(bin, "-db", "-f", conf); err != nil {
		return nil, err
	}
	if err := h.waitUp(ctx); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// name gives hp a server name; the caller holds mu or owns h alone.
func (h *HAProxy) name(hp string) string {
	h.next++
	name := "s" + strconv.Itoa(h.next)
	h.servers[hp] = name
	return name
}

func (h *HAProxy) waitUp(ctx context.Context) error {
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(h.port), time.Second)
		if err == nil {
			c.Close()
			if _, err = h.command("show info"); err == nil {
				return nil
			}
		}
		select {
		case <-h.cmd.done:
			return fmt.Errorf("haproxy exited: %v\n%s", h.cmd.err, h.Log())
		case <-ctx.Done():
			return fmt.Errorf("haproxy not up: %w (%v)\n%s", ctx.Err(), err, h.Log())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// URL is where HAProxy listens, http://127.0.0.1:port.
func (h *HAProxy) URL() string { return "http://127.0.0.1:" + strconv.Itoa(h.port) }

// Add registers a backend as a new server and enables it.
func (h *HAProxy) Add(_ context.Context, rawURL string) error {
	hp, err := hostPorts([]string{rawURL})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.servers[hp[0]]; ok {
		return fmt.Errorf("haproxy backend %s: already added", rawURL)
	}
	server := haproxyBackend + "/" + h.name(hp[0])
	if _, err := h.command("add server " + server + " " + hp[0]); err != nil {
		return err
	}
	_, err = h.command("enable server " + server)
	return err
}

// Remove puts a backend's server in maintenance: it gets no new requests
// and finishes the ones it has.
func (h *HAProxy) Remove(_ context.Context, rawURL string) error {
	hp, err := hostPorts([]string{rawURL})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name, ok := h.servers[hp[0]]
	if !ok {
		return fmt.Errorf("haproxy backend %s: not a server", rawURL)
	}
	delete(h.servers, hp[0])
	_, err = h.command("disable server " + haproxyBackend + "/" + name)
	return err
}

// command runs one runtime API command and returns its answer; an answer
// that is not empty and not a known success is an error.
func (h *HAProxy) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return "", fmt.Errorf("haproxy runtime API: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("haproxy %q: %w", cmd, err)
	}
	out := strings.TrimSpace(string(b))
	if strings.HasPrefix(cmd, "show ") || out == "" || out == "New server registered." {
		return out, nil
	}
	return out, fmt.Errorf("haproxy %q: %s", cmd, out)
}

// Log returns what HAProxy wrote to stdout and stderr.
func (h *HAProxy) Log() string { return h.cmd.output() }

// Stop stops HAProxy at once (SIGTERM) and waits for it.
func (h *HAProxy) Stop() { h.cmd.stop(syscall.SIGTERM) }
