package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// Nginx is a real nginx in front of a changing set of backends, configured
// as ingress-nginx configures its upstreams: HTTP/1.1 to the backends with a
// keep-alive pool of 320 connections, "Connection" cleared,
// proxy_next_upstream "error timeout" over at most 3 tries, and no retry of
// a non-idempotent request (POST) once it was sent. It runs in the
// foreground from a directory of its own; Add and Remove rewrite the
// upstream and reload (SIGHUP), and return once the new workers serve.
//
// ingress-nginx changes endpoints without a reload; a reload makes the old
// workers close their idle client connections, a race of nginx's own with a
// client reusing one. So this nginx answers clients with "Connection: close"
// (keepalive_timeout 0); its upstream pool, the pool under test, is kept.
type Nginx struct {
	dir, conf string
	port      int
	cmd       *foreground
	client    *http.Client

	mu         sync.Mutex // serialises config changes
	backends   []string   // host:port
	generation int
}

// nginxConfig is the whole configuration; .Generation is served at
// generationPath so that a reload can be seen to have taken effect.
var nginxConfig = template.Must(template.New("nginx").Parse(`# written by hostkit's rollout tests
{{if .Root}}user root;
{{end}}worker_processes 2;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/client_body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  upstream backends {
{{- range .Backends}}
    server {{.}} max_fails=0;
{{- end}}
    keepalive 320;
    keepalive_requests 10000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:{{.Port}};
    keepalive_timeout 0;
    location = ` + generationPath + ` { return 200 "{{.Generation}}"; }
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
    }
  }
}
`))

// generationPath answers the configuration generation nginx serves.
const generationPath = "/__rollout_generation"

// StartNginx runs nginx (the binary bin, "" for nginx on PATH or in
// /usr/sbin) from dir, a directory it owns, on a free loopback port, in
// front of backends (URLs such as http://127.0.0.1:8080). It returns once
// nginx serves. dir must exist.
func StartNginx(ctx context.Context, bin, dir string, backends ...string) (*Nginx, error) {
	bin, hosts, port, err := prepareProxy(bin, "nginx", backends)
	if err != nil {
		return nil, err
	}
	n := &Nginx{
		dir: dir, conf: filepath.Join(dir, "nginx.conf"), port: port, backends: hosts,
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	if err := n.writeConfig(); err != nil {
		return nil, err
	}
	n.cmd, err = startForeground(bin, "-p", dir, "-c", n.conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	if err != nil {
		return nil, err
	}
	if err := n.waitGeneration(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	return n, nil
}

// URL is where nginx listens, http://127.0.0.1:port.
func (n *Nginx) URL() string { return "http://127.0.0.1:" + strconv.Itoa(n.port) }

// Add puts a backend into the upstream and reloads.
func (n *Nginx) Add(ctx context.Context, rawURL string) error {
	hp, err := hostPorts([]string{rawURL})
	if err != nil {
		return err
	}
	return n.change(ctx, func(b []string) ([]string, error) {
		if slices.Contains(b, hp[0]) {
			return nil, fmt.Errorf("nginx backend %s: already added", rawURL)
		}
		return append(b, hp[0]), nil
	})
}

// Remove takes a backend out of the upstream and reloads. Old workers finish
// the requests they have, as an ingress does.
func (n *Nginx) Remove(ctx context.Context, rawURL string) error {
	hp, err := hostPorts([]string{rawURL})
	if err != nil {
		return err
	}
	return n.change(ctx, func(b []string) ([]string, error) {
		i := slices.Index(b, hp[0])
		if i < 0 {
			return nil, fmt.Errorf("nginx backend %s: not in the upstream", rawURL)
		}
		if len(b) == 1 {
			return nil, fmt.Errorf("nginx backend %s: an upstream needs a server", rawURL)
		}
		return slices.Delete(slices.Clone(b), i, i+1), nil
	})
}

func (n *Nginx) change(ctx context.Context, edit func([]string) ([]string, error)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, err := edit(n.backends)
	if err != nil {
		return err
	}
	n.backends = b
	if err := n.writeConfig(); err != nil {
		return err
	}
	master := n.cmd.cmd.Process.Pid
	old := workers(master)
	if err := n.cmd.signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("nginx reload: %w", err)
	}
	if err := n.waitGeneration(ctx); err != nil {
		return err
	}
	return n.waitOldWorkersStopAccepting(ctx, master, old)
}

// waitOldWorkersStopAccepting waits until each worker of the configuration
// before a reload has exited or is shutting down: until then it may still
// accept a connection and send it to a backend no longer in the upstream,
// so nginx has not fully learned of the change. A worker shutting down has
// closed its listening sockets and only finishes the requests it has.
// Workers are found in /proc; where there is none this does not wait.
func (n *Nginx) waitOldWorkersStopAccepting(ctx context.Context, master int, old []int) error {
	for {
		accepting := 0
		for _, pid := range old {
			title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err == nil && len(title) > 0 && !strings.Contains(string(title), "shutting down") {
				accepting++
			}
		}
		if accepting == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx: %d worker(s) of the old configuration still accept: %w", accepting, ctx.Err())
		case <-n.cmd.done:
			return fmt.Errorf("nginx exited: %v\n%s", n.cmd.err, n.Log())
		case <-time.After(time.Millisecond):
		}
	}
}

// workers lists the children of nginx's master process (its workers) from
// /proc; nil where there is none.
func workers(master int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(master) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(stat))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// writeConfig writes the next generation of the configuration.
func (n *Nginx) writeConfig() error {
	n.generation++
	f, err := os.Create(n.conf)
	if err != nil {
		return err
	}
	err = nginxConfig.Execute(f, map[string]any{
		"Root": os.Geteuid() == 0, "Dir": n.dir, "Port": n.port,
		"Backends": n.backends, "Generation": n.generation,
	})
	return errors.Join(err, f.Close())
}

// waitGeneration polls until nginx serves the latest configuration.
func (n *Nginx) waitGeneration(ctx context.Context) error {
	want := strconv.Itoa(n.generation)
	for {
		if got, err := n.get(generationPath); err == nil && got == want {
			return nil
		}
		select {
		case <-n.cmd.done:
			return fmt.Errorf("nginx exited: %v\n%s", n.cmd.err, n.Log())
		case <-ctx.Done():
			return fmt.Errorf("nginx did not serve configuration %s: %w\n%s", want, ctx.Err(), n.Log())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (n *Nginx) get(path string) (string, error) {
	resp, err := n.client.Get(n.URL() + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Log returns nginx's error log and what it wrote to stderr.
func (n *Nginx) Log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	return string(b) + n.cmd.output()
}

// Stop stops nginx at once (SIGTERM to its master) and waits for it.
func (n *Nginx) Stop() { n.cmd.stop(syscall.SIGTERM) }

// prepareProxy finds a proxy's binary (bin, or name on PATH or in
// /usr/sbin), turns its backends' URLs into host:port and picks the free
// loopback port it will listen on.
func prepareProxy(bin, name string, backends []string) (string, []string, int, error) {
	bin, err := findBinary(bin, name)
	if err != nil {
		return "", nil, 0, err
	}
	hosts, err := hostPorts(backends)
	if err != nil {
		return "", nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, 0, err
	}
	return bin, hosts, port, nil
}

// hostPorts turns backend URLs into the host:port an upstream names.
func hostPorts(urls []string) ([]string, error) {
	out := make([]string, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.Host == "" || strings.ContainsAny(u.Host, " ;{}") {
			return nil, fmt.Errorf("backend %q: want http://host:port", raw)
		}
		out = append(out, u.Host)
	}
	return out, nil
}
