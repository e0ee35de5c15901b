package chartcheck

import (
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// The ports the registry listens on inside the pod, whatever the Services
// publish: the image's http.addr and the debug listener's.
const (
	listenPort = 5000
	debugPort  = 5001
)

// rendered is one render of the chart, decoded.
type rendered struct {
	objects []object
}

// renderObjects renders the chart with the values of file ("" for the
// defaults) and overrides, and decodes every object strictly.
func renderObjects(t *testing.T, file string, overrides map[string]any) rendered {
	t.Helper()
	out, err := render(t, loadChart(t), file, overrides)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	return rendered{objects: decode(t, out)}
}

func (r rendered) all(kind string) []any {
	var found []any
	for _, o := range r.objects {
		if o.kind == kind {
			found = append(found, o.value)
		}
	}
	return found
}

func (r rendered) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	d := r.all("Deployment")
	if len(d) != 1 {
		t.Fatalf("%d Deployments rendered, want 1", len(d))
	}
	return d[0].(*appsv1.Deployment)
}

func (r rendered) container(t *testing.T) corev1.Container {
	t.Helper()
	return r.deployment(t).Spec.Template.Spec.Containers[0]
}

// env returns the container's plain environment variables.
func (r rendered) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range r.container(t).Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

// registryConfig returns the generated config.yml, decoded loosely.
func (r rendered) registryConfig(t *testing.T) map[string]any {
	t.Helper()
	cms := r.all("ConfigMap")
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps rendered, want 1", len(cms))
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cms[0].(*corev1.ConfigMap).Data["config.yml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// selects reports whether every label of selector is in labels (and the
// selector is not empty).
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// TestDebugListenerNotOnClientService: the debug listener (/metrics, but
// also /debug/pprof/ and /debug/vars) is not on the Service clients use,
// which in the high-availability variant is a LoadBalancer. Metrics get a
// ClusterIP Service of their own, the only one a ServiceMonitor selects.
func TestDebugListenerNotOnClientService(t *testing.T) {
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			r := renderObjects(t, file, nil)
			podLabels := r.deployment(t).Spec.Template.Labels
			ports := map[string]int32{}
			for _, p := range r.container(t).Ports {
				ports[p.Name] = p.ContainerPort
			}
			var client, metrics []*corev1.Service
			for _, o := range r.all("Service") {
				svc := o.(*corev1.Service)
				exposesDebug := false
				for _, p := range svc.Spec.Ports {
					target := p.TargetPort.IntVal
					if p.TargetPort.StrVal != "" {
						target = ports[p.TargetPort.StrVal]
					}
					exposesDebug = exposesDebug || target == debugPort
				}
				if !selects(svc.Spec.Selector, podLabels) {
					t.Errorf("Service %s does not select the pods", svc.Name)
				}
				if exposesDebug {
					metrics = append(metrics, svc)
				} else {
					client = append(client, svc)
				}
			}
			if len(client) != 1 {
				t.Fatalf("%d Services without the debug port %d, want the clients' one; the debug listener is published to clients", len(client), debugPort)
			}
			for _, svc := range metrics {
				if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 {
					t.Errorf("Service %s publishes the debug listener as %s with ports %v; want a ClusterIP Service with that port alone", svc.Name, svc.Spec.Type, svc.Spec.Ports)
				}
			}
			for _, o := range r.all("ServiceMonitor") {
				sm := o.(*monitoringv1.ServiceMonitor)
				if selects(sm.Spec.Selector.MatchLabels, client[0].Labels) {
					t.Errorf("the ServiceMonitor selects the clients' Service %s", client[0].Name)
				}
				if len(metrics) != 1 || !selects(sm.Spec.Selector.MatchLabels, metrics[0].Labels) {
					t.Errorf("the ServiceMonitor selects %v, not the metrics Service", sm.Spec.Selector.MatchLabels)
				}
			}
		})
	}
}

// TestServicePortIsNotListenPort: service.port and metrics.port are the
// Services' ports; the container listens on 5000 and 5001 whatever they
// are (uid 10001 without capabilities cannot bind :443).
func TestServicePortIsNotListenPort(t *testing.T) {
	r := renderObjects(t, "", map[string]any{
		"service": map[string]any{"port": 443},
		"metrics": map[string]any{"port": 9090},
	})
	cfg := r.registryConfig(t)
	http := cfg["http"].(map[string]any)
	if http["addr"] != ":5000" {
		t.Errorf("service.port=443: the registry listens on %v, want :5000", http["addr"])
	}
	if debug, _ := http["debug"].(map[string]any); debug == nil || debug["addr"] != ":5001" {
		t.Errorf("metrics.port=9090: the debug listener is on %v, want :5001", http["debug"])
	}
	want := map[string]int32{"http": listenPort, "metrics": debugPort}
	for _, p := range r.container(t).Ports {
		if want[p.Name] != p.ContainerPort {
			t.Errorf("container port %s is %d, want %d", p.Name, p.ContainerPort, want[p.Name])
		}
	}
	published := map[int32]string{}
	for _, o := range r.all("Service") {
		for _, p := range o.(*corev1.Service).Spec.Ports {
			published[p.Port] = p.TargetPort.String()
		}
	}
	if published[443] != "http" || published[9090] != "metrics" {
		t.Errorf("Services publish %v, want 443 -> http and 9090 -> metrics", published)
	}
}

// TestTracingOffByDefault: Distribution exports traces to
// https://localhost:4318 unless told otherwise, and every pod logs each
// failed export at error level. The chart turns the exporter off, and on
// with tracing.enabled and an endpoint.
func TestTracingOffByDefault(t *testing.T) {
	if got := renderObjects(t, "", nil).env(t)["OTEL_TRACES_EXPORTER"]; got != "none" {
		t.Errorf("OTEL_TRACES_EXPORTER=%q by default, want none", got)
	}
	env := renderObjects(t, "", map[string]any{"tracing": map[string]any{
		"enabled": true, "endpoint": "http://otel-collector.observability:4318",
	}}).env(t)
	for name, want := range map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_SERVICE_NAME":           "registry-registry-cos",
	} {
		if env[name] != want {
			t.Errorf("tracing.enabled: %s=%q, want %q", name, env[name], want)
		}
	}
	_, err := render(t, loadChart(t), "", map[string]any{"tracing": map[string]any{"enabled": true}})
	if err == nil || !strings.Contains(err.Error(), "tracing.endpoint") {
		t.Errorf("tracing.enabled without an endpoint: %v, want an error naming tracing.endpoint", err)
	}
}

// TestGeneratedHTTPSecretRollsPods: `helm template` (as GitOps tools render)
// cannot look up the Secret of the last install, so each render generates
// a new HTTP secret. Pods read it from their environment at start: a pod
// template that does not change with it leaves old pods on the old secret
// and new ones on the new, and uploads fail between them.
func TestGeneratedHTTPSecretRollsPods(t *testing.T) {
	secretAndAnnotations := func() (string, map[string]string) {
		r := renderObjects(t, "", nil)
		for _, o := range r.all("Secret") {
			if s := o.(*corev1.Secret); s.Name == "registry-registry-cos-http" {
				return string(s.Data["http-secret"]), r.deployment(t).Spec.Template.Annotations
			}
		}
		t.Fatal("no generated HTTP secret")
		return "", nil
	}
	s1, a1 := secretAndAnnotations()
	s2, a2 := secretAndAnnotations()
	if s1 == s2 {
		t.Fatal("two renders generated the same HTTP secret; this test needs them to differ")
	}
	if a1["checksum/http-secret"] == "" || a1["checksum/http-secret"] == a2["checksum/http-secret"] {
		t.Errorf("a new generated HTTP secret leaves the pod template as it was (annotations %v and %v): running pods keep the old one", a1, a2)
	}
	// A secret given as a value is the same in every render.
	given := map[string]any{"httpSecret": map[string]any{"value": "0123456789abcdef"}}
	b1 := renderObjects(t, "", given).deployment(t).Spec.Template.Annotations
	b2 := renderObjects(t, "", given).deployment(t).Spec.Template.Annotations
	if b1["checksum/http-secret"] != b2["checksum/http-secret"] {
		t.Error("httpSecret.value: two renders differ")
	}
}

// TestReplicasSpreadAcrossNodes: more than one replica are spread over
// nodes by default (two on one node fall together), and every spread
// constraint counts this release's pods only, not another release's of
// the same chart.
func TestReplicasSpreadAcrossNodes(t *testing.T) {
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			d := renderObjects(t, file, nil).deployment(t)
			pod := d.Spec.Template
			byNode := false
			for _, c := range pod.Spec.TopologySpreadConstraints {
				if c.LabelSelector == nil || !selects(c.LabelSelector.MatchLabels, pod.Labels) {
					t.Errorf("spread over %s selects %v, not this release's pods %v", c.TopologyKey, c.LabelSelector, pod.Labels)
				} else if c.LabelSelector.MatchLabels["app.kubernetes.io/instance"] == "" {
					t.Errorf("spread over %s selects %v: every release of the chart", c.TopologyKey, c.LabelSelector.MatchLabels)
				}
				byNode = byNode || c.TopologyKey == corev1.LabelHostname
			}
			if *d.Spec.Replicas > 1 && !byNode {
				t.Errorf("%d replicas and no spread over %s", *d.Spec.Replicas, corev1.LabelHostname)
			}
		})
	}
}

// TestEphemeralStorageRequested: the pod requests the local disk it may
// use (its /tmp emptyDir and its logs), so the scheduler counts it and the
// kubelet does not evict it first when a node runs short.
func TestEphemeralStorageRequested(t *testing.T) {
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			r := renderObjects(t, file, nil)
			res := r.container(t).Resources
			request := res.Requests[corev1.ResourceEphemeralStorage]
			emptyDirs := resource.Quantity{}
			for _, v := range r.deployment(t).Spec.Template.Spec.Volumes {
				if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
					emptyDirs.Add(*v.EmptyDir.SizeLimit)
				}
			}
			if request.Cmp(emptyDirs) <= 0 {
				t.Errorf("ephemeral-storage request %s; the emptyDirs alone may hold %s", request.String(), emptyDirs.String())
			}
			if limit, ok := res.Limits[corev1.ResourceEphemeralStorage]; ok && limit.Cmp(request) < 0 {
				t.Errorf("ephemeral-storage limit %s below the request %s", limit.String(), request.String())
			}
		})
	}
}
