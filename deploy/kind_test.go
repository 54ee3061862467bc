package deploy_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// kindCluster decodes deploy/kind/cluster.yaml strictly into kind's types.
func kindCluster(t *testing.T) v1alpha4.Cluster {
	t.Helper()
	var cfg v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/kind/cluster.yaml"), &cfg); err != nil {
		t.Fatalf("deploy/kind/cluster.yaml is not a kind v1alpha4 Cluster: %v", err)
	}
	return cfg
}

func TestKindClusterHasGatewayPortAndThreeWorkers(t *testing.T) {
	cfg := kindCluster(t)
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
	// The one host port is the gateway's NodePort, published where the
	// Makefile's INGRESS_URL (rollout-check) expects it.
	nodePort := envoyNodePort(t)
	hostPort := makeVar(t, "INGRESS_URL")
	m := planes[0].ExtraPortMappings
	if len(m) != 1 || m[0].ContainerPort != nodePort || "http://localhost:"+strconv.Itoa(int(m[0].HostPort)) != hostPort ||
		(m[0].Protocol != "" && m[0].Protocol != v1alpha4.PortMappingProtocolTCP) {
		t.Errorf("control-plane extraPortMappings = %+v, want TCP %d (the Envoy NodePort) -> the port of INGRESS_URL %s", m, nodePort, hostPort)
	}
	for i, w := range workers {
		if len(w.ExtraPortMappings) > 0 {
			t.Errorf("worker %d maps host ports; only the control-plane should", i)
		}
	}
}

// kindInfra decodes deploy/kind/envoy-gateway.yaml strictly: the
// GatewayClass into the Gateway API types, the EnvoyProxy into Envoy
// Gateway's own (the module version the Makefile installs).
func kindInfra(t *testing.T) (*gatewayv1.GatewayClass, *egv1a1.EnvoyProxy) {
	t.Helper()
	var class *gatewayv1.GatewayClass
	var proxy *egv1a1.EnvoyProxy
	for _, doc := range yamlDocs(t, readFile(t, "deploy/kind/envoy-gateway.yaml")) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.APIVersion + " " + meta.Kind {
		case "gateway.networking.k8s.io/v1 GatewayClass":
			class = &gatewayv1.GatewayClass{}
			if err := yaml.UnmarshalStrict(doc, class); err != nil {
				t.Fatalf("GatewayClass: %v", err)
			}
		case "gateway.envoyproxy.io/v1alpha1 EnvoyProxy":
			proxy = &egv1a1.EnvoyProxy{}
			if err := yaml.UnmarshalStrict(doc, proxy); err != nil {
				t.Fatalf("EnvoyProxy: %v", err)
			}
		default:
			t.Fatalf("unexpected object %s %s in envoy-gateway.yaml", meta.APIVersion, meta.Kind)
		}
	}
	if class == nil || proxy == nil {
		t.Fatal("envoy-gateway.yaml must hold a GatewayClass and an EnvoyProxy")
	}
	return class, proxy
}

// envoyNodePort is the NodePort the EnvoyProxy patch gives the Gateway's
// port-80 listener.
func envoyNodePort(t *testing.T) int32 {
	t.Helper()
	_, proxy := kindInfra(t)
	k := proxy.Spec.Provider.Kubernetes
	if k == nil || k.EnvoyService == nil || k.EnvoyService.Patch == nil {
		t.Fatal("EnvoyProxy has no envoyService patch")
	}
	var svc corev1.Service
	if err := json.Unmarshal(k.EnvoyService.Patch.Value.Raw, &svc); err != nil {
		t.Fatalf("envoyService patch is not a Service: %v", err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == 80 && p.NodePort != 0 {
			return p.NodePort
		}
	}
	t.Fatalf("envoyService patch ports %+v set no nodePort for port 80", svc.Spec.Ports)
	return 0
}

func TestGatewayClassIsEnvoyGatewaysOnANodePort(t *testing.T) {
	class, proxy := kindInfra(t)
	objs := render(t, kindOverlay)
	gw := objs.gateways["hostkit"]
	if gw == nil || string(gw.Spec.GatewayClassName) != class.Name {
		t.Fatalf("Gateway hostkit class = %v, want %s (deploy/kind/envoy-gateway.yaml)", gw, class.Name)
	}
	if class.Spec.ControllerName != "gateway.envoyproxy.io/gatewayclass-controller" {
		t.Errorf("controllerName = %s, want Envoy Gateway's", class.Spec.ControllerName)
	}
	ref := class.Spec.ParametersRef
	if ref == nil || ref.Kind != "EnvoyProxy" || ref.Name != proxy.Name || ref.Namespace == nil || string(*ref.Namespace) != proxy.Namespace {
		t.Errorf("parametersRef = %+v, want the EnvoyProxy %s/%s", ref, proxy.Namespace, proxy.Name)
	}
	svc := proxy.Spec.Provider.Kubernetes.EnvoyService
	if svc.Type == nil || *svc.Type != egv1a1.ServiceTypeNodePort {
		t.Errorf("envoyService type = %v, want NodePort (kind has no load balancer)", svc.Type)
	}
	// Cluster: the NodePort answers on the control-plane node, where the
	// host port is mapped, though no Envoy pod runs there.
	if svc.ExternalTrafficPolicy == nil || *svc.ExternalTrafficPolicy != egv1a1.ServiceExternalTrafficPolicyCluster {
		t.Errorf("externalTrafficPolicy = %v, want Cluster", svc.ExternalTrafficPolicy)
	}
	// The NetworkPolicy admits the Envoy pods of this Gateway in Envoy
	// Gateway's namespace: the EnvoyProxy lives there too.
	if proxy.Namespace != "envoy-gateway-system" {
		t.Errorf("EnvoyProxy namespace %s, want envoy-gateway-system", proxy.Namespace)
	}
}

// yamlDocs splits a multi-document YAML file.
func yamlDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
