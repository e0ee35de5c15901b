package chartcheck

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// kubeVersions are the Kubernetes releases the chart is validated against
// with kubeconform: the oldest the chart admits (Chart.yaml's kubeVersion)
// and the newest, each the k8s.io/kubernetes module of that release.
var kubeVersions = []string{"v1.30.14", "v1.37.2"}

// serviceMonitorTypes is the package whose Go types the Prometheus Operator
// generates its CRDs from (the version go.mod pins).
const serviceMonitorTypes = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

// schemaLocation is where kubeconform finds the schemas writeSchemas writes
// (its own naming: kind, then group and version).
func schemaLocation(dir string) string {
	return dir + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
}

// writeSchemas writes strict JSON schemas for kubeconform into dir: every
// kind of the swagger.json of each Kubernetes release in kubeVersions (the
// k8s.io/kubernetes module, from the Go module proxy) and the ServiceMonitor
// CRD, generated with controller-gen from the Prometheus Operator's types.
func writeSchemas(t *testing.T, dir, controllerGen string) {
	t.Helper()
	crdDir := t.TempDir()
	cmd := exec.Command(controllerGen, "crd:crdVersions=v1", "paths="+serviceMonitorTypes, "output:crd:dir="+crdDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen on %s: %v\n%s", serviceMonitorTypes, err, out)
	}
	crd, err := os.ReadFile(filepath.Join(crdDir, "monitoring.coreos.com_servicemonitors.yaml"))
	if err != nil {
		t.Fatalf("controller-gen wrote no ServiceMonitor CRD: %v", err)
	}
	serviceMonitor, err := crdSchema(crd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range kubeVersions {
		out, err := exec.Command("go", "mod", "download", "-json", "k8s.io/kubernetes@"+version).Output()
		if err != nil {
			t.Fatalf("go mod download k8s.io/kubernetes@%s: %v", version, err)
		}
		var module struct{ Dir string }
		if err := json.Unmarshal(out, &module); err != nil || module.Dir == "" {
			t.Fatalf("go mod download k8s.io/kubernetes@%s: %v: %s", version, err, out)
		}
		swagger, err := os.ReadFile(filepath.Join(module.Dir, "api", "openapi-spec", "swagger.json"))
		if err != nil {
			t.Fatal(err)
		}
		versionDir := filepath.Join(dir, version+"-standalone-strict")
		n, err := writeKubeSchemas(swagger, versionDir)
		if err != nil {
			t.Fatalf("k8s.io/kubernetes@%s: %v", version, err)
		}
		if err := writeJSON(filepath.Join(versionDir, "servicemonitor-monitoring-v1.json"), serviceMonitor); err != nil {
			t.Fatal(err)
		}
		t.Logf("k8s.io/kubernetes@%s: %d kinds; ServiceMonitor from controller-gen", version, n)
	}
}

// writeKubeSchemas writes one schema per kind of swagger.json, each with
// the definitions it refers to, as kubeconform's own generator does: strict
// (an object with properties admits no others) and int-or-string as either.
func writeKubeSchemas(swagger []byte, dir string) (int, error) {
	var spec struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(swagger, &spec); err != nil {
		return 0, fmt.Errorf("swagger.json: %w", err)
	}
	defs := map[string]any{}
	for name, def := range spec.Definitions {
		defs[name] = strictSchema(def)
	}
	// A quantity is written as a string or a number (cpu: 1); the API
	// server takes both.
	defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = map[string]any{
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	n := 0
	for _, name := range names {
		def := defs[name].(map[string]any)
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk := g.(map[string]any)
			group, _ := gvk["group"].(string)
			suffix := "-" + gvk["version"].(string)
			if group != "" {
				suffix = "-" + strings.Split(group, ".")[0] + suffix
			}
			schema := map[string]any{}
			for k, v := range def {
				schema[k] = v
			}
			schema["definitions"] = referenced(defs, def)
			file := filepath.Join(dir, strings.ToLower(gvk["kind"].(string))+suffix+".json")
			if err := writeJSON(file, schema); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// strictSchema returns a copy of an OpenAPI schema with every object that
// lists its properties closed to others, and int-or-string as a string or
// an integer; $refs to #/definitions/ stay as they are.
func strictSchema(node any) any {
	switch v := node.(type) {
	case map[string]any:
		if v["format"] == "int-or-string" {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		}
		out := map[string]any{}
		for k, child := range v {
			out[k] = strictSchema(child)
		}
		if _, ok := v["properties"]; ok {
			if _, set := v["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, child := range v {
			out[i] = strictSchema(child)
		}
		return out
	}
	return node
}

// referenced returns the definitions node refers to, directly or not.
func referenced(defs map[string]any, node any) map[string]any {
	found := map[string]any{}
	var walk func(any)
	walk = func(n any) {
		switch v := n.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name := strings.TrimPrefix(ref, "#/definitions/")
				if _, seen := found[name]; !seen {
					found[name] = defs[name]
					walk(defs[name])
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(node)
	return found
}

// crdSchema returns the strict schema of a CRD's version.
func crdSchema(crd []byte, version string) (any, error) {
	var doc struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crd, &doc); err != nil {
		return nil, fmt.Errorf("the ServiceMonitor CRD: %w", err)
	}
	for _, v := range doc.Spec.Versions {
		if v.Name == version && v.Schema.OpenAPIV3Schema != nil {
			return strictSchema(v.Schema.OpenAPIV3Schema), nil
		}
	}
	return nil, fmt.Errorf("the ServiceMonitor CRD has no schema for %s", version)
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
