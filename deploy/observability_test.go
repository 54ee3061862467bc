package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
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

// tracingOverlay is the kind overlay plus the tracing component.
const tracingOverlay = "deploy/observability/kind"

func TestTracingOverlayPointsBothServicesAtTheCollector(t *testing.T) {
	objs := render(t, tracingOverlay)
	for _, name := range []string{"otel-collector", "jaeger"} {
		d := objs.deployment(t, name)
		for _, c := range d.Spec.Template.Spec.Containers {
			checkContainerSecurity(t, &c)
			if !regexp.MustCompile(`:[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(c.Image) {
				t.Errorf("%s image %q: want a pinned version", name, c.Image)
			}
		}
	}
	collector, ok := objs.services["otel-collector"]
	if !ok {
		t.Fatal("no otel-collector Service")
	}
	httpPort := int32(0)
	for _, p := range collector.Spec.Ports {
		if p.Name == "otlp-http" {
			httpPort = p.Port
		}
	}
	want := fmt.Sprintf("http://otel-collector:%d", httpPort)
	for _, app := range appContainers {
		c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
		got := ""
		for _, e := range c.Env {
			if e.Name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
				got = e.Value
			}
		}
		if got != want {
			t.Errorf("%s OTEL_EXPORTER_OTLP_ENDPOINT = %q, want %q", app, got, want)
		}
	}
	// The collector forwards to the Jaeger Service's OTLP port.
	var cfg struct {
		Exporters map[string]struct {
			Endpoint string `json:"endpoint"`
		} `json:"exporters"`
	}
	if err := yaml.Unmarshal([]byte(objs.configMaps["otel-collector"].Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	jaegerOTLP := ""
	for _, p := range objs.services["jaeger"].Spec.Ports {
		if p.Name == "otlp-grpc" {
			jaegerOTLP = fmt.Sprintf("jaeger:%d", p.Port)
		}
	}
	if got := cfg.Exporters["otlp/jaeger"].Endpoint; got == "" || got != jaegerOTLP {
		t.Errorf("collector exports to %q, want the jaeger Service %q", got, jaegerOTLP)
	}
}

func TestKindOverlayStaysWithoutTracing(t *testing.T) {
	objs := render(t, kindOverlay)
	for _, app := range appContainers {
		for _, e := range container(t, &objs.deployment(t, app).Spec.Template.Spec, app).Env {
			if strings.HasPrefix(e.Name, "OTEL_") {
				t.Errorf("%s sets %s without the tracing component", app, e.Name)
			}
		}
	}
}
