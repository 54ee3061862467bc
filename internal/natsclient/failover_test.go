//go:build unix

package natsclient_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/natsclient"
	"github.com/hostkit/hostkit/internal/runtest"
)

var (
	serverOnce sync.Once
	serverBin  string
	serverErr  error
)

// natsServerBinary builds nats-server at the version in go.mod, once per
// test binary: an embedded server cannot be frozen, a process can.
func natsServerBinary(tb testing.TB) string {
	tb.Helper()
	serverOnce.Do(func() {
		dir, err := os.MkdirTemp("", "natsclient-nats-server-")
		if err != nil {
			serverErr = err
			return
		}
		serverBin = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", serverBin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			serverErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if serverErr != nil {
		tb.Fatal(serverErr)
	}
	return serverBin
}

// startCluster runs n nats-server processes routed into one cluster on
// loopback and returns their client URLs and processes.
func startCluster(tb testing.TB, n int) ([]string, []*os.Process) {
	tb.Helper()
	bin := natsServerBinary(tb)
	clientPorts, routePorts := make([]int, n), make([]int, n)
	for i := range n {
		clientPorts[i], routePorts[i] = runtest.FreePort(tb), runtest.FreePort(tb)
	}
	routes := ""
	for i := range n {
		if routes != "" {
			routes += ","
		}
		routes += "nats-route://127.0.0.1:" + strconv.Itoa(routePorts[i])
	}
	urls := make([]string, n)
	procs := make([]*os.Process, n)
	for i := range n {
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(clientPorts[i]),
			"-n", fmt.Sprintf("n%d", i), "--cluster_name", "test",
			"--cluster", "nats://127.0.0.1:"+strconv.Itoa(routePorts[i]), "--routes", routes)
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		p := cmd.Process
		tb.Cleanup(func() {
			_ = p.Signal(syscall.SIGCONT)
			_ = p.Kill()
			_, _ = p.Wait()
		})
		urls[i], procs[i] = fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]), p
	}
	return urls, procs
}

// A connection leaves a server that stops answering (SIGSTOP: the socket
// stays open, nothing comes back) within PingInterval × (MaxPingsOutstanding
// +1), and reconnects to a healthy node. nats.go's defaults would take
// minutes.
func TestConnectionLeavesFrozenServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs nats-server processes")
	}
	urls, procs := startCluster(t, 2)
	opts := natsclient.Options{Name: "failover-test", PingInterval: 250 * time.Millisecond, MaxPingsOutstanding: 2}
	nc, err := natsclient.Dial(urls[0]+","+urls[1], opts, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	frozen := nc.ConnectedUrl()
	victim := procs[0]
	if frozen == urls[1] {
		victim = procs[1]
	}
	if err := victim.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// The bound: the stale-connection detection, plus the reconnect to the
	// other node (nats.go's first attempt at a server not tried lately is
	// immediate) and a margin for a loaded machine.
	bound := opts.StaleAfter() + 2*time.Second
	for !(nc.IsConnected() && nc.ConnectedUrl() != frozen) {
		if time.Since(began) > 3*bound {
			t.Fatalf("still on the frozen server %s after %s (status %s)", frozen, time.Since(began), nc.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(began)
	t.Logf("moved from frozen %s to %s in %s (stale after %s)", frozen, nc.ConnectedUrl(), took, opts.StaleAfter())
	if took > bound {
		t.Fatalf("moved to a healthy node after %s, want within %s", took, bound)
	}
	// And it works there.
	if err := nc.FlushTimeout(2 * time.Second); err != nil {
		t.Fatalf("flush on the new server: %v", err)
	}
}
