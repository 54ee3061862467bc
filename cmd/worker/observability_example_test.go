package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hostkit/hostkit/internal/rollout"
	"github.com/hostkit/hostkit/internal/runtest"
)

// TestDashboardAndAlertsNameExportedMetrics runs the real worker and
// pingapi, makes every metric appear (a request, a job dead-lettered, a
// change), scrapes both, and checks that every metric the Grafana dashboard
// and the alerting rules query is one of them: a renamed metric breaks this
// test, not a dashboard in production.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes")
	}
	// The build has a budget of its own: a busy machine compiles slowly.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelBuild()
	pingapi, err := rollout.Build(buildCtx, t.TempDir(), "github.com/hostkit/hostkit/cmd/pingapi")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Lag is reported every renew interval: a short one for a short test.
	w := start(ctx, t, testArgs(filepath.Join(t.TempDir(), "nats"),
		"--changefeed.renew_interval=200ms", "--changefeed.lease_ttl=2s")...)
	url := natsURL(t, w)
	api, err := rollout.Start(ctx, pingapi, "--nats.url="+url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Kill)
	if err := api.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	js := connect(t, url)
	if _, err := js.Publish(ctx, "jobs.ping", []byte("not json")); err != nil { // dead-lettered at once
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "changes.k1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(api.URL + "/pingpong/ping"); err != nil {
		t.Fatal(err)
	}

	exported := map[string]bool{}
	runtest.Poll(ctx, t, "the DLQ and change feed metrics", func() bool {
		clear(exported)
		for _, inst := range []*rollout.Instance{w, api} {
			for name := range scrapeNames(t, inst.URL) {
				exported[name] = true
			}
		}
		return exported["worker_dlq_total"] && exported["worker_changefeed_pending"] && exported["worker_queue_pending"]
	})

	queries := dashboardQueries(t)
	rules, recorded := ruleQueries(t)
	if len(queries) < 10 || len(rules) < 9 {
		t.Fatalf("%d dashboard queries and %d rule expressions: the files were not read", len(queries), len(rules))
	}
	for _, q := range append(queries, rules...) {
		for _, name := range metricNames(q) {
			if !exported[name] && !exported[histogramFamily(name)] && !recorded[name] {
				t.Errorf("%q queries %s, which neither binary exports", q, name)
			}
		}
	}
}

// scrapeNames returns the metric names in a /metrics answer.
func scrapeNames(tb testing.TB, base string) map[string]bool {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		names[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return names
}

// histogramFamily maps a histogram's series name to its family's.
func histogramFamily(name string) string {
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if f, ok := strings.CutSuffix(name, suffix); ok {
			return f
		}
	}
	return name
}

func repoFile(tb testing.TB, rel string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// dashboardQueries returns every PromQL expression of the dashboard.
func dashboardQueries(tb testing.TB) []string {
	tb.Helper()
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Query any
			}
		}
	}
	if err := json.Unmarshal(repoFile(tb, "deploy/observability/grafana/hostkit.json"), &dash); err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			// label_values(METRIC, LABEL): the metric is what must exist.
			metric, _, _ := strings.Cut(strings.TrimPrefix(q["query"].(string), "label_values("), ",")
			out = append(out, metric)
		}
	}
	return out
}

// ruleQueries returns the rules' expressions and the names they record.
func ruleQueries(tb testing.TB) ([]string, map[string]bool) {
	tb.Helper()
	var f struct {
		Groups []struct {
			Rules []struct{ Record, Expr string }
		}
	}
	if err := yaml.Unmarshal(repoFile(tb, "deploy/observability/prometheus/rules.yaml"), &f); err != nil {
		tb.Fatal(err)
	}
	var exprs []string
	recorded := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	return exprs, recorded
}

var (
	// Removed before looking for names: strings, label matchers, range and
	// subquery brackets, and the label lists of grouping modifiers.
	promqlStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
		"group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers that are not functions, keywords or label names.
func metricNames(expr string) []string {
	s := promqlStrings.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\$\w+`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\b\d+(\.\d+)?(e\d+)?[smhdwy]?\b`).ReplaceAllString(s, " ")
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatch(s, -1) {
		if m[1] != "" || slices.Contains(promqlKeywords, strings.ToLower(m[0])) {
			continue // a function call, or a keyword
		}
		names = append(names, m[0])
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (job, le) (rate(a_bucket{x="y",le=~"1|2"}[5m])) / ignoring (le) b_total`, []string{"a_bucket", "b_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(c_bucket[$__rate_interval]))) > 1e3`, []string{"c_bucket"}},
		{`x:y:rate5m > 0.05 and on (job) max_over_time(host_state{state="a b"}[5m]) == 1`, []string{"x:y:rate5m", "host_state"}},
		{`d offset 5m unless bool e`, []string{"d", "e"}},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}
