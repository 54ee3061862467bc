package deploy_test

import (
	"maps"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The pod label that lets the metrics scraper in (the NetworkPolicy
// metrics-from-scraper selects it), and the scraper as the policies name
// it: Prometheus pods in the namespace monitoring.
const (
	metricsLabel, metricsLabelValue = "metrics", "true"
	scraperNamespace                = "monitoring"
)

var scraperLabels = map[string]string{"app.kubernetes.io/name": "prometheus"}

// metricsPortNames are the container ports a scraper reads: every hostkit
// binary serves /metrics on its HTTP port (internal/web's router, which
// serves the probes there too; TestProbePathsAnswerOnTheRealBinaries and the
// guide's test GET it), and NATS its monitoring endpoint, which an exporter
// such as prometheus-nats-exporter reads, on monitor.
var metricsPortNames = []string{"http", "monitor"}

// metricsServers returns the rendered workloads ("Kind/name") whose pods
// serve metrics, each with its metrics ports. It looks at the ports, not at
// the label, so a workload that lacks the label is found.
func metricsServers(objs *objects) map[string][]corev1.ContainerPort {
	out := map[string][]corev1.ContainerPort{}
	for id, spec := range objs.podSpecs() {
		for _, c := range spec.Containers {
			for _, p := range c.Ports {
				if slices.Contains(metricsPortNames, p.Name) {
					out[id] = append(out[id], p)
				}
			}
		}
	}
	return out
}

// scraped names the rendered workloads ("Kind/name") whose pods carry the
// metrics label, sorted. A Deployment copied from the worker's
// (docs/extending.md) is one of them as soon as it is rendered, so whatever
// holds for scraped pods is checked for it without a list to update.
func scraped(objs *objects) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(objs.podSpecs())) {
		if podLabels(objs, id)[metricsLabel] == metricsLabelValue {
			out = append(out, id)
		}
	}
	return out
}

// Every pod that serves metrics carries the metrics label, and the label is
// what lets the scraper in: a pod with it and a name no policy knows (a
// service added by copying a Deployment) is scraped, and a pod without it
// is not, whatever its name. So the policy cannot go back to listing names,
// and a Deployment serving metrics cannot be left unscraped.
func TestEveryMetricsServerIsScrapedByItsLabel(t *testing.T) {
	objs, _ := deployed(t)
	servers := metricsServers(objs)
	for _, id := range []string{"Deployment/pingapi", "Deployment/worker", "StatefulSet/nats"} {
		if _, ok := servers[id]; !ok {
			t.Fatalf("%s has no container port named one of %v; metrics servers found: %v", id, metricsPortNames, slices.Sorted(maps.Keys(servers)))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(servers)) {
		pod := labels.Set(podLabels(objs, id))
		if pod[metricsLabel] != metricsLabelValue {
			t.Errorf("%s serves metrics (port %s) but its pods lack the label %s: %q, which the NetworkPolicies let the scraper reach",
				id, servers[id][0].Name, metricsLabel, metricsLabelValue)
		}
		for _, p := range servers[id] {
			if !scrapePath(t, objs, pod, p) {
				t.Errorf("%s: no NetworkPolicy lets the scraper reach its pods (labels %v) on port %s (%d)", id, pod, p.Name, p.ContainerPort)
			}
			without := maps.Clone(pod)
			delete(without, metricsLabel)
			if scrapePath(t, objs, without, p) {
				t.Errorf("%s: the scraper reaches its pods on port %s without the label %s (labels %v): a policy selects them by something else, such as their name",
					id, p.Name, metricsLabel, without)
			}
		}
	}
	added := labels.Set{"app.kubernetes.io/name": "added-by-a-team", metricsLabel: metricsLabelValue}
	if !scrapePath(t, objs, added, corev1.ContainerPort{Name: "http", ContainerPort: 8091}) {
		t.Errorf("a new service's pods (labels %v) cannot be scraped on port http: the policy does not select by the label alone", added)
	}
}

// scrapePath reports whether an ingress NetworkPolicy selecting pods with
// labels pod admits the scraper on the container port port (by its name or
// its number). (TestNetworkPoliciesAllowExactlyTheIntendedFlows asks a real
// analyzer the same and more; this runs in the fast tier.)
func scrapePath(t *testing.T, objs *objects, pod labels.Set, port corev1.ContainerPort) bool {
	t.Helper()
	onPort := func(ports []networkingv1.NetworkPolicyPort) bool {
		return len(ports) == 0 || slices.ContainsFunc(ports, func(p networkingv1.NetworkPolicyPort) bool {
			return p.Port == nil || p.Port.String() == port.Name || p.Port.String() == strconv.Itoa(int(port.ContainerPort))
		})
	}
	scraperNS := labels.Set{"kubernetes.io/metadata.name": scraperNamespace}
	fromScraper := func(peers []networkingv1.NetworkPolicyPeer) bool {
		return len(peers) == 0 || slices.ContainsFunc(peers, func(p networkingv1.NetworkPolicyPeer) bool {
			return p.NamespaceSelector != nil && selects(t, p.NamespaceSelector, scraperNS) &&
				(p.PodSelector == nil || selects(t, p.PodSelector, scraperLabels))
		})
	}
	for _, np := range objs.netpols {
		if !selects(t, &np.Spec.PodSelector, pod) {
			continue
		}
		for _, r := range np.Spec.Ingress {
			if fromScraper(r.From) && onPort(r.Ports) {
				return true
			}
		}
	}
	return false
}
