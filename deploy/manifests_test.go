package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// appContainers are the services this template ships (Deployments and
// container names), held to every invariant below. A service you add under
// cmd/ must have a Deployment (TestKindOverlayHasEveryObjectAndNothingElse);
// add it here too to hold it to the rest.
var appContainers = []string{"pingapi", "worker"}

// services lists the directories under cmd/: every one is a deployed service.
func services(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// shutdownMargin is what the grace period keeps beyond delay + timeout, for
// the process to exit after its last service stopped.
const shutdownMargin = 5 * time.Second

func TestKindOverlayHasEveryObjectAndNothingElse(t *testing.T) {
	objs, _ := deployed(t)
	got := map[string][]string{
		"Namespace":           slices.Sorted(maps.Keys(objs.namespaces)),
		"Deployment":          slices.Sorted(maps.Keys(objs.deployments)),
		"StatefulSet":         slices.Sorted(maps.Keys(objs.statefulSets)),
		"Service":             slices.Sorted(maps.Keys(objs.services)),
		"ConfigMap":           slices.Sorted(maps.Keys(objs.configMaps)),
		"PodDisruptionBudget": slices.Sorted(maps.Keys(objs.pdbs)),
		"Ingress":             slices.Sorted(maps.Keys(objs.ingresses)),
		"NetworkPolicy":       slices.Sorted(maps.Keys(objs.netpols)),
		"Gateway":             slices.Sorted(maps.Keys(objs.gateways)),
		"HTTPRoute":           slices.Sorted(maps.Keys(objs.httpRoutes)),
	}
	want := map[string][]string{
		"Namespace":           {"hostkit"},
		"Deployment":          services(t),
		"StatefulSet":         {"nats"},
		"Service":             {"nats", "nats-headless", "pingapi", "worker-metrics"},
		"ConfigMap":           {"nats-config"},
		"PodDisruptionBudget": {"nats", "pingapi", "worker"},
		"Ingress":             nil,
		"NetworkPolicy":       {"allow-dns", "default-deny", "metrics-from-scraper", "nats", "nats-clients-to-nats", "pingapi-from-gateway"},
		"Gateway":             {"hostkit"},
		"HTTPRoute":           {"pingapi"},
	}
	for kind, names := range want {
		if !slices.Equal(got[kind], names) {
			t.Errorf("%s objects = %v, want %v", kind, got[kind], names)
		}
	}
	// The generated Secret, named with kustomize's content hash.
	if len(objs.secrets) != 1 {
		t.Errorf("Secrets = %v, want one nats-auth-HASH", slices.Sorted(maps.Keys(objs.secrets)))
	}
	for name := range objs.secrets {
		if !strings.HasPrefix(name, "nats-auth-") {
			t.Errorf("Secret %s, want nats-auth-HASH", name)
		}
	}
	for id, ns := range objs.namespaceOf {
		if ns != "hostkit" {
			t.Errorf("%s is in namespace %q, want hostkit", id, ns)
		}
	}
}

// The decoding is only worth something if it is strict: a misspelt field
// must fail rather than vanish.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	tests := []struct {
		name, apiVersion, kind, yaml string
	}{
		{"unknown field", "apps/v1", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"},
		{"wrong type", "apps/v1", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: three\n"},
		{"wrong apiVersion", "extensions/v1beta1", "Ingress", "kind: Ingress\n"},
		{"unchecked kind", "v1", "Pod", "kind: Pod\n"},
		{"unknown HTTPRoute field", "gateway.networking.k8s.io/v1", "HTTPRoute", "kind: HTTPRoute\nspec:\n  rules:\n  - timeout: 1s\n"},
		{"old Gateway API version", "gateway.networking.k8s.io/v1beta1", "HTTPRoute", "kind: HTTPRoute\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &objects{}
			o.init()
			if err := o.add(tt.apiVersion, tt.kind, "x", []byte(tt.yaml)); err == nil {
				t.Fatalf("decoding %q succeeded, want an error", tt.yaml)
			}
		})
	}
}

func TestShutdownBudgetCoversDelayAndTimeout(t *testing.T) {
	objs := render(t, kindOverlay)
	for _, app := range appContainers {
		t.Run(app, func(t *testing.T) {
			spec := &objs.deployment(t, app).Spec.Template.Spec
			c := container(t, spec, app)
			delay := durationEnv(t, c, "HOST__SHUTDOWN_DELAY")
			timeout := durationEnv(t, c, "HOST__SHUTDOWN_TIMEOUT")
			if spec.TerminationGracePeriodSeconds == nil {
				t.Fatal("terminationGracePeriodSeconds is not set (default 30s)")
			}
			grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			// The host checks delay + timeout against this at start, so it
			// must be the pod's own grace period.
			if told := durationEnv(t, c, "HOST__TERMINATION_GRACE_PERIOD"); told != grace {
				t.Errorf("HOST__TERMINATION_GRACE_PERIOD = %s, terminationGracePeriodSeconds = %s: they must agree", told, grace)
			}
			if need := delay + timeout + shutdownMargin; grace < need {
				t.Errorf("terminationGracePeriodSeconds = %s, want >= delay %s + timeout %s + margin %s = %s",
					grace, delay, timeout, shutdownMargin, need)
			}
			// The in-app delay replaces a preStop sleep; having both adds them up.
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				t.Errorf("container has a preStop hook; the shutdown delay is HOST__SHUTDOWN_DELAY, never both")
			}
		})
	}
}

func TestSlowestWorkFitsTheShutdownTimeouts(t *testing.T) {
	objs := render(t, kindOverlay)
	pingapi := container(t, &objs.deployment(t, "pingapi").Spec.Template.Spec, "pingapi")
	worker := container(t, &objs.deployment(t, "worker").Spec.Template.Spec, "worker")
	// ping.max_delay bounds both the slowest ping and a job's work.
	maxDelay := durationEnv(t, pingapi, "PING__MAX_DELAY")
	if timeout := durationEnv(t, pingapi, "HOST__SHUTDOWN_TIMEOUT"); maxDelay >= timeout {
		t.Errorf("pingapi PING__MAX_DELAY %s >= HOST__SHUTDOWN_TIMEOUT %s: the slowest ping is cut off on shutdown", maxDelay, timeout)
	}
	if timeout := durationEnv(t, worker, "HOST__SHUTDOWN_TIMEOUT"); maxDelay+shutdownMargin > timeout {
		t.Errorf("worker HOST__SHUTDOWN_TIMEOUT %s < longest job %s + %s: a running job is cut off on shutdown",
			timeout, maxDelay, shutdownMargin)
	}
	// The seed scenario, a 35s request, must be accepted by pingapi and not
	// cut off by the gateway (Envoy's default route timeout is 15s): the
	// route's timeouts lie between the slowest ping and pingapi's own drain.
	const seedRequest = 35 * time.Second
	if maxDelay < seedRequest {
		t.Errorf("pingapi PING__MAX_DELAY %s rejects the seed's %s request", maxDelay, seedRequest)
	}
	route, ok := objs.httpRoutes["pingapi"]
	if !ok {
		t.Fatal("no pingapi HTTPRoute")
	}
	drain := durationEnv(t, pingapi, "HOST__SHUTDOWN_TIMEOUT")
	for i, rule := range route.Spec.Rules {
		to := rule.Timeouts
		if to == nil || to.Request == nil || to.BackendRequest == nil {
			t.Errorf("rule %d: timeouts = %+v, want request and backendRequest set", i, to)
			continue
		}
		request, err1 := time.ParseDuration(string(*to.Request))
		backend, err2 := time.ParseDuration(string(*to.BackendRequest))
		if err1 != nil || err2 != nil {
			t.Fatalf("rule %d: timeouts %q %q: %v %v", i, *to.Request, *to.BackendRequest, err1, err2)
		}
		if !(maxDelay < backend && backend <= request) {
			t.Errorf("rule %d: want PING__MAX_DELAY %s < backendRequest %s <= request %s", i, maxDelay, backend, request)
		}
		if backend > drain {
			t.Errorf("rule %d: backendRequest %s > pingapi HOST__SHUTDOWN_TIMEOUT %s: the gateway waits for what pingapi cuts off", i, backend, drain)
		}
	}
}

func TestRollingUpdatesKeepFullCapacity(t *testing.T) {
	objs := render(t, kindOverlay)
	for _, app := range appContainers {
		t.Run(app, func(t *testing.T) {
			d := objs.deployment(t, app)
			ru := d.Spec.Strategy.RollingUpdate
			if d.Spec.Strategy.Type != "RollingUpdate" || ru == nil {
				t.Fatalf("strategy = %+v, want RollingUpdate", d.Spec.Strategy)
			}
			if ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" {
				t.Errorf("maxUnavailable = %v, want 0", ru.MaxUnavailable)
			}
			if ru.MaxSurge == nil || ru.MaxSurge.String() != "1" {
				t.Errorf("maxSurge = %v, want 1", ru.MaxSurge)
			}
			if d.Spec.MinReadySeconds < 1 {
				t.Errorf("minReadySeconds = %d, want > 0", d.Spec.MinReadySeconds)
			}
			c := container(t, &d.Spec.Template.Spec, app)
			for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s probe = %+v, want an HTTP GET", name, p)
				}
			}
			pdb, ok := objs.pdbs[app]
			if !ok {
				t.Fatalf("no PodDisruptionBudget %s", app)
			}
			sel, err := metav1LabelSelector(pdb.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("PodDisruptionBudget %s selector %v does not select the pods (%v, %v)", app, pdb.Spec.Selector, d.Spec.Template.Labels, err)
			}
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" {
				t.Errorf("PodDisruptionBudget %s maxUnavailable = %v, want 1", app, pdb.Spec.MaxUnavailable)
			}
		})
	}
	if got := objs.deployment(t, "pingapi").Spec.Replicas; got == nil || *got != 3 {
		t.Errorf("pingapi replicas = %v, want 3", got)
	}
}

func TestPodsMeetRestrictedPodSecurity(t *testing.T) {
	objs := render(t, kindOverlay)
	ns := objs.namespaces["hostkit"]
	if ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace hostkit does not enforce the restricted Pod Security Standard")
	}
	allowedVolumes := func(v corev1.Volume) bool {
		s := v.VolumeSource
		return s.ConfigMap != nil || s.EmptyDir != nil || s.PersistentVolumeClaim != nil ||
			s.Secret != nil || s.Projected != nil || s.DownwardAPI != nil || s.CSI != nil || s.Ephemeral != nil
	}
	for id, spec := range objs.podSpecs() {
		t.Run(id, func(t *testing.T) {
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("pod securityContext.runAsNonRoot is not true")
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod seccompProfile is not RuntimeDefault")
			}
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Errorf("pod uses host namespaces")
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("automountServiceAccountToken is not false; no hostkit pod talks to the API server")
			}
			for _, v := range spec.Volumes {
				if !allowedVolumes(v) {
					t.Errorf("volume %s is of a type the restricted standard forbids", v.Name)
				}
			}
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				checkContainerSecurity(t, &c)
			}
		})
	}
	for _, app := range appContainers {
		c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
		if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("%s runAsUser is not 65532, the images' user", app)
		}
	}
}

func checkContainerSecurity(t *testing.T, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("container %s has no securityContext", c.Name)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("container %s: runAsNonRoot is not true", c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s is privileged", c.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s: capabilities = %+v, want drop [ALL] and no add", c.Name, sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container %s: seccompProfile is not RuntimeDefault", c.Name)
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			t.Errorf("container %s: hostPort %d", c.Name, p.HostPort)
		}
	}
}

func TestGoRuntimeFollowsTheResourceLimits(t *testing.T) {
	objs := render(t, kindOverlay)
	for id, spec := range objs.podSpecs() {
		for _, c := range spec.Containers {
			t.Run(id+"/"+c.Name, func(t *testing.T) {
				limits, requests := c.Resources.Limits, c.Resources.Requests
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := requests[r]; !ok {
						t.Errorf("no %s request", r)
					}
					if _, ok := limits[r]; !ok {
						t.Errorf("no %s limit", r)
					}
				}
				mem := limits[corev1.ResourceMemory]
				s, ok := envValue(&c, "GOMEMLIMIT")
				if !ok {
					t.Fatal("GOMEMLIMIT is not set")
				}
				soft, err := parseGoMemLimit(s)
				if err != nil {
					t.Fatalf("GOMEMLIMIT %q: %v", s, err)
				}
				if ratio := float64(soft) / float64(mem.Value()); ratio < 0.8 || ratio > 0.95 {
					t.Errorf("GOMEMLIMIT %s is %.0f%% of limits.memory %s, want 80-95%%", s, 100*ratio, mem.String())
				}
				if !slices.Contains(appContainers, c.Name) {
					return // GOMAXPROCS is asked of our binaries only
				}
				if ref := resourceRef(&c, "GOMAXPROCS"); ref == nil || ref.Resource != "limits.cpu" || !ref.Divisor.Equal(resource.MustParse("1")) {
					t.Errorf("GOMAXPROCS = %+v, want resourceFieldRef limits.cpu with divisor 1", ref)
				}
			})
		}
	}
}

func TestPodsSpreadOverNodes(t *testing.T) {
	objs := render(t, kindOverlay)
	for id, spec := range objs.podSpecs() {
		found := false
		for _, tsc := range spec.TopologySpreadConstraints {
			if tsc.TopologyKey != "kubernetes.io/hostname" {
				continue
			}
			found = true
			sel, err := metav1LabelSelector(tsc.LabelSelector)
			pod := podLabels(objs, id)
			if err != nil || !sel.Matches(labels.Set(pod)) {
				t.Errorf("%s: spread selector %v does not select its own pods %v", id, tsc.LabelSelector, pod)
			}
			if tsc.MaxSkew != 1 {
				t.Errorf("%s: maxSkew = %d, want 1", id, tsc.MaxSkew)
			}
		}
		if !found {
			t.Errorf("%s: no topologySpreadConstraint on kubernetes.io/hostname", id)
		}
	}
}

func TestServicesAndIngressReachTheContainers(t *testing.T) {
	objs := render(t, kindOverlay)
	tests := []struct {
		service, workload, container string
		port                         int32
		portName                     string
		containerPort                int32
	}{
		{"pingapi", "Deployment/pingapi", "pingapi", 80, "http", 8080},
		{"worker-metrics", "Deployment/worker", "worker", 8090, "http-metrics", 8090},
		{"nats", "StatefulSet/nats", "nats", 4222, "client", 4222},
		{"nats-headless", "StatefulSet/nats", "nats", 6222, "cluster", 6222},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			svc, ok := objs.services[tt.service]
			if !ok {
				t.Fatalf("no Service %s", tt.service)
			}
			pod := podLabels(objs, tt.workload)
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod)) {
				t.Errorf("selector %v does not select %s pods %v", svc.Spec.Selector, tt.workload, pod)
			}
			var sp *corev1.ServicePort
			for i := range svc.Spec.Ports {
				if svc.Spec.Ports[i].Port == tt.port {
					sp = &svc.Spec.Ports[i]
				}
			}
			if sp == nil {
				t.Fatalf("no port %d in %+v", tt.port, svc.Spec.Ports)
			}
			if sp.Name != tt.portName {
				t.Errorf("port %d is named %q, want %q", tt.port, sp.Name, tt.portName)
			}
			c := container(t, objs.podSpecs()[tt.workload], tt.container)
			if got := containerPort(t, c, sp.TargetPort.String()); got != tt.containerPort {
				t.Errorf("port %d targets container port %d, want %d", tt.port, got, tt.containerPort)
			}
		})
	}
	headless := objs.services["nats-headless"]
	if headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("nats-headless: clusterIP %q publishNotReadyAddresses %v, want None and true (peers must find each other before they are ready)",
			headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}

	route, ok := objs.httpRoutes["pingapi"]
	if !ok {
		t.Fatal("no HTTPRoute pingapi")
	}
	gw, ok := objs.gateways["hostkit"]
	if !ok {
		t.Fatal("no Gateway hostkit")
	}
	if len(route.Spec.ParentRefs) != 1 || string(route.Spec.ParentRefs[0].Name) != gw.Name ||
		route.Spec.ParentRefs[0].SectionName == nil || string(*route.Spec.ParentRefs[0].SectionName) != string(gw.Spec.Listeners[0].Name) {
		t.Errorf("HTTPRoute parentRefs = %+v, want the Gateway %s listener %s", route.Spec.ParentRefs, gw.Name, gw.Spec.Listeners[0].Name)
	}
	if l := gw.Spec.Listeners; len(l) != 1 || l[0].Protocol != gatewayv1.HTTPProtocolType || l[0].Port != 80 {
		t.Errorf("Gateway listeners = %+v, want one HTTP listener on 80", l)
	}
	if len(route.Spec.Rules) != 1 || len(route.Spec.Rules[0].Matches) != 1 || len(route.Spec.Rules[0].BackendRefs) != 1 {
		t.Fatalf("HTTPRoute rules = %+v, want one rule with one match and one backend", route.Spec.Rules)
	}
	m := route.Spec.Rules[0].Matches[0]
	if m.Path == nil || m.Path.Type == nil || *m.Path.Type != gatewayv1.PathMatchPathPrefix || m.Path.Value == nil || *m.Path.Value != "/pingpong" {
		t.Errorf("HTTPRoute match = %+v, want PathPrefix /pingpong", m.Path)
	}
	b := route.Spec.Rules[0].BackendRefs[0]
	svc := objs.services[string(b.Name)]
	if b.Kind != nil && *b.Kind != "Service" || svc == nil || b.Port == nil ||
		!slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == int32(*b.Port) && p.Name == "http" }) {
		t.Errorf("HTTPRoute backend = %s port %v, want Service pingapi's http port", b.Name, b.Port)
	}
}

func TestAppsReachNATSThroughTheClientService(t *testing.T) {
	objs, _ := deployed(t)
	nats := objs.statefulSets["nats"]
	// nats://USER:$(NATS_PASSWORD)@SERVICE:PORT: the kubelet expands the
	// password from the variable before it, which comes from the Secret.
	for _, app := range appContainers {
		c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
		u, ok := natsURLOf(t, app, c)
		if !ok {
			continue
		}
		if u.passwordVar != "NATS_PASSWORD" {
			t.Errorf("%s NATS__URL takes its password from $(%s), want $(NATS_PASSWORD)", app, u.passwordVar)
			continue
		}
		if u.user != app {
			t.Errorf("%s connects as NATS user %q, want its own user %q", app, u.user, app)
		}
		svc, ok := objs.services[u.service]
		if !ok {
			t.Errorf("%s NATS__URL names Service %q, which does not exist", app, u.service)
			continue
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == u.port }) {
			t.Errorf("%s NATS__URL port %s is not a port of Service %s", app, u.port, u.service)
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NATS_PASSWORD" })
		j := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NATS__URL" })
		if i < 0 || i > j {
			t.Errorf("%s: NATS_PASSWORD must be set before NATS__URL, which expands it", app)
			continue
		}
		checkSecretRef(t, objs, app, c.Env[i], app+"-password")
	}
	worker := container(t, &objs.deployment(t, "worker").Spec.Template.Spec, "worker")
	if got, _ := envValue(worker, "NATS__REPLICAS"); got != fmt.Sprint(*nats.Spec.Replicas) {
		t.Errorf("worker NATS__REPLICAS = %q, want the NATS cluster size %d", got, *nats.Spec.Replicas)
	}
	if ref := fieldRef(worker, "CHANGEFEED__INSTANCE"); ref != "metadata.name" {
		t.Errorf("worker CHANGEFEED__INSTANCE comes from %q, want the pod name (metadata.name)", ref)
	}
}

// checkSecretRef fails unless e comes from key of a Secret the overlay
// defines and that key exists in it.
func checkSecretRef(t *testing.T, objs *objects, who string, e corev1.EnvVar, key string) {
	t.Helper()
	ref := (*corev1.SecretKeySelector)(nil)
	if e.ValueFrom != nil {
		ref = e.ValueFrom.SecretKeyRef
	}
	if ref == nil || ref.Key != key {
		t.Errorf("%s env %s = %+v, want secretKeyRef key %s", who, e.Name, e.ValueFrom, key)
		return
	}
	sec, ok := objs.secrets[ref.Name]
	if !ok {
		t.Errorf("%s env %s names Secret %s, which the overlay does not create (has %v)", who, e.Name, ref.Name, slices.Sorted(maps.Keys(objs.secrets)))
		return
	}
	if _, ok := sec.Data[key]; !ok {
		t.Errorf("%s env %s: Secret %s has no key %s", who, e.Name, ref.Name, key)
	}
}

// durationEnv parses the literal Go duration in env var name of c.
func durationEnv(tb testing.TB, c *corev1.Container, name string) time.Duration {
	tb.Helper()
	s, ok := envValue(c, name)
	if !ok {
		tb.Fatalf("container %s does not set %s", c.Name, name)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		tb.Fatalf("container %s %s = %q: %v", c.Name, name, s, err)
	}
	return d
}

func resourceRef(c *corev1.Container, name string) *corev1.ResourceFieldSelector {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			return e.ValueFrom.ResourceFieldRef
		}
	}
	return nil
}

func fieldRef(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

func podLabels(objs *objects, workload string) map[string]string {
	kind, name, _ := strings.Cut(workload, "/")
	if kind == "Deployment" {
		return objs.deployments[name].Spec.Template.Labels
	}
	return objs.statefulSets[name].Spec.Template.Labels
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a number of bytes
// with an optional B, KiB, MiB, GiB or TiB suffix (a plain number is bytes).
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	scale := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, scale = n, u.scale
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive number of bytes with an optional B/KiB/MiB/GiB/TiB suffix")
	}
	return n * scale, nil
}
