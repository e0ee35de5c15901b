// Package chartcheck renders the Helm chart in deploy/helm/registry-cos with
// Helm's own engine, for the default values and for every documented variant
// (ci/*-values.yaml), and decodes every rendered object strictly as the
// Kubernetes API type it claims: an unknown or misspelt field fails. It is a
// module of its own so that Helm and the Kubernetes API types stay out of
// the driver's dependency graph (it imports the driver through a replace
// directive, for the configuration check); .ci/run runs it.
package chartcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	cos "github.com/registry-cos/cos"
)

const chartDir = "../helm/registry-cos"

// kubeVersion is the oldest Kubernetes the chart claims (Chart.yaml's
// kubeVersion); objects are rendered for it.
const kubeVersion = "v1.30.0"

// object is a rendered manifest decoded as its API type.
type object struct {
	kind, name string
	value      any
}

// newTyped returns the Go type for apiVersion/kind, or nil for a type the
// chart is not expected to render.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		// A CRD: decoded with the Prometheus Operator's own Go types.
		return &monitoringv1.ServiceMonitor{}
	}
	return nil
}

// variants are the default values plus every ci/*-values.yaml file.
func variants(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ci/*-values.yaml variants found")
	}
	v := map[string]string{"default": ""}
	for _, f := range files {
		v[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	return v
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	if !chartutil.IsCompatibleRange(c.Metadata.KubeVersion, kubeVersion) {
		t.Fatalf("Chart.yaml kubeVersion %q does not admit %s", c.Metadata.KubeVersion, kubeVersion)
	}
	return c
}

// render renders the chart with the values of file ("" for the defaults)
// merged with overrides.
func render(t *testing.T, c *chart.Chart, file string, overrides map[string]any) (map[string]string, error) {
	t.Helper()
	vals := map[string]any{}
	if file != "" {
		v, err := chartutil.ReadValuesFile(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		vals = v
	}
	vals = chartutil.CoalesceTables(overrides, vals)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: kubeVersion, Major: "1", Minor: "30"}
	renderValues, err := chartutil.ToRenderValues(c, vals,
		chartutil.ReleaseOptions{Name: "registry", Namespace: "registry", IsInstall: true}, caps)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	// Strict: a template that reads a value missing from values.yaml fails.
	return engine.Engine{Strict: true}.Render(c, renderValues)
}

var documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits the rendered files into objects and decodes each strictly.
func decode(t *testing.T, rendered map[string]string) []object {
	t.Helper()
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	var objects []object
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue // _helpers.tpl, NOTES.txt
		}
		for _, doc := range documentSeparator.Split(rendered[name], -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			typed := newTyped(meta.APIVersion, meta.Kind)
			if typed == nil {
				t.Fatalf("%s: renders %s %s, a type this check does not know; add it to newTyped", name, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), typed); err != nil {
				t.Fatalf("%s: %s %q does not decode strictly as %T: %v\n%s", name, meta.Kind, meta.Metadata.Name, typed, err, doc)
			}
			if meta.Metadata.Name == "" {
				t.Errorf("%s: %s without a name", name, meta.Kind)
			}
			objects = append(objects, object{kind: meta.Kind, name: meta.Metadata.Name, value: typed})
		}
	}
	return objects
}

// TestChartRendersStrictObjects renders every variant, decodes every object
// strictly and checks that the objects fit together.
func TestChartRendersStrictObjects(t *testing.T) {
	c := loadChart(t)
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			rendered, err := render(t, c, file, nil)
			if err != nil {
				t.Fatalf("rendering: %v", err)
			}
			objects := decode(t, rendered)
			kinds := []string{}
			for _, o := range objects {
				kinds = append(kinds, o.kind)
			}
			t.Logf("%s: %s", variant, strings.Join(kinds, ", "))
			checkCoherent(t, objects)
		})
	}
}

// checkCoherent checks what a strict decode cannot: the Deployment's
// Secrets, ConfigMap and ServiceAccount exist or are declared as the
// operator's; the Service, PDB and ServiceMonitor select the pods; the
// probes name declared ports; the configuration is one the registry reads.
func checkCoherent(t *testing.T, objects []object) {
	t.Helper()
	byKind := map[string][]any{}
	names := map[string]bool{}
	for _, o := range objects {
		byKind[o.kind] = append(byKind[o.kind], o.value)
		names[o.kind+"/"+o.name] = true
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["ConfigMap"]) != 1 || len(byKind["Service"]) == 0 {
		t.Fatalf("want one Deployment and ConfigMap and a Service; got %v", byKind)
	}
	d := byKind["Deployment"][0].(*appsv1.Deployment)
	pod := d.Spec.Template
	podLabels := pod.Labels
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	container := pod.Spec.Containers[0]
	for k, v := range d.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod labels %v", k, v, podLabels)
		}
	}
	ports := map[string]bool{}
	for _, p := range container.Ports {
		ports[p.Name] = true
	}
	if !ports[container.ReadinessProbe.HTTPGet.Port.String()] || !ports[container.LivenessProbe.TCPSocket.Port.String()] {
		t.Errorf("probes name ports %v and %v; the container declares %v", container.ReadinessProbe.HTTPGet.Port, container.LivenessProbe.TCPSocket.Port, ports)
	}
	if sc := pod.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	if container.Resources.Requests.Memory().IsZero() || container.Resources.Limits.Memory().IsZero() {
		t.Error("no memory request or limit")
	}

	httpSecretSeen := false
	for _, env := range container.Env {
		if env.Name == "REGISTRY_HTTP_SECRET" {
			httpSecretSeen = true
		}
		if ref := env.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			name := ref.SecretKeyRef.Name
			if !names["Secret/"+name] && !strings.HasPrefix(name, "registry-cos-") {
				t.Errorf("env %s reads Secret %q, neither rendered nor an operator's registry-cos-* Secret", env.Name, name)
			}
			for _, o := range byKind["Secret"] {
				s := o.(*corev1.Secret)
				if s.Name != name {
					continue
				}
				if _, ok := s.Data[ref.SecretKeyRef.Key]; !ok {
					if _, ok := s.StringData[ref.SecretKeyRef.Key]; !ok {
						t.Errorf("env %s reads key %q of Secret %s, which has no such key", env.Name, ref.SecretKeyRef.Key, name)
					}
				}
			}
		}
	}
	if !httpSecretSeen {
		t.Error("the replicas do not share REGISTRY_HTTP_SECRET")
	}
	if sa := pod.Spec.ServiceAccountName; sa != "default" && !names["ServiceAccount/"+sa] {
		t.Errorf("the pod runs as ServiceAccount %q, which is not rendered", sa)
	}
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && !names["ConfigMap/"+v.ConfigMap.Name] {
			t.Errorf("volume %s mounts ConfigMap %q, which is not rendered", v.Name, v.ConfigMap.Name)
		}
	}

	var services []*corev1.Service
	for _, o := range byKind["Service"] {
		svc := o.(*corev1.Service)
		services = append(services, svc)
		checkSelects(t, "Service "+svc.Name, svc.Spec.Selector, podLabels)
		for _, p := range svc.Spec.Ports {
			if !ports[p.TargetPort.String()] {
				t.Errorf("Service %s port %s targets %s, not a container port", svc.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for _, o := range byKind["PodDisruptionBudget"] {
		checkSelects(t, "PodDisruptionBudget", o.(*policyv1.PodDisruptionBudget).Spec.Selector.MatchLabels, podLabels)
	}
	for _, o := range byKind["ServiceMonitor"] {
		sm := o.(*monitoringv1.ServiceMonitor)
		for _, e := range sm.Spec.Endpoints {
			found := false
			for _, svc := range services {
				if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
					continue
				}
				for _, p := range svc.Spec.Ports {
					found = found || p.Name == e.Port
				}
			}
			if !found {
				t.Errorf("ServiceMonitor scrapes port %q, which no Service it selects has", e.Port)
			}
		}
	}

	cm := byKind["ConfigMap"][0].(*corev1.ConfigMap)
	checkRegistryConfig(t, cm.Data["config.yml"], container)
}

func checkSelects(t *testing.T, what string, selector, labels map[string]string) {
	t.Helper()
	if len(selector) == 0 {
		t.Errorf("%s selects everything", what)
	}
	for k, v := range selector {
		if labels[k] != v {
			t.Errorf("%s selector %s=%s does not match labels %v", what, k, v, labels)
		}
	}
}

// checkRegistryConfig checks the generated registry configuration: the
// fields the registry reads, no secret in it, the listen and debug ports
// the container declares.
func checkRegistryConfig(t *testing.T, config string, container corev1.Container) {
	t.Helper()
	var cfg struct {
		Version string `json:"version"`
		Log     struct {
			Level     string                  `json:"level"`
			Formatter string                  `json:"formatter"`
			AccessLog struct{ Disabled bool } `json:"accesslog"`
			Fields    map[string]string       `json:"fields"`
		} `json:"log"`
		HTTP struct {
			Addr         string              `json:"addr"`
			DrainTimeout string              `json:"draintimeout"`
			RelativeURLs bool                `json:"relativeurls"`
			Headers      map[string][]string `json:"headers"`
			Debug        *struct {
				Addr       string `json:"addr"`
				Prometheus struct {
					Enabled bool   `json:"enabled"`
					Path    string `json:"path"`
				} `json:"prometheus"`
			} `json:"debug"`
		} `json:"http"`
		Storage struct {
			COS      map[string]any         `json:"cos"`
			Delete   struct{ Enabled bool } `json:"delete"`
			Redirect struct{ Disable bool } `json:"redirect"`
			Cache    struct {
				BlobDescriptor string `json:"blobdescriptor"`
			} `json:"cache"`
		} `json:"storage"`
		Health struct {
			StorageDriver struct {
				Enabled   bool   `json:"enabled"`
				Interval  string `json:"interval"`
				Threshold int    `json:"threshold"`
			} `json:"storagedriver"`
		} `json:"health"`
		Redis *struct {
			Addrs        []string `json:"addrs"`
			DB           int      `json:"db"`
			DialTimeout  string   `json:"dialtimeout"`
			ReadTimeout  string   `json:"readtimeout"`
			WriteTimeout string   `json:"writetimeout"`
		} `json:"redis"`
	}
	if err := yaml.UnmarshalStrict([]byte(config), &cfg); err != nil {
		t.Fatalf("config.yml: %v\n%s", err, config)
	}
	// The registry's own parser and the driver's parameter parser accept
	// it, with the parameters the pod gets from its environment.
	parsed, err := configuration.Parse(strings.NewReader(config))
	if err != nil {
		t.Fatalf("the registry does not parse config.yml: %v\n%s", err, config)
	}
	if parsed.Storage.Type() != cos.DriverName {
		t.Fatalf("config.yml selects storage %q", parsed.Storage.Type())
	}
	params := parsed.Storage.Parameters()
	for _, env := range container.Env {
		// What the registry's environment overrides will add.
		if name, ok := strings.CutPrefix(env.Name, "REGISTRY_STORAGE_COS_"); ok {
			params[strings.ToLower(name)] = "example"
		}
	}
	if _, err := cos.ParseParameters(params); err != nil {
		t.Fatalf("the driver refuses the parameters of config.yml: %v", err)
	}
	if cfg.Version != "0.1" || cfg.Storage.COS["bucket"] == nil {
		t.Errorf("config.yml lacks version 0.1 or storage.cos.bucket:\n%s", config)
	}
	for _, secret := range []string{"secretid", "secretkey", "sessiontoken"} {
		if _, ok := cfg.Storage.COS[secret]; ok {
			t.Errorf("config.yml holds %s; secrets belong in Secrets", secret)
		}
	}
	if (cfg.Storage.Cache.BlobDescriptor == "redis") != (cfg.Redis != nil) {
		t.Errorf("blobdescriptor %q with redis section %v", cfg.Storage.Cache.BlobDescriptor, cfg.Redis)
	}
	ports := map[string]bool{}
	for _, p := range container.Ports {
		ports[fmt.Sprintf(":%d", p.ContainerPort)] = true
	}
	if !ports[cfg.HTTP.Addr] {
		t.Errorf("the registry listens on %q; the container declares %v", cfg.HTTP.Addr, container.Ports)
	}
	if cfg.HTTP.Debug != nil && !ports[cfg.HTTP.Debug.Addr] {
		t.Errorf("the debug listener is on %q; the container declares %v", cfg.HTTP.Debug.Addr, container.Ports)
	}
}

// TestChartRejectsBadValues: a missing bucket, an unknown credentials mode
// or static mode without keys fail the render with a message naming the
// value.
func TestChartRejectsBadValues(t *testing.T) {
	c := loadChart(t)
	for _, tc := range []struct {
		name      string
		overrides map[string]any
		want      string
	}{
		{"no bucket", map[string]any{"cos": map[string]any{"bucket": ""}}, "cos.bucket"},
		{"unknown mode", map[string]any{"credentials": map[string]any{"mode": "keys"}}, `credentials.mode "keys"`},
		{"static without keys", map[string]any{"credentials": map[string]any{"mode": "secret"}}, "credentials.secretId"},
		{"cvm role without a name", map[string]any{"credentials": map[string]any{"mode": "cvmRole"}}, "credentials.cvmRole"},
		{"redis without an address", map[string]any{"redis": map[string]any{"enabled": true}}, "redis.addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, c, "", tc.overrides)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render error %v, want one naming %s", err, tc.want)
			}
		})
	}
}

// TestChartVariantsDocumented: every ci/*-values.yaml variant is described
// in the chart's README, and every value of values.yaml is too.
func TestChartVariantsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for variant, file := range variants(t) {
		if file != "" && !strings.Contains(string(readme), "ci/"+filepath.Base(file)) {
			t.Errorf("README.md does not describe the variant %s (ci/%s)", variant, filepath.Base(file))
		}
	}
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	for _, key := range leafKeys("", values) {
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md does not document the value `%s`", key)
		}
	}
}

// leafKeys lists the dotted paths of values (maps are descended; a map
// value that is empty is a leaf, like cos.parameters).
func leafKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			keys = append(keys, leafKeys(prefix+k+".", sub)...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	sort.Strings(keys)
	return keys
}
