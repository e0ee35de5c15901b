package chartcheck

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestChartConfigsServe starts `registry-cos serve` on the configuration
// each variant renders, against the emulator, and waits for it to answer
// /v2/: the driver's HEAD Bucket must reach the bucket through the host the
// configuration names. The process's HTTPS goes through a proxy that tunnels
// every host to one TLS emulator, which keeps the Host the driver sends, so
// an endpoint COS could not route (a region host without the bucket) fails
// here as on COS. Credentials are the one thing replaced (the emulator's
// keys, given as the chart's Secret would give them; a cvmrole is dropped):
// the identity services have tests of their own.
func TestChartConfigsServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds registry-cos")
	}
	binary := buildRegistry(t)
	c := loadChart(t)
	for variant, file := range variants(t) {
		t.Run(variant, func(t *testing.T) {
			config, env := renderedConfig(t, c, file, nil)
			if out, err := serveOnEmulator(t, binary, config, env); err != nil {
				t.Fatalf("registry-cos serve did not start on %s's configuration: %v\n%s\n%s", variant, err, out, config)
			}
		})
	}
	// The check fails where COS would: the internal domain without the
	// bucket, as the chart's values once suggested.
	t.Run("endpoint without the bucket", func(t *testing.T) {
		config, env := renderedConfig(t, c, "", map[string]any{"cos": map[string]any{"endpoint": "https://cos-internal.ap-guangzhou.tencentcos.cn"}})
		out, err := serveOnEmulator(t, binary, config, env)
		if err == nil || !strings.Contains(out, "names no bucket") {
			t.Fatalf("serve started, or failed for another reason (%v):\n%s", err, out)
		}
	})
}

// buildRegistry builds registry-cos from the repository's root module.
func buildRegistry(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "registry-cos")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/registry")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building registry-cos: %v\n%s", err, out)
	}
	return binary
}

// renderedConfig renders a variant and returns its config.yml and the
// container's plain environment (name=value).
func renderedConfig(t *testing.T, c *chart.Chart, file string, overrides map[string]any) (string, []string) {
	t.Helper()
	rendered, err := render(t, c, file, overrides)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	var config string
	var env []string
	for _, o := range decode(t, rendered) {
		switch v := o.value.(type) {
		case *corev1.ConfigMap:
			config = v.Data["config.yml"]
		case *appsv1.Deployment:
			for _, e := range v.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom == nil {
					env = append(env, e.Name+"="+e.Value)
				}
			}
		}
	}
	if config == "" {
		t.Fatal("no config.yml rendered")
	}
	return config, env
}

// serveOnEmulator runs `registry-cos serve` on config until it answers
// /v2/ (nil) or exits (its error), and returns what it printed.
func serveOnEmulator(t *testing.T, binary, config string, env []string) (string, error) {
	t.Helper()
	var cfg struct {
		Storage struct {
			COS map[string]any `json:"cos"`
		} `json:"storage"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatal(err)
	}
	bucket, _ := cfg.Storage.COS["bucket"].(string)
	region, _ := cfg.Storage.COS["region"].(string)
	emulator, err := costest.NewHandler(costest.Options{Bucket: bucket, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emulator.Close() })
	cosTLS := httptest.NewTLSServer(emulator)
	t.Cleanup(cosTLS.Close)
	proxy := newTunnel(t, cosTLS.Listener.Addr().String())

	// The credentials come as the chart's Secret gives them, with the
	// emulator's keys; a cvmrole, which excludes them, goes.
	var parsed map[string]any
	if err := yaml.Unmarshal([]byte(config), &parsed); err != nil {
		t.Fatal(err)
	}
	delete(parsed["storage"].(map[string]any)["cos"].(map[string]any), "cvmrole")
	data, err := yaml.Marshal(parsed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.CommandContext(t.Context(), binary, "serve", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "TENCENTCLOUD_") && !strings.HasPrefix(kv, "TKE_") &&
			!strings.HasPrefix(strings.ToUpper(kv), "HTTP_PROXY=") && !strings.HasPrefix(strings.ToUpper(kv), "HTTPS_PROXY=") && !strings.HasPrefix(strings.ToUpper(kv), "NO_PROXY=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env,
		"HTTPS_PROXY="+proxy, "HTTP_PROXY="+proxy,
		"REGISTRY_HTTP_ADDR="+addr, "REGISTRY_HTTP_DEBUG_ADDR="+freeAddr(t), "REGISTRY_HTTP_SECRET=chartcheck",
		"REGISTRY_STORAGE_COS_SECRETID="+costest.DefaultSecretID, "REGISTRY_STORAGE_COS_SECRETKEY="+costest.DefaultSecretKey,
		// The tunnel's certificate is httptest's.
		"REGISTRY_STORAGE_COS_SKIPVERIFY=true")
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err
			return out.String(), fmt.Errorf("exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return out.String(), fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if emulator.Stats().Count("HeadBucket") == 0 {
			return out.String(), fmt.Errorf("serving without having reached the bucket")
		}
		return out.String(), nil
	}
}

// newTunnel starts an HTTP proxy that answers every CONNECT with a tunnel
// to addr, and returns its URL.
func newTunnel(t *testing.T, addr string) string {
	t.Helper()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "only CONNECT", http.StatusBadGateway)
			return
		}
		dst, err := net.Dial("tcp", addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			dst.Close()
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { _, _ = io.Copy(dst, conn); dst.Close() }()
		_, _ = io.Copy(conn, dst)
		conn.Close()
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL
}
