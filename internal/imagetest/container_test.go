package imagetest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dockercontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"

	"github.com/hostkit/hostkit/internal/example/ping"
	"github.com/hostkit/hostkit/internal/queue"
)

// imageUser is the account both Dockerfile targets run as (distroless nonroot).
const imageUser = "65532:65532"

// requireDocker skips the test when no Docker engine answers, except in CI
// (CI set), where a missing engine is a failure: the container tests must
// run there.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs container images")
	}
	p, err := testcontainers.NewDockerProvider()
	if err == nil {
		defer p.Close()
		err = p.Health(t.Context())
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Docker is required when CI is set: %v", err)
		}
		t.Skipf("Docker is not available: %v", err)
	}
}

// runOptions are the per-test parts of a container.
type runOptions struct {
	env   map[string]string
	user  string   // overrides the image's USER when set
	binds []string // host:container bind mounts
}

// runImage builds app's image from the repository's Dockerfile (target
// local, with a binary built here) and runs it on the host network, so the
// test reaches it on 127.0.0.1 like a local process. The container is
// removed, and its image deleted, when the test ends.
func runImage(t *testing.T, app string, opts runOptions) testcontainers.Container {
	t.Helper()
	ctxDir := buildContext(t, app)
	port := map[string]string{"pingapi": "8080", "worker": "8090"}[app]
	version := "test"
	var buildLog syncBuffer
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			FromDockerfile: testcontainers.FromDockerfile{
				Context:        ctxDir,
				Dockerfile:     "Dockerfile",
				Repo:           "hostkit-test/" + app,
				BuildArgs:      map[string]*string{"APP": &app, "PORT": &port, "VERSION": &version},
				BuildLogWriter: &buildLog,
				BuildOptionsModifier: func(o *client.ImageBuildOptions) {
					o.Target = "local"
				},
			},
			Env: opts.env,
			ConfigModifier: func(c *dockercontainer.Config) {
				if opts.user != "" {
					c.User = opts.user
				}
			},
			HostConfigModifier: func(hc *dockercontainer.HostConfig) {
				hc.NetworkMode = "host"
				hc.Binds = opts.binds
			},
		},
		Started: true,
	}
	ctr, err := testcontainers.GenericContainer(t.Context(), req)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("build and run the %s image: %v\nbuild log:\n%s", app, err, buildLog.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s container log:\n%s", app, containerLogs(ctr))
		}
	})
	return ctr
}

// buildContext assembles what the Dockerfile's local target reads, in the
// layout of the repository: the Dockerfile, .dockerignore, deploy/image/ and
// bin/linux/APP. A separate directory keeps test builds out of the tree.
func buildContext(t *testing.T, app string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(src, dst string) {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(src)
		if err != nil {
			t.Fatal(err)
		}
		dst = filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join(root, "Dockerfile"), "Dockerfile")
	copyFile(filepath.Join(root, ".dockerignore"), ".dockerignore")
	imageDir := filepath.Join(root, "deploy", "image")
	err := filepath.WalkDir(imageDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err == nil {
			copyFile(path, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	copyFile(binary(t, app, "linux"), filepath.Join("bin", "linux", app))
	return dir
}

func containerLogs(ctr testcontainers.Container) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return string(data)
}

// stopContainer is `docker stop`: SIGTERM, SIGKILL after 30s. It returns
// the exit code.
func stopContainer(t *testing.T, ctr testcontainers.Container) int {
	t.Helper()
	timeout := 30 * time.Second
	if err := ctr.Stop(t.Context(), &timeout); err != nil {
		t.Fatalf("docker stop: %v", err)
	}
	state, err := ctr.State(t.Context())
	if err != nil {
		t.Fatalf("container state: %v", err)
	}
	return state.ExitCode
}

func TestPingapiContainerDrainsOnSIGTERM(t *testing.T) {
	requireDocker(t)
	const delay = 2 * time.Second
	addr := freeAddr(t)
	ctr := runImage(t, "pingapi", runOptions{env: map[string]string{
		"HTTP__ADDR":             addr,
		"HOST__SHUTDOWN_DELAY":   delay.String(),
		"HOST__SHUTDOWN_TIMEOUT": "10s",
		"LOG__FORMAT":            "json",
		"NATS__URL":              startNATS(t),
	}})
	base := "http://" + addr
	if err := pollStatus(t.Context(), base+"/healthz/ready", 200, 20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	checkImageConfig(t, ctr, "pingapi", "8080", true)

	// A ping that outlasts the shutdown delay is written to the server
	// before SIGTERM.
	pinged := slowPing(t, base+"/pingpong/ping?delay="+(delay+time.Second).String())
	stopped := make(chan int, 1)
	began := time.Now()
	go func() { stopped <- stopContainer(t, ctr) }()

	// During the delay: not ready, yet still serving.
	if err := pollStatus(t.Context(), base+"/healthz/ready", 503, delay, nil); err != nil {
		t.Errorf("readiness after SIGTERM: %v", err)
	}
	if status, body := get(t, base+"/pingpong/ping"); status != 200 || body != "Pong" {
		t.Errorf("ping during the shutdown delay = %d %q, want 200 Pong", status, body)
	}

	res := <-pinged
	if res.err != nil || res.status != 200 || res.body != "Pong" {
		t.Errorf("in-flight ping across SIGTERM = %d %q (%v), want 200 Pong", res.status, res.body, res.err)
	}
	if code := <-stopped; code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if took := time.Since(began); took < delay {
		t.Errorf("container stopped %s after SIGTERM, before its %s shutdown delay ended", took, delay)
	}
}

// startNATS runs a JetStream server in the test process on loopback, which
// the container reaches over the host network, and returns its URL.
func startNATS(t *testing.T) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	return srv.ClientURL()
}

type pingResult struct {
	status int
	body   string
	err    error
}

// slowPing sends GET url in the background and returns once the request is
// written; the result arrives on the channel.
func slowPing(t *testing.T, url string) <-chan pingResult {
	t.Helper()
	done := make(chan pingResult, 1)
	wrote := make(chan struct{})
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- pingResult{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		done <- pingResult{status: resp.StatusCode, body: string(body), err: err}
	}()
	select {
	case <-wrote:
	case res := <-done:
		t.Fatalf("slow ping failed before it was sent: %+v", res)
	case <-time.After(10 * time.Second):
		t.Fatal("slow ping not sent within 10s")
	}
	return done
}

// checkImageConfig checks what both Dockerfile targets promise: the binary
// as PID 1 in exec form, the nonroot user, a writable home as working
// directory, the OCI labels and the service's port.
func checkImageConfig(t *testing.T, ctr testcontainers.Container, app, port string, defaultUser bool) {
	t.Helper()
	info, err := ctr.Inspect(t.Context())
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	cfg := info.Config
	if !slices.Equal(cfg.Entrypoint, []string{"/app"}) || len(cfg.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want exec-form [/app] and no cmd", cfg.Entrypoint, cfg.Cmd)
	}
	if defaultUser && cfg.User != imageUser {
		t.Errorf("user = %q, want %q", cfg.User, imageUser)
	}
	if cfg.WorkingDir != "/home/nonroot" {
		t.Errorf("working directory = %q, want /home/nonroot", cfg.WorkingDir)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.title":   "hostkit-" + app,
		"org.opencontainers.image.version": "test",
		"org.opencontainers.image.source":  "https://github.com/hostkit/hostkit",
	} {
		if got := cfg.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	var ports []string
	for p := range cfg.ExposedPorts {
		ports = append(ports, p.String())
	}
	if !slices.Equal(ports, []string{port + "/tcp"}) {
		t.Errorf("exposed ports = %v, want [%s/tcp]", ports, port)
	}
}

func TestWorkerContainerFinishesJobsAcrossARestart(t *testing.T) {
	requireDocker(t)
	store := t.TempDir()
	// The store is a bind mount: the container's user must own it. As root,
	// hand it to the image's user; otherwise run the container as the
	// caller, so the files stay removable by the test.
	opts := runOptions{binds: []string{store + ":/data"}}
	if os.Getuid() == 0 {
		if err := os.Chown(store, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	} else {
		opts.user = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	opts.env = map[string]string{
		"HTTP__ADDR":                httpAddr,
		"NATS__EMBEDDED__ADDR":      natsAddr,
		"NATS__EMBEDDED__STORE_DIR": "/data",
		"HOST__SHUTDOWN_TIMEOUT":    "10s",
		"LOG__FORMAT":               "json",
		// One job at a time, none buffered: the stop leaves most of them
		// in the stream for the restarted worker.
		"QUEUE__CONCURRENCY": "1",
		"QUEUE__PREFETCH":    "1",
	}
	ctr := runImage(t, "worker", opts)
	ready := "http://" + httpAddr + "/healthz/ready"
	if err := pollStatus(t.Context(), ready, 200, 30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	checkImageConfig(t, ctr, "worker", "8090", opts.user == "")

	const jobs = 30 // 3s of work, one at a time
	js := jetStream(t, natsAddr)
	for i := range jobs {
		data, _ := json.Marshal(ping.Job{ID: fmt.Sprintf("job-%02d", i), Work: "100ms"})
		if _, err := js.Publish(t.Context(), ping.JobsSubject, data); err != nil {
			t.Fatalf("publish job %d: %v", i, err)
		}
	}
	// Stop mid-work: as soon as the first job is done.
	metrics := "http://" + httpAddr + "/metrics"
	waitFor(t, "the first job done", func() bool { return jobsDone(t, metrics) > 0 })
	if code := stopContainer(t, ctr); code != 0 {
		t.Fatalf("worker exit code after SIGTERM = %d, want 0", code)
	}
	if err := ctr.Start(t.Context()); err != nil {
		t.Fatalf("start the worker again: %v", err)
	}
	if err := pollStatus(t.Context(), ready, 200, 30*time.Second, nil); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	js = jetStream(t, natsAddr)
	waitFor(t, "every job done", func() bool { return streamState(t, js, queue.JobsStream).Msgs == 0 })
	if s := streamState(t, js, queue.JobsStream); s.LastSeq != jobs {
		t.Errorf("JOBS last sequence = %d, want %d: the stream lost published jobs", s.LastSeq, jobs)
	}
	if s := streamState(t, js, queue.DLQStream); s.Msgs != 0 {
		t.Errorf("DLQ holds %d messages, want 0", s.Msgs)
	}
	// The restarted process counts only its own jobs: some must have been
	// left over, or the stop did not happen mid-work.
	after := jobsDone(t, metrics)
	if after == 0 || after >= jobs {
		t.Errorf("the restarted worker did %d of %d jobs, want some but not all", after, jobs)
	}
	t.Logf("%d of %d jobs were done after the restart", after, jobs)
}

// jobsDone sums worker_messages_processed_total for jobs.ping with result
// ok, as the worker's /metrics reports it.
func jobsDone(t *testing.T, metricsURL string) int {
	t.Helper()
	status, body := get(t, metricsURL)
	if status != 200 {
		t.Fatalf("GET %s = %d", metricsURL, status)
	}
	total := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "worker_messages_processed_total{") ||
			!strings.Contains(line, `subject="`+ping.JobsSubject+`"`) || !strings.Contains(line, `result="ok"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}

// waitFor polls cond every 20ms until it holds or 30s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("%s: not within 30s", what)
		case <-tick.C:
		}
	}
}

// jetStream connects to the worker's embedded engine.
func jetStream(t *testing.T, addr string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://"+addr, nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect to the worker's NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State
}
