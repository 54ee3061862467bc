package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kindOverlay is the overlay `make deploy` applies (with image tags and the
// NATS credentials on top: see deployed).
const kindOverlay = "deploy/manifests/overlays/kind"

// deployedDir is where deployed renders the overlay `make deploy` applies,
// once per test run.
var deployedDir = struct {
	sync.Mutex
	dir string
}{}

// deployed renders what `make deploy` applies: deploy/render-overlay.sh's
// generated overlay (tag "test", generated NATS credentials) on top of the
// kind overlay. It returns the objects and the overlay's directory.
func deployed(tb testing.TB) (*objects, string) {
	tb.Helper()
	deployedDir.Lock()
	defer deployedDir.Unlock()
	if deployedDir.dir == "" {
		dir := filepath.Join(binDir, "deployed")
		// Tagged like make deploy tags them: every service under cmd/.
		args := []string{filepath.Join(root, "deploy/render-overlay.sh"), dir, "test"}
		for _, app := range services(tb) {
			args = append(args, "hostkit/"+app)
		}
		cmd := exec.Command("bash", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("render-overlay.sh: %v\n%s", err, out)
		}
		deployedDir.dir = dir
	}
	return render(tb, deployedDir.dir), deployedDir.dir
}

// natsAuthEnv reads the generated credentials file of a deployed overlay.
func natsAuthEnv(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "nats-auth.env"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range splitLines(string(data)) {
		if k, v, ok := cutEq(line); ok {
			out[k] = v
		}
	}
	return out
}

// objects is a rendered overlay decoded into the Kubernetes API types,
// keyed by name.
type objects struct {
	namespaces   map[string]*corev1.Namespace
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	pdbs         map[string]*policyv1.PodDisruptionBudget
	ingresses    map[string]*networkingv1.Ingress
	secrets      map[string]*corev1.Secret
	netpols      map[string]*networkingv1.NetworkPolicy
	gateways     map[string]*gatewayv1.Gateway
	httpRoutes   map[string]*gatewayv1.HTTPRoute
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	scaledObjs   map[string]*kedav1alpha1.ScaledObject
	// namespaceOf is each namespaced object's namespace, by "Kind/name".
	namespaceOf map[string]string
}

// render builds the kustomization in dir (an absolute path or one relative to
// the repository root) as `kubectl apply -k` would, and decodes every object
// strictly. A kind the test does not know fails the test, so nothing in the
// overlay escapes type checking.
func render(tb testing.TB, dir string) *objects {
	tb.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		tb.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs := &objects{
		namespaces:   map[string]*corev1.Namespace{},
		deployments:  map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		services:     map[string]*corev1.Service{},
		configMaps:   map[string]*corev1.ConfigMap{},
		pdbs:         map[string]*policyv1.PodDisruptionBudget{},
		ingresses:    map[string]*networkingv1.Ingress{},
		namespaceOf:  map[string]string{},
	}
	objs.init()
	for _, res := range resMap.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			tb.Fatalf("%s: %v", res.CurId(), err)
		}
		id := res.GetKind() + "/" + res.GetName()
		if err := objs.add(res.GetApiVersion(), res.GetKind(), res.GetName(), data); err != nil {
			tb.Fatalf("%s: %v\n%s", id, err, data)
		}
		if res.GetKind() != "Namespace" {
			objs.namespaceOf[id] = res.GetNamespace()
		}
	}
	return objs
}

// init makes the maps add fills that render's literal leaves nil.
func (o *objects) init() {
	o.secrets = map[string]*corev1.Secret{}
	o.netpols = map[string]*networkingv1.NetworkPolicy{}
	o.gateways = map[string]*gatewayv1.Gateway{}
	o.httpRoutes = map[string]*gatewayv1.HTTPRoute{}
	o.hpas = map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	o.scaledObjs = map[string]*kedav1alpha1.ScaledObject{}
}

// add decodes one object into its API type, rejecting unknown fields and
// an unexpected apiVersion.
func (o *objects) add(apiVersion, kind, name string, data []byte) error {
	type target struct {
		apiVersion string
		decode     func() error
	}
	strict := func(into any, store func()) func() error {
		return func() error {
			if err := yaml.UnmarshalStrict(data, into); err != nil {
				return err
			}
			store()
			return nil
		}
	}
	var ns corev1.Namespace
	var dep appsv1.Deployment
	var sts appsv1.StatefulSet
	var svc corev1.Service
	var cm corev1.ConfigMap
	var pdb policyv1.PodDisruptionBudget
	var ing networkingv1.Ingress
	var sec corev1.Secret
	var np networkingv1.NetworkPolicy
	var gw gatewayv1.Gateway
	var route gatewayv1.HTTPRoute
	var hpa autoscalingv2.HorizontalPodAutoscaler
	var so kedav1alpha1.ScaledObject
	targets := map[string]target{
		"Namespace":               {"v1", strict(&ns, func() { o.namespaces[name] = &ns })},
		"Deployment":              {"apps/v1", strict(&dep, func() { o.deployments[name] = &dep })},
		"StatefulSet":             {"apps/v1", strict(&sts, func() { o.statefulSets[name] = &sts })},
		"Service":                 {"v1", strict(&svc, func() { o.services[name] = &svc })},
		"ConfigMap":               {"v1", strict(&cm, func() { o.configMaps[name] = &cm })},
		"PodDisruptionBudget":     {"policy/v1", strict(&pdb, func() { o.pdbs[name] = &pdb })},
		"Ingress":                 {"networking.k8s.io/v1", strict(&ing, func() { o.ingresses[name] = &ing })},
		"Secret":                  {"v1", strict(&sec, func() { o.secrets[name] = &sec })},
		"NetworkPolicy":           {"networking.k8s.io/v1", strict(&np, func() { o.netpols[name] = &np })},
		"Gateway":                 {"gateway.networking.k8s.io/v1", strict(&gw, func() { o.gateways[name] = &gw })},
		"HTTPRoute":               {"gateway.networking.k8s.io/v1", strict(&route, func() { o.httpRoutes[name] = &route })},
		"HorizontalPodAutoscaler": {"autoscaling/v2", strict(&hpa, func() { o.hpas[name] = &hpa })},
		"ScaledObject":            {"keda.sh/v1alpha1", strict(&so, func() { o.scaledObjs[name] = &so })},
	}
	t, ok := targets[kind]
	if !ok {
		return fmt.Errorf("kind %s is not checked by this test: add it to objects", kind)
	}
	if apiVersion != t.apiVersion {
		return fmt.Errorf("apiVersion %s, want %s", apiVersion, t.apiVersion)
	}
	return t.decode()
}

// podSpecs returns the pod templates of every workload, by workload name.
func (o *objects) podSpecs() map[string]*corev1.PodSpec {
	out := map[string]*corev1.PodSpec{}
	for name, d := range o.deployments {
		out["Deployment/"+name] = &d.Spec.Template.Spec
	}
	for name, s := range o.statefulSets {
		out["StatefulSet/"+name] = &s.Spec.Template.Spec
	}
	return out
}

// deployment returns the named Deployment or fails.
func (o *objects) deployment(tb testing.TB, name string) *appsv1.Deployment {
	tb.Helper()
	d, ok := o.deployments[name]
	if !ok {
		tb.Fatalf("no Deployment %q in the overlay", name)
	}
	return d
}

// container returns the workload's container named like the workload.
func container(tb testing.TB, spec *corev1.PodSpec, name string) *corev1.Container {
	tb.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	tb.Fatalf("no container %q", name)
	return nil
}

// envValue returns the literal value of env var name in c, and whether it
// is set at all.
func envValue(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// containerPort resolves a probe or Service port (number or name) in c.
func containerPort(tb testing.TB, c *corev1.Container, port string) int32 {
	tb.Helper()
	for _, p := range c.Ports {
		if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	tb.Fatalf("container %s has no port %q", c.Name, port)
	return 0
}

// metav1LabelSelector turns a workload's selector into one that matches labels.
var metav1LabelSelector = metav1.LabelSelectorAsSelector

// mountPath returns where c mounts the volume named volume.
func mountPath(tb testing.TB, c *corev1.Container, volume string) string {
	tb.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	tb.Fatalf("container %s does not mount volume %q", c.Name, volume)
	return ""
}

// splitLines splits s into its non-empty lines.
func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// cutEq splits KEY=VALUE.
func cutEq(line string) (string, string, bool) { return strings.Cut(line, "=") }
