package docs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/repotest"
)

// The guide's new binary, and what `make run` and `worker publish` are for
// in it.
const (
	newApp       = "heartbeat"
	greetCmd     = `go run ./cmd/worker publish jobs.greet '{"name":"Ada"}'`
	greetJob     = `{"name":"Ada"}`
	badJob       = `{"name":""}`
	badJobCmd    = `go run ./cmd/worker publish jobs.greet '{"name":""}'`
	waitPatience = 15 * time.Second
)

// TestFollowTheGuide does what the guide says, in a copy of the repository,
// and checks that each step works as the guide claims: the worker greets
// Ada, the new binary starts with the environment of the Deployment the
// guide makes, answers its probes, its beats reach the worker's change
// feed, and both stop cleanly on SIGTERM.
func TestFollowTheGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs two binaries")
	}
	guideText, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{greetCmd, badJobCmd} {
		if !strings.Contains(string(guideText), cmd) {
			t.Fatalf("%s no longer shows `%s`; update this test with it", guide, cmd)
		}
	}
	blocks := parseGuide(t)
	for _, b := range blocks {
		if _, err := os.Stat(filepath.Join(repoRoot, b.path)); b.kind == kindFile && err == nil {
			t.Skipf("%s exists: this tree has followed the guide already", b.path)
		}
	}
	dir := repotest.Copy(t, repoRoot)
	apps := applyGuide(t, dir, blocks)
	bins := buildApps(t, dir, apps)

	deps := renderDeployments(t, dir)
	c := checkDeployment(t, deps[newApp], deps["worker"], bins[newApp])

	worker := startBinary(t, bins["worker"], []string{
		"HTTP__ADDR=127.0.0.1:0",
		"NATS__EMBEDDED__ADDR=127.0.0.1:0",
		"NATS__EMBEDDED__STORE_DIR=" + t.TempDir(),
		"LOG__FORMAT=json",
	})
	url := worker.wait(t, "the embedded NATS server", func(r logRecord) bool {
		return r["msg"] == "embedded NATS JetStream started"
	})["listen"].(string)

	publishJob(t, bins["worker"], url, greetJob)
	publishJob(t, bins["worker"], url, badJob)
	worker.wait(t, "the greeting", func(r logRecord) bool { return r["msg"] == "hello" && r["name"] == "Ada" })
	worker.wait(t, "the bad job in the DLQ", func(r logRecord) bool {
		return r["msg"] == "job moved to DLQ" && r["subject"] == "jobs.greet"
	})

	hb := startBinary(t, bins[newApp], deploymentEnv(t, c, map[string]string{
		"NATS__URL":        url,
		"HTTP__ADDR":       "127.0.0.1:0",
		"HEARTBEAT__EVERY": "50ms",
	}))
	addr := hb.wait(t, "the HTTP server", func(r logRecord) bool {
		return r["msg"] == "http server listening"
	})["addr"].(string)
	for _, probe := range []*probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Fatalf("container %s lacks an HTTP probe: %+v", c.Name, c)
		}
		waitOK(t, "http://"+addr+probe.HTTPGet.Path)
	}
	// The guide says the scraper reads /metrics on the http port, the port
	// the Deployment names http (checkDeployment): the copy's deploy tests
	// below check that the policies let it in.
	waitOK(t, "http://"+addr+"/metrics")

	host, _ := os.Hostname()
	key, _, _ := strings.Cut(host, ".")
	beats := 0
	worker.wait(t, "two beats of "+key+" in the change feed", func(r logRecord) bool {
		if r["msg"] == "change" && r["key"] == key {
			beats++
		}
		return beats == 2
	})

	hb.stop(t)
	worker.stop(t)

	// The extended tree's own tests, fast tier: those that list the
	// services (Makefile, images, manifests) must take the new one in.
	for _, args := range [][]string{
		{"vet", "./..."},
		{"test", "-short", "./..."},
		{"-C", "deploy", "test", "-short", "./..."},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// -trimpath keeps the copy's directory out of the build cache's
		// keys: unchanged packages reuse the last run's builds.
		cmd.Env = repotest.Env()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s in the extended copy: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// applyGuide carries out the guide's steps, file and edit blocks in order,
// in dir, and returns the commands they touch.
func applyGuide(tb testing.TB, dir string, blocks []block) []string {
	tb.Helper()
	var apps []string
	for _, b := range blocks {
		path := filepath.Join(dir, b.path)
		switch b.kind {
		case kindStep:
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", b.text)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				tb.Fatalf("%s: %v\n%s", b, err, out)
			}
		case kindFile:
			if _, err := os.Stat(path); err == nil {
				tb.Fatalf("%s: %s exists already; the guide says to create it", b, b.path)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				tb.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(b.text), 0o644); err != nil {
				tb.Fatal(err)
			}
		case kindEdit:
			editFile(tb, b, path)
		default:
			continue
		}
		if parts := strings.Split(b.path, "/"); len(parts) > 2 && parts[0] == "cmd" {
			apps = append(apps, parts[1])
		}
	}
	return apps
}

// editFile puts the block where its anchor is: the first of its lines that
// path has, which must occur there once and is replaced by the whole block.
// A Go file must be gofmt-clean after it; a YAML file is checked when the
// manifests are rendered.
func editFile(tb testing.TB, b block, path string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	var anchor string
	for line := range strings.Lines(b.text) {
		line = strings.TrimSuffix(line, "\n")
		if slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSuffix(l, "\n") == line }) {
			anchor = line
			break
		}
	}
	if anchor == "" {
		tb.Fatalf("%s: none of its lines is in %s, so it has no place there", b, b.path)
	}
	var out strings.Builder
	found := 0
	for _, line := range lines {
		if strings.TrimSuffix(line, "\n") == anchor {
			found++
			out.WriteString(b.text)
			continue
		}
		out.WriteString(line)
	}
	if found != 1 {
		tb.Fatalf("%s: its anchor %q occurs %d times in %s, want once", b, anchor, found, b.path)
	}
	edited := []byte(out.String())
	if strings.HasSuffix(path, ".go") {
		if formatted, err := format.Source(edited); err != nil || string(formatted) != string(edited) {
			tb.Fatalf("%s: %s is not gofmt-clean after the edit (%v)", b, b.path, err)
		}
	}
	if err := os.WriteFile(path, edited, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// buildApps builds ./cmd/<app> in dir for each app, the worker included, and
// returns their paths by name.
func buildApps(tb testing.TB, dir string, apps []string) map[string]string {
	tb.Helper()
	bin := tb.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	bins := map[string]string{}
	for _, app := range append(apps, "worker") {
		if _, ok := bins[app]; !ok {
			bins[app] = filepath.Join(bin, app)
			args = append(args, "./cmd/"+app)
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bins
}

// renderDeployments builds the kind overlay in dir as `make deploy` does
// (with the deploy module's render tool, so this module needs no kustomize)
// and returns its Deployments by name. The guide's and the worker's must be
// there.
func renderDeployments(tb testing.TB, dir string) map[string]*deployment {
	tb.Helper()
	cmd := exec.Command("go", "run", "./tools/render", "manifests/overlays/kind")
	cmd.Dir = filepath.Join(dir, "deploy")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("render the kind overlay: %v\n%s", err, stderr.String())
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(out, &objs); err != nil {
		tb.Fatalf("decode the rendered overlay: %v", err)
	}
	deps := map[string]*deployment{}
	for _, raw := range objs {
		var d deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			tb.Fatalf("decode %s: %v", raw, err)
		}
		if d.Kind == "Deployment" {
			deps[d.Metadata.Name] = &d
		}
	}
	for _, name := range []string{newApp, "worker"} {
		if deps[name] == nil {
			tb.Fatalf("the rendered manifests have no Deployment %s", name)
		}
	}
	return deps
}

// deployment is the part of a rendered apps/v1 Deployment the guide's test
// reads.
type deployment struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Containers []container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// container is the part of a pod's container the guide's test reads.
type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env []struct {
		Name      string          `json:"name"`
		Value     string          `json:"value"`
		ValueFrom json.RawMessage `json:"valueFrom"`
	} `json:"env"`
	StartupProbe   *probe `json:"startupProbe"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
}

// probe is an HTTP probe's path.
type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
	} `json:"httpGet"`
}

// checkDeployment checks that d runs the binary at bin the way the worker's
// Deployment runs the worker, and returns its container. Names come from the
// worker's, so that the check holds after tools/rename.
func checkDeployment(tb testing.TB, d, worker *deployment, bin string) *container {
	tb.Helper()
	if got, want := d.Metadata.Namespace, worker.Metadata.Namespace; got != want {
		tb.Errorf("namespace = %q, want the worker's, %q", got, want)
	}
	labels := d.Spec.Template.Metadata.Labels
	for k, v := range d.Spec.Selector.MatchLabels {
		if labels[k] != v {
			tb.Errorf("selector %s=%s does not match the pod labels %v", k, v, labels)
		}
	}
	if got := labels["app.kubernetes.io/name"]; got != newApp {
		tb.Errorf("pod label app.kubernetes.io/name = %q, want %q (make logs and make scale use it)", got, newApp)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != newApp {
		tb.Fatalf("containers = %v, want one named %s", cs, newApp)
	}
	c := &cs[0]
	workerImage := worker.Spec.Template.Spec.Containers[0].Image
	if want := strings.Replace(workerImage, "worker", newApp, 1); c.Image != want {
		tb.Errorf("image = %q, want %q like the worker's %q", c.Image, want, workerImage)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		tb.Fatalf("%s --help: %v\n%s", newApp, err, out)
	}
	var port string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "http.addr" {
			_, port, _ = strings.Cut(f[2], ":")
		}
	}
	var got string
	for _, p := range c.Ports {
		if p.Name == "http" {
			got = fmt.Sprint(p.ContainerPort)
		}
	}
	if got == "" || got != port {
		tb.Errorf("containerPort http = %q, want %q, the binary's http.addr default", got, port)
	}
	return c
}

// deploymentEnv is the container's environment with literal values, as the
// binary would see it in the pod, with overrides for running it here. Values
// Kubernetes fills in (valueFrom) are left out.
func deploymentEnv(tb testing.TB, c *container, overrides map[string]string) []string {
	tb.Helper()
	var env []string
	for _, e := range c.Env {
		if _, ok := overrides[e.Name]; ok || e.ValueFrom != nil {
			continue
		}
		env = append(env, e.Name+"="+e.Value)
	}
	for k, v := range overrides {
		env = append(env, k+"="+v)
	}
	return env
}

// publishJob runs `worker publish` as the guide does, against url.
func publishJob(tb testing.TB, worker, url, payload string) {
	tb.Helper()
	out, err := exec.Command(worker, "publish", "--url", url, "jobs.greet", payload).CombinedOutput()
	if err != nil {
		tb.Fatalf("worker publish jobs.greet %s: %v\n%s", payload, err, out)
	}
}

// waitOK polls url until it answers 200.
func waitOK(tb testing.TB, url string) {
	tb.Helper()
	deadline := time.Now().Add(waitPatience)
	for {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: no 200 within %s (last: %v)", url, waitPatience, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logRecord is one JSON log line.
type logRecord map[string]any

// binary is a program started by a test, with its JSON log records.
type binary struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited and its logs are read
	err  error         // Wait's result, set before done closes

	mu      sync.Mutex
	records []logRecord
	raw     strings.Builder
}

// startBinary runs bin with exactly env (nothing inherited, as in a container)
// and collects its log. A process still running when the test ends is
// killed; its log is printed when the test failed.
func startBinary(tb testing.TB, bin string, env []string) *binary {
	tb.Helper()
	p := &binary{name: filepath.Base(bin), cmd: exec.Command(bin), done: make(chan struct{})}
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.read(stderr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("%s log:\n%s", p.name, p.log())
		}
	})
	return p
}

func (p *binary) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec logRecord
		err := json.Unmarshal(sc.Bytes(), &rec)
		p.mu.Lock()
		p.raw.WriteString(sc.Text() + "\n")
		if err == nil {
			p.records = append(p.records, rec)
		}
		p.mu.Unlock()
	}
}

func (p *binary) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// wait polls the log until a logRecord satisfies match, and returns it. It fails
// the test when the process exits first.
func (p *binary) wait(tb testing.TB, what string, match func(logRecord) bool) logRecord {
	tb.Helper()
	deadline := time.Now().Add(waitPatience)
	for seen := 0; ; {
		p.mu.Lock()
		for ; seen < len(p.records); seen++ {
			if match(p.records[seen]) {
				rec := p.records[seen]
				p.mu.Unlock()
				return rec
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			tb.Fatalf("%s exited (%v) before logging %s", p.name, p.err, what)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not log %s within %s", p.name, what, waitPatience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit, as Kubernetes would.
func (p *binary) stop(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitPatience)
	defer cancel()
	select {
	case <-p.done:
		if p.err != nil {
			tb.Errorf("%s after SIGTERM: %v, want exit 0", p.name, p.err)
		}
	case <-ctx.Done():
		tb.Errorf("%s did not exit within %s of SIGTERM", p.name, waitPatience)
	}
}
