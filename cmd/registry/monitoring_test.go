package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v2"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// The monitoring files operators load; every metric they name must be one
// the registry emits.
const (
	alertRulesFile = "../../docs/prometheus-alerts.yml"
	dashboardFile  = "../../docs/grafana-dashboard.json"
)

// TestMonitoringFilesNameEmittedMetrics runs a registry with Prometheus
// metrics on, pushes and pulls through it on an emulator that fails some
// requests (so retries happen), then checks that every metric named by the
// alert rules and the Grafana dashboard is among those gathered, and that
// the request-duration histogram counts exactly the requests the request
// counter counts, operation by operation.
func TestMonitoringFilesNameEmittedMetrics(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Faults: costest.Faults{ErrorRate: 0.2}, Seed: 14})
	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, registryOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	config.HTTP.Debug.Prometheus.Enabled = true
	reg := serveConfig(t, config)
	img := registrytest.NewImage(t, 14, 6*mib, 1000)
	push(t, reg.Ref(t, "monitoring/app:v1"), img)
	pullAndVerifyImage(t, reg.Ref(t, "monitoring/app:v1"), img)

	emitted := gatheredMetricNames(t)
	for _, want := range []string{"registry_cos_request_duration_seconds", "registry_cos_retries_total", "registry_http_requests_total"} {
		if !emitted[want] {
			t.Fatalf("the registry does not emit %s after a push and pull with faults", want)
		}
	}
	checkDurationMatchesRequests(t)

	var named []string
	alertExprs := alertRuleExpressions(t)
	dashboardExprs := dashboardExpressions(t)
	if len(alertExprs) < 5 || len(dashboardExprs) < 10 {
		t.Fatalf("read %d alert expressions and %d dashboard expressions: the files lost their rules or panels", len(alertExprs), len(dashboardExprs))
	}
	for _, expr := range append(alertExprs, dashboardExprs...) {
		names := promQLMetricNames(expr)
		if len(names) == 0 {
			t.Errorf("found no metric name in expression %q", expr)
		}
		named = append(named, names...)
	}
	for _, name := range named {
		if !emitted[name] {
			t.Errorf("a monitoring file names %s, which the registry does not emit", name)
		}
	}
}

// gatheredMetricNames is every series name in the default Prometheus
// registry, with the _bucket, _sum and _count series of histograms.
func gatheredMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+suffix] = true
			}
		}
	}
	return names
}

// checkDurationMatchesRequests compares, per operation, the duration
// histogram's sample count with the request counter summed over statuses:
// both are recorded for every attempt.
func checkDurationMatchesRequests(t *testing.T) {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	requests, observed := map[string]float64{}, map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			op := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					op = l.GetValue()
				}
			}
			switch f.GetName() {
			case "registry_cos_requests_total":
				requests[op] += m.GetCounter().GetValue()
			case "registry_cos_request_duration_seconds":
				observed[op] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if requests["PutObject"] == 0 || requests["UploadPart"] == 0 || requests["GetObject"] == 0 {
		t.Fatalf("requests by operation %v: want PutObject, UploadPart and GetObject after a push and pull", requests)
	}
	for op, n := range requests {
		if observed[op] != n {
			t.Errorf("operation %s: %v requests counted, %v durations observed", op, n, observed[op])
		}
	}
}

// alertRuleExpressions reads the expr of every rule in the alert file.
func alertRuleExpressions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(alertRulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: rule %q in group %q lacks an alert name, expr, severity or summary", alertRulesFile, r.Alert, g.Name)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// dashboardExpressions reads every panel query of the Grafana dashboard and
// the metric of every label_values() template variable.
func dashboardExpressions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string `json:"type"`
				Query string `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
		}
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\(([^,]+),`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Query); v.Type == "query" && m != nil {
			exprs = append(exprs, strings.TrimSpace(m[1]))
		}
	}
	return exprs
}

var (
	promQLStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promQLMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promQLRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promQLGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promQLIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	promQLOperators = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true, "inf": true, "nan": true}
)

// promQLMetricNames lists the metric names of a PromQL expression: the
// identifiers left once strings, label matchers, ranges and grouping
// clauses are removed, other than function calls and keywords.
func promQLMetricNames(expr string) []string {
	expr = promQLStrings.ReplaceAllString(expr, "")
	expr = promQLMatchers.ReplaceAllString(expr, "")
	expr = promQLRanges.ReplaceAllString(expr, "")
	expr = promQLGrouping.ReplaceAllString(expr, "")
	seen := map[string]bool{}
	for _, m := range promQLIdent.FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") {
			continue // a function or aggregation
		}
		m = strings.TrimSpace(m)
		if !promQLOperators[strings.ToLower(m)] {
			seen[m] = true
		}
	}
	return keys(seen)
}

// TestPromQLMetricNames pins the extraction the monitoring test relies on:
// were it to find nothing, that test would check nothing.
func TestPromQLMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (operation) (rate(registry_cos_requests_total{status=~"5.."}[5m])) / sum by (operation) (rate(registry_cos_requests_total[5m])) > 0.05`: "registry_cos_requests_total",
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval]))) > 2`:                                                           "a_bucket",
		`max by (instance) (a / b) > 0.9 and on (instance) c unless d`:                                                                                  "a b c d",
		`increase(x_total[15m]) > 0`: "x_total",
	} {
		if got := strings.Join(promQLMetricNames(expr), " "); got != want {
			t.Errorf("promQLMetricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}
