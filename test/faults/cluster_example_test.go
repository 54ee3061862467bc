//go:build unix

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hostkit/hostkit/internal/runtest"
)

// natsNode is one nats-server of the test cluster. Its ports stay the same
// across restarts, so that routes and clients find it again.
type natsNode struct {
	name                             string
	clientPort, clusterPort, monPort int
	proc                             *process
}

func (n *natsNode) clientURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort) }
func (n *natsNode) monURL() string    { return fmt.Sprintf("http://127.0.0.1:%d", n.monPort) }

// natsCluster is a JetStream cluster of nats-server processes on loopback.
type natsCluster struct {
	nodes []*natsNode
}

// startCluster writes a configuration file per node (free loopback ports,
// a store directory each, routes to every node) and starts the nodes.
func startCluster(t testing.TB, bin, dir string, size int) *natsCluster {
	t.Helper()
	c := &natsCluster{}
	for i := range size {
		c.nodes = append(c.nodes, &natsNode{
			name:        fmt.Sprintf("n%d", i+1),
			clientPort:  runtest.FreePort(t),
			clusterPort: runtest.FreePort(t),
			monPort:     runtest.FreePort(t),
		})
	}
	var routes []string
	for _, n := range c.nodes {
		routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", n.clusterPort)))
	}
	for _, n := range c.nodes {
		conf := filepath.Join(dir, n.name+".conf")
		if err := os.WriteFile(conf, []byte(nodeConfig(n, filepath.Join(dir, n.name), routes)), 0o644); err != nil {
			t.Fatal(err)
		}
		n.proc = newProcess(t, n.name, bin, dir, minimalEnv(), "-c", conf)
		if err := n.proc.start(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func nodeConfig(n *natsNode, store string, routes []string) string {
	return fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: "faults"
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, n.name, n.clientPort, n.monPort, store, n.clusterPort, strings.Join(routes, ", "))
}

// urls is the comma-separated client URL of every node.
func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.clientURL())
	}
	return strings.Join(us, ",")
}

func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// healthy reports whether the node answers its /healthz with 200, which for
// a clustered JetStream server means it is connected to the meta leader and
// its streams and consumers are current.
func (n *natsNode) healthy(ctx context.Context) bool {
	return n.proc.running() && httpOK(ctx, n.monURL()+"/healthz")
}

// waitHealthy waits until every node in nodes (all when empty) is healthy.
func (c *natsCluster) waitHealthy(ctx context.Context, timeout time.Duration, nodes ...*natsNode) error {
	if len(nodes) == 0 {
		nodes = c.nodes
	}
	return poll(timeout, 100*time.Millisecond, "healthy nodes", func() bool {
		for _, n := range nodes {
			if !n.healthy(ctx) {
				return false
			}
		}
		return true
	})
}

// streamLeader returns the server name of stream's leader, "" during an
// election.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", fmt.Errorf("stream %s: no cluster information", stream)
	}
	return info.Cluster.Leader, nil
}

// clientsNamed returns the nodes holding a client connection with one of
// names, from each running node's /connz.
func (c *natsCluster) clientsNamed(ctx context.Context, names []string, skip *natsNode) []*natsNode {
	var found []*natsNode
	for _, n := range c.nodes {
		if n != skip && namedOn(ctx, n, names) > 0 {
			found = append(found, n)
		}
	}
	return found
}

// countNamed counts the client connections with one of names on the
// running nodes other than skip.
func (c *natsCluster) countNamed(ctx context.Context, names []string, skip *natsNode) int {
	count := 0
	for _, n := range c.nodes {
		if n != skip {
			count += namedOn(ctx, n, names)
		}
	}
	return count
}

// namedOn counts the client connections with one of names on n; 0 if n is
// not running or does not answer.
func namedOn(ctx context.Context, n *natsNode, names []string) int {
	if !n.proc.running() {
		return 0
	}
	got, err := connNames(ctx, n)
	if err != nil {
		return 0
	}
	count := 0
	for _, name := range got {
		if slices.Contains(names, name) {
			count++
		}
	}
	return count
}

func connNames(ctx context.Context, n *natsNode) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.monURL()+"/connz?limit=4096", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var connz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&connz); err != nil {
		return nil, fmt.Errorf("connz of %s: %w", n.name, err)
	}
	names := make([]string, len(connz.Connections))
	for i, cn := range connz.Connections {
		names[i] = cn.Name
	}
	return names, nil
}

// minimalEnv is the environment of every process the suite starts: no
// variable of the test's own environment that could configure it.
func minimalEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	return append(env, extra...)
}
