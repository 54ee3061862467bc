package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// ruleFile is a Prometheus rule file, decoded strictly: a misspelt key fails.
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []struct {
		Record      string            `json:"record,omitempty"`
		Alert       string            `json:"alert,omitempty"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"rules"`
}

// prometheusRule is the Prometheus Operator's PrometheusRule, the fields we use.
type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec ruleFile `json:"spec"`
}

func TestPrometheusRuleCarriesTheRuleFile(t *testing.T) {
	var plain ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/observability/prometheus/rules.yaml"), &plain); err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/observability/prometheusrule.yaml"), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Namespace != "hostkit" {
		t.Errorf("PrometheusRule header = %s %s in %q", pr.APIVersion, pr.Kind, pr.Metadata.Namespace)
	}
	if !reflect.DeepEqual(pr.Spec, plain) {
		t.Error("prometheusrule.yaml's spec.groups differ from prometheus/rules.yaml; edit both together")
	}
	alerts := map[string]bool{}
	for _, g := range plain.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[r.Alert] = true
			}
		}
	}
	// One alert per concern the observability issue lists.
	for _, want := range []string{
		"HTTPErrorRatioHigh", "HTTPLatencyHigh", "HTTPFailuresDuringRollout", "ShutdownNearTimeout",
		"DrainingTooLong", "QueueBacklogGrowing", "DLQGrowing", "ChangeFeedLagging", "LeaseChurn",
	} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// promtool finds promtool: $PROMTOOL, bin/promtool (make promtool builds it),
// or the PATH. Without it the test skips, unless CI is set.
func promtool(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("PROMTOOL"), filepath.Join(root, "bin", "promtool")} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("promtool not found; run make promtool")
	}
	t.Skip("promtool not found; make promtool builds it")
	return ""
}

func TestAlertRulesPassPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	bin := promtool(t)
	dir := filepath.Join(root, "deploy", "observability", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "rules.yaml"},
		{"test", "rules", "rules_test.yaml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
