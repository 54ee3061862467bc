package deploy_test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// usage is what a binary's --help says about its configuration.
type usage struct {
	env      []string          // every ENVIRONMENT name it reads
	defaults map[string]string // key -> default, for keys with one
}

// helpOf runs `app --help` and parses the key table host.Config.Usage prints:
// KEY, ENVIRONMENT, DEFAULT, MEANING columns.
func helpOf(tb testing.TB, app string) usage {
	tb.Helper()
	out, err := exec.Command(hostBinary(tb, app), "--help").CombinedOutput()
	if err != nil {
		tb.Fatalf("%s --help: %v\n%s", app, err, out)
	}
	u := usage{defaults: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.Contains(f[0], ".") || !strings.Contains(f[1], "__") {
			continue
		}
		u.env = append(u.env, f[1])
		u.defaults[f[0]] = f[2] // an empty default shifts the columns; only read the ones we know are set
	}
	if len(u.env) == 0 {
		tb.Fatalf("%s --help lists no configuration keys:\n%s", app, out)
	}
	return u
}

// The host rejects an unknown SECTION__KEY variable (exit 2), so a
// misspelt env var in a manifest would crash-loop the pod.
func TestManifestEnvIsDeclaredByTheBinaries(t *testing.T) {
	objs := render(t, kindOverlay)
	for _, app := range appContainers {
		t.Run(app, func(t *testing.T) {
			u := helpOf(t, app)
			c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
			for _, e := range c.Env {
				if strings.Contains(e.Name, "__") && !slices.Contains(u.env, e.Name) {
					t.Errorf("env %s is not a %s configuration key (known: %v)", e.Name, app, u.env)
				}
			}
			_, port, err := net.SplitHostPort(u.defaults["http.addr"])
			if err != nil {
				t.Fatalf("http.addr default %q: %v", u.defaults["http.addr"], err)
			}
			if got := containerPort(t, c, "http"); fmt.Sprint(got) != port {
				t.Errorf("containerPort http = %d, want %s, the binary's http.addr default", got, port)
			}
		})
	}
}

// The apps' NATS defaults (pingapi's nats.url, the worker's embedded
// engine) use the port the cluster's client Service and nats.conf use, so
// local runs and Kubernetes agree on 4222.
func TestDefaultNATSPortIsTheClusterClientPort(t *testing.T) {
	objs := render(t, kindOverlay)
	var client int32
	for _, p := range objs.services["nats"].Spec.Ports {
		if p.Name == "client" {
			client = p.Port
		}
	}
	defaults := map[string]string{
		"pingapi": strings.TrimPrefix(helpOf(t, "pingapi").defaults["nats.url"], "nats://"),
		"worker":  helpOf(t, "worker").defaults["nats.embedded.addr"],
	}
	for app, addr := range defaults {
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port != fmt.Sprint(client) {
			t.Errorf("%s default NATS address %q, want port %d (Service nats, client) (%v)", app, addr, client, err)
		}
	}
}

// Every probe path in the manifests must answer 200 on the real binary once
// it is ready, with the manifests' own environment. The worker runs its
// embedded engine here (the cluster's NATS is not reachable from a test)
// and pingapi publishes to it.
func TestProbePathsAnswerOnTheRealBinaries(t *testing.T) {
	objs := render(t, kindOverlay)
	natsAddr := freeAddr(t)
	addrs := map[string]string{"worker": freeAddr(t), "pingapi": freeAddr(t)}
	overrides := map[string]map[string]string{
		"worker": {
			"HTTP__ADDR":                addrs["worker"],
			"NATS__URL":                 "", // "" drops the variable: embedded engine
			"NATS__REPLICAS":            "",
			"NATS__EMBEDDED__ADDR":      natsAddr,
			"NATS__EMBEDDED__STORE_DIR": t.TempDir(),
		},
		"pingapi": {
			"HTTP__ADDR": addrs["pingapi"],
			"NATS__URL":  "nats://" + natsAddr,
		},
	}
	for _, app := range []string{"worker", "pingapi"} { // pingapi publishes to the worker's engine
		spec := &objs.deployment(t, app).Spec.Template.Spec
		c := container(t, spec, app)
		p := start(t, hostBinary(t, app), podEnv(t, c, app+"-0", overrides[app]))
		base := "http://" + addrs[app]
		p.waitStatus(t, base+"/healthz/ready", 200, 20*time.Second)
		probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe}
		for name, probe := range probes {
			if probe == nil || probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", app, name)
				continue
			}
			if port := containerPort(t, c, probe.HTTPGet.Port.String()); port != containerPort(t, c, "http") {
				t.Errorf("%s %s probe port %d is not the HTTP port", app, name, port)
			}
			if status, body := get(t, base+probe.HTTPGet.Path); status != 200 {
				t.Errorf("%s %s probe GET %s = %d %s, want 200", app, name, probe.HTTPGet.Path, status, body)
			}
		}
		if status, _ := get(t, base+"/metrics"); status != 200 {
			t.Errorf("%s GET /metrics = %d, want 200", app, status)
		}
	}
}

// podEnv is the environment the kubelet would give container c in a pod
// named pod, with overrides applied (an empty override drops the variable).
func podEnv(tb testing.TB, c *corev1.Container, pod string, overrides map[string]string) []string {
	tb.Helper()
	var env []string
	for _, e := range c.Env {
		if _, ok := overrides[e.Name]; ok {
			continue
		}
		v := e.Value
		if src := e.ValueFrom; src != nil {
			switch {
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.name":
				v = pod
			case src.ResourceFieldRef != nil:
				v = resourceValue(tb, c, src.ResourceFieldRef)
			case src.SecretKeyRef != nil:
				// Credentials for the cluster's NATS, which these tests
				// replace (nats_auth_test.go runs the binaries with them).
				v = "unused-" + src.SecretKeyRef.Key
			default:
				tb.Fatalf("env %s: source %+v not simulated by this test", e.Name, src)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	for name, v := range overrides {
		if v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// resourceValue is the downward API's value of ref: the resource divided by
// the divisor, rounded up.
func resourceValue(tb testing.TB, c *corev1.Container, ref *corev1.ResourceFieldSelector) string {
	tb.Helper()
	kind, name, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		tb.Fatalf("resourceFieldRef %s: not set on container %s", ref.Resource, c.Name)
	}
	div := ref.Divisor.MilliValue()
	if div == 0 {
		div = 1000
	}
	return fmt.Sprint((q.MilliValue() + div - 1) / div)
}
