package deploy_test

import (
	"regexp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// contourClass is the ingress class Contour serves and the Ingress names.
const contourClass = "contour"

func TestKindClusterHasIngressNodeAndThreeWorkers(t *testing.T) {
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/kind/cluster.yaml"), &cfg); err != nil {
		t.Fatalf("deploy/kind/cluster.yaml is not a kind v1alpha4 Cluster: %v", err)
	}
	if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
		t.Errorf("kind/apiVersion = %s %s, want Cluster kind.x-k8s.io/v1alpha4", cfg.Kind, cfg.APIVersion)
	}
	var planes, workers []v1alpha4.Node
	for _, n := range cfg.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			planes = append(planes, n)
		case v1alpha4.WorkerRole:
			workers = append(workers, n)
		default:
			t.Errorf("node role %q", n.Role)
		}
	}
	if len(planes) != 1 || len(workers) != 3 {
		t.Fatalf("%d control-plane and %d worker nodes, want 1 and 3", len(planes), len(workers))
	}

	// Every node runs the node image of the kind release in go.mod, pinned
	// by digest. A kind upgrade must come with its own node image.
	pinned := regexp.MustCompile(`^kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$`)
	for i, n := range cfg.Nodes {
		if !pinned.MatchString(n.Image) {
			t.Errorf("node %d image %q is not pinned by version and sha256 digest", i, n.Image)
		}
		if n.Image != defaults.Image {
			t.Errorf("node %d image %q, want %q, the node image of the kind version in go.mod", i, n.Image, defaults.Image)
		}
	}

	cp := planes[0]
	if !nodeLabelPatch(t, cp.KubeadmConfigPatches, "ingress-ready=true") {
		t.Errorf("control-plane kubeadmConfigPatches %q do not add the node label ingress-ready=true", cp.KubeadmConfigPatches)
	}
	want := map[int32]int32{80: 8081, 443: 8443}
	got := map[int32]int32{}
	for _, m := range cp.ExtraPortMappings {
		if m.Protocol != "" && m.Protocol != v1alpha4.PortMappingProtocolTCP {
			t.Errorf("port mapping %d uses %s, want TCP", m.ContainerPort, m.Protocol)
		}
		got[m.ContainerPort] = m.HostPort
	}
	if len(got) != len(want) || got[80] != want[80] || got[443] != want[443] {
		t.Errorf("control-plane extraPortMappings container->host = %v, want %v", got, want)
	}
	for i, w := range workers {
		if len(w.ExtraPortMappings) > 0 {
			t.Errorf("worker %d maps host ports; only the ingress node should", i)
		}
	}
}

// nodeLabelPatch reports whether one of the kubeadm patches sets label in
// the InitConfiguration's kubelet node-labels, the form kind's ingress guide
// uses (kind v0.33 merges it into kubeadm v1beta4's argument list).
func nodeLabelPatch(t *testing.T, patches []string, label string) bool {
	t.Helper()
	for _, p := range patches {
		var patch struct {
			Kind             string `json:"kind"`
			NodeRegistration struct {
				KubeletExtraArgs map[string]string `json:"kubeletExtraArgs"`
			} `json:"nodeRegistration"`
		}
		if err := yaml.UnmarshalStrict([]byte(p), &patch); err != nil {
			t.Errorf("kubeadm patch %q: %v", p, err)
			continue
		}
		if patch.Kind == "InitConfiguration" && patch.NodeRegistration.KubeletExtraArgs["node-labels"] == label {
			return true
		}
	}
	return false
}

func TestContourEnvoyRunsOnTheIngressNode(t *testing.T) {
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/kind/contour-envoy.patch.yaml"), &ds); err != nil {
		t.Fatalf("contour-envoy.patch.yaml is not a DaemonSet patch: %v", err)
	}
	spec := ds.Spec.Template.Spec
	if spec.NodeSelector["ingress-ready"] != "true" || len(spec.NodeSelector) != 1 {
		t.Errorf("nodeSelector = %v, want only ingress-ready=true", spec.NodeSelector)
	}
	tolerated := false
	for _, tol := range spec.Tolerations {
		if tol.Key == "node-role.kubernetes.io/control-plane" && tol.Effect == "NoSchedule" &&
			(tol.Operator == "Exists" || tol.Operator == "Equal") {
			tolerated = true
		}
	}
	if !tolerated {
		t.Errorf("tolerations = %+v, want one for the control-plane NoSchedule taint", spec.Tolerations)
	}
}

func TestIngressClassIsContours(t *testing.T) {
	var ic networkingv1.IngressClass
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/kind/ingressclass.yaml"), &ic); err != nil {
		t.Fatalf("ingressclass.yaml: %v", err)
	}
	if ic.APIVersion != "networking.k8s.io/v1" || ic.Kind != "IngressClass" {
		t.Errorf("apiVersion/kind = %s %s", ic.APIVersion, ic.Kind)
	}
	if ic.Name != contourClass || ic.Spec.Controller != "projectcontour.io/ingress-controller" {
		t.Errorf("IngressClass %q controller %q, want %q for Contour", ic.Name, ic.Spec.Controller, contourClass)
	}
}
