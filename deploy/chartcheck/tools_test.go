package chartcheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tool returns the path of an operator's tool: the environment variable
// env, else name on PATH. Without it the test is skipped, except in CI
// (.ci/run installs every one), where that fails.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (set %s or put it on PATH; .ci/run installs it)", name, env)
	}
	t.Skipf("%s not found (set %s or put it on PATH)", name, env)
	return ""
}

func run(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var kubeconformSummary = regexp.MustCompile(`Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)`)

// TestChartWithOperatorTools runs the chart through the tools operators
// use: `helm lint --strict` and `helm template` for every variant with the
// helm CLI (HELM; .ci/run builds v3.22.1 from the Go module proxy), then
// `kubeconform -strict` (KUBECONFORM, v0.7.0) on what helm rendered for each
// Kubernetes release of kubeVersions, against schemas made from that
// release's own swagger.json and the ServiceMonitor CRD controller-gen
// (CONTROLLER_GEN) makes from the Prometheus Operator's types.
func TestChartWithOperatorTools(t *testing.T) {
	helm := tool(t, "HELM", "helm")
	kubeconform := tool(t, "KUBECONFORM", "kubeconform")
	controllerGen := tool(t, "CONTROLLER_GEN", "controller-gen")
	if out, err := run(t, nil, helm, "version", "--short"); err != nil {
		t.Fatalf("helm version: %v\n%s", err, out)
	} else {
		t.Logf("helm %s", strings.TrimSpace(out))
	}
	schemas := t.TempDir()
	writeSchemas(t, schemas, controllerGen)
	// The schemas can fail: a misspelt field of a Service and of a
	// ServiceMonitor is refused.
	for _, bad := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {}, endpoint: []}\n",
	} {
		out, _ := run(t, []byte(bad), kubeconform, "-strict", "-summary", "-schema-location", schemaLocation(schemas),
			"-kubernetes-version", strings.TrimPrefix(kubeVersions[0], "v"), "-")
		if m := kubeconformSummary.FindStringSubmatch(out); m == nil || m[2] != "1" {
			t.Fatalf("kubeconform accepted a misspelt field:\n%s\n%s", bad, out)
		}
	}

	chart, err := filepath.Abs(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			valueArgs := []string{}
			if file != "" {
				valueArgs = []string{"-f", file}
			}
			out, err := run(t, nil, helm, append([]string{"lint", "--strict", chart}, valueArgs...)...)
			if err != nil || !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint --strict: %v\n%s", err, out)
			}
			// What the Go render decodes is what helm must render too.
			want := len(renderObjects(t, file, nil).objects)
			for _, version := range kubeVersions {
				manifest, err := exec.Command(helm, append([]string{"template", "registry", chart,
					"--namespace", "registry", "--kube-version", version}, valueArgs...)...).Output()
				if err != nil {
					t.Fatalf("helm template --kube-version %s: %v\n%s", version, err, stderrOf(err))
				}
				out, err := run(t, manifest, kubeconform, "-strict", "-summary",
					"-schema-location", schemaLocation(schemas),
					"-kubernetes-version", strings.TrimPrefix(version, "v"), "-")
				m := kubeconformSummary.FindStringSubmatch(out)
				if err != nil || m == nil || m[1] != fmt.Sprint(want) || m[2] != "0" || m[3] != "0" || m[4] != "0" {
					t.Fatalf("kubeconform -strict on Kubernetes %s: %v, want %d valid objects\n%s", version, err, want, out)
				}
				t.Logf("Kubernetes %s: %s", version, m[0])
			}
		})
	}
}

func stderrOf(err error) string {
	if exit, ok := err.(*exec.ExitError); ok {
		return string(exit.Stderr)
	}
	return ""
}
