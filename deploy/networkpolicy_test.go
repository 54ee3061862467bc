package deploy_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// analyzer finds a NetworkPolicy or manifest analyzer installed with `go
// install` (.ci/run does): on PATH or in GOPATH/bin. Without it the test is
// skipped, or fails when CI is set.
func analyzer(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("runs %s", name)
	}
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		path := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (.ci/run installs it with go install)", name)
	}
	t.Skipf("%s is not installed; see .ci/run", name)
	return ""
}

// renderedYAML writes the kustomization in dir, rendered, to a file of one
// YAML document per object, and returns the file's path.
func renderedYAML(t *testing.T, dir string, keep func(kind string) bool) string {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, res := range resMap.Resources() {
		if !keep(res.GetKind()) {
			continue
		}
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(y))
	}
	path := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// peer is a traffic endpoint as cyclonus's matcher takes it: a pod (labels
// and namespace) or an IP outside the cluster.
type peer struct {
	Internal *internalPeer `json:",omitempty"`
	IP       string        `json:",omitempty"`
}

type internalPeer struct {
	PodLabels       map[string]string
	NamespaceLabels map[string]string
	Namespace       string
}

type traffic struct {
	Source, Destination peer
	ResolvedPort        int
	ResolvedPortName    string
	Protocol            string
}

// The NetworkPolicies allow exactly the flows hostkit needs, as computed
// by cyclonus (the NetworkPolicy engine that became sigs.k8s.io/network-
// policy-api's policy-assistant, which the Go module proxy does not serve):
// each flow below is put to it with the rendered policies, and its verdict,
// ingress and egress together, must be the one written here. The NATS
// clients' flows are derived from the rendered Deployments that set
// NATS__URL, and the scraper's from the workloads whose pods carry the
// metrics label, so a service added to the tree is held to them too.
func TestNetworkPoliciesAllowExactlyTheIntendedFlows(t *testing.T) {
	cyclonus := analyzer(t, "cyclonus")
	objs, dir := deployed(t)
	// cyclonus reads one policy per file.
	policies := t.TempDir()
	for i, doc := range yamlDocs(t, readFileAbs(t, renderedYAML(t, dir, func(kind string) bool { return kind == "NetworkPolicy" }))) {
		if err := os.WriteFile(filepath.Join(policies, fmt.Sprintf("%02d.yaml", i)), doc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := os.ReadDir(policies); len(files) != len(objs.netpols) || len(files) == 0 {
		t.Fatalf("wrote %d policy files for %d NetworkPolicies", len(files), len(objs.netpols))
	}

	nsLabels := func(ns string) map[string]string {
		out := map[string]string{"kubernetes.io/metadata.name": ns}
		if ns == "hostkit" {
			for k, v := range objs.namespaces["hostkit"].Labels {
				out[k] = v
			}
		}
		return out
	}
	pod := func(ns string, labels map[string]string) peer {
		return peer{Internal: &internalPeer{PodLabels: labels, NamespaceLabels: nsLabels(ns), Namespace: ns}}
	}
	ours := func(workload string) peer { return pod("hostkit", podLabels(objs, workload)) }
	envoy := func(gateway string) peer {
		return pod("envoy-gateway-system", map[string]string{
			"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
			"app.kubernetes.io/managed-by":                   "envoy-gateway",
			"gateway.envoyproxy.io/owning-gateway-name":      gateway,
			"gateway.envoyproxy.io/owning-gateway-namespace": "hostkit",
		})
	}
	var (
		pingapi     = ours("Deployment/pingapi")
		worker      = ours("Deployment/worker")
		nats        = ours("StatefulSet/nats")
		gateway     = envoy("hostkit")
		otherGW     = envoy("other")
		prometheus  = pod(scraperNamespace, scraperLabels)
		notScraper  = pod(scraperNamespace, map[string]string{"app.kubernetes.io/name": "grafana"})
		strangerIn  = pod("hostkit", map[string]string{"run": "debug"})
		strangerOut = pod("default", map[string]string{"run": "debug"})
		kubeDNS     = pod("kube-system", map[string]string{"k8s-app": "kube-dns"})
		internet    = peer{IP: "203.0.113.10"} // TEST-NET-3: analysed, never contacted
	)
	// Ports as the pods name them, so named-port rules are resolved too.
	port := func(workload, name string) (int, string) {
		c := container(t, objs.podSpecs()[workload], strings.Split(workload, "/")[1])
		return int(containerPort(t, c, name)), name
	}
	type flow struct {
		what     string
		from, to peer
		port     int
		portName string
		proto    string
		allowed  bool
	}
	tcp := func(what string, from, to peer, workload, portName string, allowed bool) flow {
		p, n := port(workload, portName)
		return flow{what, from, to, p, n, "TCP", allowed}
	}
	flows := []flow{
		tcp("gateway -> pingapi http", gateway, pingapi, "Deployment/pingapi", "http", true),
		tcp("nats -> nats route", nats, nats, "StatefulSet/nats", "cluster", true),
		{"nats -> DNS", nats, kubeDNS, 53, "dns", "UDP", true},

		tcp("pod in another namespace -> pingapi", strangerOut, pingapi, "Deployment/pingapi", "http", false),
		tcp("other pod in hostkit -> pingapi", strangerIn, pingapi, "Deployment/pingapi", "http", false),
		tcp("another Gateway's Envoy -> pingapi", otherGW, pingapi, "Deployment/pingapi", "http", false),
		tcp("gateway -> worker", gateway, worker, "Deployment/worker", "http", false),
		tcp("gateway -> nats client", gateway, nats, "StatefulSet/nats", "client", false),
		tcp("other pod in hostkit -> nats client", strangerIn, nats, "StatefulSet/nats", "client", false),
		tcp("pod in another namespace -> nats client", strangerOut, nats, "StatefulSet/nats", "client", false),
		tcp("other pod in hostkit -> nats route", strangerIn, nats, "StatefulSet/nats", "cluster", false),
		tcp("scraper -> nats client", prometheus, nats, "StatefulSet/nats", "client", false),
		{"nats -> internet", nats, internet, 443, "", "TCP", false},
	}
	// Every NATS client, the template's and any a team adds (a Deployment
	// copied by docs/extending.md), reaches NATS's client port and DNS, and
	// nothing else: not the route port, not another service, not the
	// internet. NATS reaches no service.
	clients := natsClients(objs)
	if !slices.Contains(clients, "pingapi") || !slices.Contains(clients, "worker") {
		t.Fatalf("NATS clients (Deployments with NATS__URL) = %v, want pingapi and worker among them", clients)
	}
	for _, name := range clients {
		from := ours("Deployment/" + name)
		flows = append(flows,
			tcp(name+" -> nats client", from, nats, "StatefulSet/nats", "client", true),
			flow{name + " -> DNS", from, kubeDNS, 53, "dns", "UDP", true},
			tcp(name+" -> nats route (join the cluster)", from, nats, "StatefulSet/nats", "cluster", false),
			flow{name + " -> internet", from, internet, 443, "", "TCP", false},
		)
		for _, other := range slices.Sorted(maps.Keys(objs.deployments)) {
			if other != name {
				flows = append(flows, tcp(name+" -> "+other, from, ours("Deployment/"+other), "Deployment/"+other, "http", false))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(objs.deployments)) {
		flows = append(flows, tcp("nats -> "+name, nats, ours("Deployment/"+name), "Deployment/"+name, "http", false))
	}
	// The scraper, and only it, reads the metrics ports of every pod with
	// the metrics label: the template's and any a team adds.
	targets := scraped(objs)
	for _, id := range []string{"Deployment/pingapi", "Deployment/worker", "StatefulSet/nats"} {
		if !slices.Contains(targets, id) {
			t.Fatalf("workloads with the label %s: %q = %v, want %s among them", metricsLabel, metricsLabelValue, targets, id)
		}
	}
	servers := metricsServers(objs)
	for _, id := range targets {
		for _, p := range servers[id] {
			flows = append(flows,
				tcp("scraper -> "+id+" "+p.Name, prometheus, ours(id), id, p.Name, true),
				tcp("other pod in "+scraperNamespace+" -> "+id+" "+p.Name, notScraper, ours(id), id, p.Name, false),
			)
		}
	}
	// By the label alone, not by name: a new service's pods carrying it are
	// scraped before any policy hears of them.
	added := pod("hostkit", map[string]string{"app.kubernetes.io/name": "added-by-a-team", metricsLabel: metricsLabelValue})
	flows = append(flows, flow{"scraper -> a new service with the label", prometheus, added, 8091, "http", "TCP", true})
	var query []traffic
	for _, f := range flows {
		query = append(query, traffic{f.from, f.to, f.port, f.portName, f.proto})
	}
	data, err := json.Marshal(query)
	if err != nil {
		t.Fatal(err)
	}
	queryPath := filepath.Join(t.TempDir(), "traffic.json")
	if err := os.WriteFile(queryPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cyclonus, "analyze", "--mode", "query-traffic",
		"--policy-path", policies, "--traffic-path", queryPath).CombinedOutput()
	if err != nil {
		t.Fatalf("cyclonus: %v\n%s", err, out)
	}
	verdicts := regexp.MustCompile(`(?i)is allowed\?\s*\|\s*(true|false)`).FindAllStringSubmatch(string(out), -1)
	if len(verdicts) != len(flows) {
		t.Fatalf("cyclonus gave %d verdicts for %d flows:\n%s", len(verdicts), len(flows), out)
	}
	for i, f := range flows {
		if got := strings.EqualFold(verdicts[i][1], "true"); got != f.allowed {
			t.Errorf("%s (%s %d): allowed = %v, want %v", f.what, f.proto, f.port, got, f.allowed)
		}
	}
}

// kube-score reports no NetworkPolicy finding: every pod is selected by an
// ingress and an egress policy, and every policy selects a pod.
func TestKubeScoreFindsNoNetworkPolicyGap(t *testing.T) {
	kubeScore := analyzer(t, "kube-score")
	_, dir := deployed(t)
	rendered := renderedYAML(t, dir, func(string) bool { return true })
	out, err := exec.Command(kubeScore, "score", "--output-format", "json", rendered).Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("kube-score: %v", err)
	}
	var report []struct {
		ObjectName string `json:"object_name"`
		TypeMeta   struct {
			Kind string `json:"kind"`
		} `json:"type_meta"`
		Checks []struct {
			Check struct {
				ID string `json:"id"`
			} `json:"check"`
			Grade    int  `json:"grade"`
			Skipped  bool `json:"skipped"`
			Comments []struct {
				Summary string `json:"summary"`
			} `json:"comments"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("kube-score output: %v\n%s", err, out)
	}
	seen := 0
	for _, obj := range report {
		for _, c := range obj.Checks {
			if !strings.Contains(c.Check.ID, "networkpolic") {
				continue
			}
			seen++
			if !c.Skipped && c.Grade < 10 {
				t.Errorf("kube-score %s %s: %s (grade %d) %+v", obj.TypeMeta.Kind, obj.ObjectName, c.Check.ID, c.Grade, c.Comments)
			}
		}
	}
	if seen == 0 {
		t.Fatalf("kube-score ran no NetworkPolicy check:\n%s", out)
	}
}

// readFileAbs reads a file by absolute path.
func readFileAbs(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
