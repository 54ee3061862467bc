package imagetest_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	dockercontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/testcontainers/testcontainers-go"

	"github.com/hostkit/hostkit/internal/runtest"
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
	port := httpPort(t, app)
	version := "test"
	var buildLog runtest.Buffer
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

// httpPort is the port of app's http.addr default, from its --help: the one
// place a binary's port is declared. The Makefile passes the same to the
// image (EXPOSE) and the manifests name it.
func httpPort(t *testing.T, app string) string {
	t.Helper()
	bin := binary(t, app, runtime.GOOS)
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	m := regexp.MustCompile(`(?m)^\s*http\.addr\s+\S+\s+\S*:(\d+)\b`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --help shows no http.addr default with a port:\n%s", app, out)
	}
	return string(m[1])
}

// TestEveryImageStartsReadyAndStopsOnSIGTERM runs the image of every binary
// under cmd/ (a new one included, with no change here): it must report
// ready, carry the labels, user and port the Dockerfile promises, and exit
// 0 on docker stop.
func TestEveryImageStartsReadyAndStopsOnSIGTERM(t *testing.T) {
	requireDocker(t)
	apps, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range apps {
		t.Run(app.Name(), func(t *testing.T) {
			name := app.Name()
			help, _ := exec.Command(binary(t, name, runtime.GOOS), "--help").CombinedOutput()
			addr := runtest.FreeAddr(t)
			env := map[string]string{"HTTP__ADDR": addr, "LOG__FORMAT": "json"}
			if bytes.Contains(help, []byte("nats.embedded.addr")) {
				env["NATS__EMBEDDED__ADDR"] = runtest.FreeAddr(t)
			} else if bytes.Contains(help, []byte("nats.url")) {
				env["NATS__URL"] = startNATS(t)
			}
			ctr := runImage(t, name, runOptions{env: env})
			if err := pollStatus(t.Context(), "http://"+addr+"/healthz/ready", 200, 30*time.Second, nil); err != nil {
				t.Fatal(err)
			}
			checkImageConfig(t, ctr, name, httpPort(t, name), true)
			if code := stopContainer(t, ctr); code != 0 {
				t.Errorf("exit code after docker stop = %d, want 0", code)
			}
		})
	}
}
