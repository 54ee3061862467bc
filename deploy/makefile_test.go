package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// makeEnv is the environment for a child make: the test's own, without
// anything a parent make or the developer set that would change its output.
func makeEnv(extra ...string) []string {
	drop := []string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TAG", "KIND", "KIND_CLUSTER", "DEPLOY_DIR",
		"IMAGE_REPO", "IMAGE_TARGET", "APP", "REPLICAS", "INGRESS_URL",
		"TESTCONTAINERS_RYUK_DISABLED", "TESTCONTAINERS_HOST_OVERRIDE"}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runMake runs make with args in the repository root and returns its output.
func runMake(tb testing.TB, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("make is required when CI is set")
		}
		tb.Skip("make is not installed")
	}
	cmd := exec.Command("make", args...)
	cmd.Dir = root
	cmd.Env = makeEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestMakeHelpDescribesEveryTarget(t *testing.T) {
	// Rule lines: "name: ...", not variables (":="), not special targets
	// (.PHONY) nor pattern rules (image.%).
	rule := regexp.MustCompile(`(?m)^([a-z][a-z0-9_.-]*):(?:[^=]|$)`)
	var targets []string
	for _, m := range rule.FindAllStringSubmatch(string(readFile(t, "Makefile")), -1) {
		targets = append(targets, m[1])
	}
	for _, want := range []string{"help", "build", "test", "test-race", "lint", "run", "image", "kind-up",
		"kind-load", "deploy", "scale", "rollout-check", "rollout-sim", "logs", "undeploy", "kind-down"} {
		if !slices.Contains(targets, want) {
			t.Errorf("Makefile has no target %s", want)
		}
	}
	help := map[string]string{}
	line := regexp.MustCompile(`(?m)^  ([a-z][a-z0-9_.-]*) +(\S.*)$`)
	for _, m := range line.FindAllStringSubmatch(runMake(t, "help"), -1) {
		help[m[1]] = m[2]
	}
	for _, target := range targets {
		if help[target] == "" {
			t.Errorf("make help does not describe %s (add a `## ` comment to its rule); it lists %v",
				target, slices.Sorted(maps.Keys(help)))
		}
	}
}

// make -n prints what `make kind-up deploy rollout-check` would do without
// a cluster, so the wiring between the Makefile, the Dockerfile, deploy/ and
// tools/rolloutcheck is checked here, in order.
func TestMakeKindUpDeployRolloutCheckDryRun(t *testing.T) {
	out := runMake(t, "-n", "kind-up", "deploy", "rollout-check", "TAG=t-123")
	objs := render(t, kindOverlay)
	// Every service under cmd/, in the Makefile's (sorted) order, with the
	// image and port its Deployment names: a service added by the guide is
	// built, loaded and rolled out like the two the template ships.
	var images, builds []string
	for _, app := range services(t) {
		c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
		name, _, _ := strings.Cut(c.Image, ":")
		images = append(images, name)
		var port int32
		for _, p := range c.Ports {
			if p.Name == "http" {
				port = p.ContainerPort
			}
		}
		builds = append(builds, fmt.Sprintf("--build-arg APP=%s --build-arg PORT=%d", app, port), "-t "+name+":t-123 .")
	}
	steps := []string{
		// kind runs in deploy/ (a tool of that module): absolute config path.
		"kind create cluster --name hostkit --config " + filepath.Join(root, "deploy/kind/cluster.yaml"),
		// Envoy Gateway and the Gateway API CRDs at the pinned release, then
		// a check that the cluster runs exactly those pins.
		"kubectl --context kind-hostkit apply --server-side -f https://github.com/envoyproxy/gateway/releases/download/v",
		"rollout status deployment/envoy-gateway",
		"get crd httproutes.gateway.networking.k8s.io",
		"want v1.", // the CRD bundle check
		"apply -f deploy/kind/envoy-gateway.yaml",
		"wait --for=condition=Accepted gatewayclass/envoy-gateway",
	}
	// The images the manifests name, built and loaded at the tag.
	steps = append(steps, builds...)
	steps = append(steps,
		// NATS: nats-server at go.mod's version, loaded with the services.
		"go build -trimpath -ldflags \"-s -w\" -o bin/linux/nats-server github.com/nats-io/nats-server/v2",
		"-f deploy/image/nats.Dockerfile",
		"docker save -o \"$archive\" "+strings.Join(images, ":t-123 ")+":t-123 localhost/nats-server:v",
		"kind load image-archive --name hostkit",
		"bash deploy/render-overlay.sh bin/deploy t-123 "+strings.Join(images, " "),
		"kubectl --context kind-hostkit apply -k bin/deploy",
		"rollout status statefulset/nats",
		"for app in "+strings.Join(services(t), " ")+"; do",
		"rollout status deployment/$app",
		"wait --for=condition=Programmed gateway/hostkit",
		"go build -o bin/rolloutcheck ./tools/rolloutcheck",
		"-url http://localhost:8081/pingpong/ping",
		"-url http://localhost:8081/pingpong/jobs -method POST",
		"rollout restart deployment/pingapi",
		"rollout status deployment/pingapi",
	)
	rest := out
	for _, step := range steps {
		i := strings.Index(rest, step)
		if i < 0 {
			t.Fatalf("make -n kind-up deploy rollout-check: %q missing or out of order in:\n%s", step, out)
		}
		rest = rest[i+len(step):]
	}
	// Every repository file the commands name must exist.
	for _, m := range regexp.MustCompile(`(?:^|[\s=])(deploy/[a-z0-9/._-]+\.(?:yaml|sh))`).FindAllStringSubmatch(out, -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
			t.Errorf("make -n names %s: %v", m[1], err)
		}
	}
}

// The overlay `make deploy` applies is generated outside the committed
// files and sets the tag on exactly the two hostkit images.
func TestMakeManifestsTagsTheImages(t *testing.T) {
	dir := t.TempDir()
	runMake(t, "manifests", "TAG=t-456", "DEPLOY_DIR="+dir)
	objs := render(t, dir)
	for app, want := range map[string]string{"pingapi": "hostkit/pingapi:t-456", "worker": "hostkit/worker:t-456"} {
		if got := container(t, &objs.deployment(t, app).Spec.Template.Spec, app).Image; got != want {
			t.Errorf("%s image = %q, want %q", app, got, want)
		}
	}
	// The NATS credentials are generated once and kept: a second render (a
	// redeploy) must not rotate them.
	first := natsAuthEnv(t, dir)
	for _, key := range []string{"pingapi-password", "worker-password", "system-password", "route-password"} {
		if !regexp.MustCompile(`^[0-9a-f]{48}$`).MatchString(first[key]) {
			t.Errorf("generated %s = %q, want 48 hex digits (URL-safe, 192 bits)", key, first[key])
		}
	}
	runMake(t, "manifests", "TAG=t-789", "DEPLOY_DIR="+dir)
	if again := natsAuthEnv(t, dir); !maps.Equal(first, again) {
		t.Errorf("a second make manifests rotated the NATS credentials")
	}
	if len(objs.secrets) != 1 {
		t.Errorf("generated overlay has Secrets %v, want nats-auth-HASH", slices.Sorted(maps.Keys(objs.secrets)))
	}
	committed := render(t, kindOverlay)
	if got, want := container(t, &objs.statefulSets["nats"].Spec.Template.Spec, "nats").Image,
		container(t, &committed.statefulSets["nats"].Spec.Template.Spec, "nats").Image; got != want {
		t.Errorf("nats image = %q, want it untouched (%q)", got, want)
	}
}

func TestMakeTestIsTheWholeSuiteWithTestcontainersSettings(t *testing.T) {
	if out := runMake(t, "-n", "test"); !regexp.MustCompile(`go test -count=1 -timeout \d+m \./\.\.\.`).MatchString(out) {
		t.Errorf("make -n test = %q, want go test -count=1 -timeout Nm ./...", out)
	}
	out := runMake(t, "-s", "--eval", "print-env: ; @echo $$TESTCONTAINERS_RYUK_DISABLED $$TESTCONTAINERS_HOST_OVERRIDE", "print-env")
	if got, want := strings.TrimSpace(out), "true localhost"; got != want {
		t.Errorf("recipes see TESTCONTAINERS_RYUK_DISABLED, TESTCONTAINERS_HOST_OVERRIDE = %q, want %q", got, want)
	}
}

// tag.sh must give an unchanged tree the same tag and two different trees
// different ones, so a tag in kind never stands for two builds.
func TestImageTagNamesTheTreeContent(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is required when CI is set")
		}
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com",
			"-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(rel, content string) {
		t.Helper()
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := func() string {
		t.Helper()
		out, err := exec.Command("bash", filepath.Join(dir, "deploy/image/tag.sh")).Output()
		if err != nil {
			t.Fatalf("tag.sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	write("deploy/image/tag.sh", string(readFile(t, "deploy/image/tag.sh")))
	write("main.go", "package main\n")
	git("add", ".")
	git("commit", "-q", "-m", "first")
	rev := git("rev-parse", "--short=12", "HEAD")

	if got := tag(); got != rev {
		t.Fatalf("clean tree: tag = %q, want the commit %q", got, rev)
	}
	write("main.go", "package main // changed\n")
	dirty1 := tag()
	if !strings.HasPrefix(dirty1, rev+"-dirty-") || tag() != dirty1 {
		t.Errorf("dirty tree: tags %q, %q, want a stable %s-dirty-HASH", dirty1, tag(), rev)
	}
	write("new.go", "package main\n")
	if dirty2 := tag(); dirty2 == dirty1 || !strings.HasPrefix(dirty2, rev+"-dirty-") {
		t.Errorf("another change kept tag %q (was %q), want a new one", dirty2, dirty1)
	}
	write("bin/app", "build output")
	write("main.go", "package main\n")
	if err := os.Remove(filepath.Join(dir, "new.go")); err != nil {
		t.Fatal(err)
	}
	if got := tag(); got != rev {
		t.Errorf("tree back to the commit (bin/ aside): tag = %q, want %q", got, rev)
	}
}
