package chartcheck

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/registry-cos/cos/costest"
)

// repoRoot is the registry-cos repository, where `make image` runs.
const repoRoot = "../.."

// TestImageUnderRunc runs the image as the chart runs it, with the tools a
// node has: `make image` builds it (this machine's platform only), skopeo
// picks the platform's image out of the layout and umoci unpacks it into a
// bundle, and runc runs it with the Deployment's securityContext (its uid
// and gid, no capabilities, no new privileges, a read-only root), its
// arguments and environment, the ConfigMap's config.yml mounted read-only
// at /etc/registry and /tmp as its emptyDir. The registry stores on the COS
// emulator and serves a push and a pull; every line it logs is JSON and
// none is an error.
//
// Differences from a pod, for a test on one machine: the container shares
// the host's network namespace (it reaches the emulator on 127.0.0.1), so
// it listens on free ports given by REGISTRY_HTTP_ADDR and
// REGISTRY_HTTP_DEBUG_ADDR instead of 5000 and 5001; no seccomp profile.
func TestImageUnderRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("runc needs root; CI runs as root")
		}
		t.Skip("runc needs root")
	}
	runc := tool(t, "RUNC", "runc")
	umoci := tool(t, "UMOCI", "umoci")
	skopeo := tool(t, "SKOPEO", "skopeo")

	// The image, as `make image` builds it.
	version := "v0.0.0-chartcheck"
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", repoRoot, "image", "DIST="+dist, "VERSION="+version,
		"IMAGE_PLATFORMS=linux/"+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	work := t.TempDir()
	single := filepath.Join(work, "oci")
	if out, err := run(t, nil, skopeo, "copy", "oci:"+filepath.Join(dist, "image")+":"+version, "oci:"+single+":registry-cos"); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	bundle := filepath.Join(work, "bundle")
	if out, err := run(t, nil, umoci, "unpack", "--image", single+":registry-cos", bundle); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}

	// The chart's objects, with keys of the emulator.
	emulator, err := costest.NewServer(costest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emulator.Close() })
	r := renderObjects(t, "", map[string]any{
		"cos": map[string]any{"bucket": emulator.Bucket, "region": emulator.Region, "endpoint": emulator.URL},
		"credentials": map[string]any{
			"mode": "secret", "secretId": emulator.SecretID, "secretKey": emulator.SecretKey,
		},
	})
	pod := r.deployment(t).Spec.Template.Spec
	container := r.container(t)
	configDir := filepath.Join(work, "config")
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range r.all("ConfigMap")[0].(*corev1.ConfigMap).Data {
		if err := os.WriteFile(filepath.Join(configDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr, debugAddr := freeAddr(t), freeAddr(t)
	env := podEnv(t, r, container)
	env = append(env, "REGISTRY_HTTP_ADDR="+addr, "REGISTRY_HTTP_DEBUG_ADDR="+debugAddr)
	uid, gid := configureBundle(t, bundle, pod, container, configDir, env)

	// runc, as the node's runtime would start it.
	id := "registry-cos-chartcheck-" + strconv.Itoa(os.Getpid())
	state := filepath.Join(work, "runc")
	logs := &lockedLines{}
	runcCmd := exec.Command(runc, "--root", state, "run", "--bundle", bundle, id)
	runcCmd.Stdout, runcCmd.Stderr = logs, logs
	if err := runcCmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- runcCmd.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command(runc, "--root", state, "kill", id, "KILL").Run()
		<-exited
		_ = exec.Command(runc, "--root", state, "delete", "--force", id).Run()
	})
	waitReady(t, "http://"+addr+"/v2/", exited, logs)

	// The process runs as the securityContext says.
	out, err := exec.Command(runc, "--root", state, "state", id).Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"Uid":    fmt.Sprintf("%d\t%d\t%d\t%d", uid, uid, uid, uid),
		"Gid":    fmt.Sprintf("%d\t%d\t%d\t%d", gid, gid, gid, gid),
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1",
	} {
		if got := statusField(string(status), field); got != want {
			t.Errorf("the registry's %s is %q, want %q", field, got, want)
		}
	}

	// A push and a pull, through the registry, to COS and back.
	ref, err := name.ParseReference(addr+"/chartcheck/random:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v\n%s", err, logs)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, logs)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // the blob, redirected to the emulator
		if err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		rc.Close()
	}
	want, _ := img.Digest()
	got, _ := pulled.Digest()
	if got != want || len(layers) != 3 {
		t.Fatalf("pulled %s with %d layers, pushed %s with 3", got, len(layers), want)
	}
	if emulator.Stats().Count("PutObject") == 0 {
		t.Fatal("the push stored nothing on the emulator")
	}
	resp, err := http.Get("http://" + debugAddr + "/metrics")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the debug listener's /metrics: %v %v", err, resp)
	}
	resp.Body.Close()

	// Every line JSON (no "unrecognized environment variable" line before
	// the log starts, no plain-text access log), and no error but the
	// registry's own record of a client's 4xx (a push asks for blobs it has
	// not sent yet): no failed trace export, no failed storage call.
	for i, line := range logs.lines() {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, line)
			continue
		}
		if entry["level"] != "error" && entry["level"] != "fatal" {
			continue
		}
		status, _ := entry["http.response.status"].(float64)
		if entry["msg"] != "response completed with error" || status < 400 || status >= 500 {
			t.Errorf("log line %d is an error: %s", i+1, line)
		}
	}
	t.Logf("%d log lines; pushed and pulled %s (3 layers) as uid %d", len(logs.lines()), want, uid)
}

// podEnv is the container's environment as the kubelet would set it: the
// image's, then the Deployment's, Secret references resolved from the
// rendered Secrets.
func podEnv(t *testing.T, r rendered, container corev1.Container) []string {
	t.Helper()
	secrets := map[string]map[string]string{}
	for _, o := range r.all("Secret") {
		s := o.(*corev1.Secret)
		secrets[s.Name] = map[string]string{}
		for k, v := range s.Data {
			secrets[s.Name][k] = string(v)
		}
		for k, v := range s.StringData {
			secrets[s.Name][k] = v
		}
	}
	var env []string
	for _, e := range container.Env {
		value := e.Value
		if ref := e.ValueFrom; ref != nil {
			if ref.SecretKeyRef == nil {
				t.Fatalf("env %s: only Secret references are resolved here", e.Name)
			}
			v, ok := secrets[ref.SecretKeyRef.Name][ref.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("env %s reads %s/%s, not rendered", e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
			}
			value = v
		}
		env = append(env, e.Name+"="+value)
	}
	return env
}

// configureBundle rewrites umoci's config.json as the pod spec says, and
// returns the uid and gid the process runs as.
func configureBundle(t *testing.T, bundle string, pod corev1.PodSpec, container corev1.Container, configDir string, env []string) (int64, int64) {
	t.Helper()
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	podSC, sc := pod.SecurityContext, container.SecurityContext
	if podSC == nil || podSC.RunAsUser == nil || podSC.RunAsGroup == nil || sc == nil ||
		sc.ReadOnlyRootFilesystem == nil || sc.AllowPrivilegeEscalation == nil || sc.Capabilities == nil {
		t.Fatalf("the Deployment's securityContext does not say uid, gid, root filesystem, privilege escalation and capabilities: %+v %+v", podSC, sc)
	}
	if len(sc.Capabilities.Add) != 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Fatalf("capabilities %+v, want drop ALL and add none", sc.Capabilities)
	}
	uid, gid := *podSC.RunAsUser, *podSC.RunAsGroup

	process := spec["process"].(map[string]any)
	process["terminal"] = false
	process["user"] = map[string]any{"uid": uid, "gid": gid}
	process["capabilities"] = map[string]any{}
	process["noNewPrivileges"] = !*sc.AllowPrivilegeEscalation
	imageEnv := process["env"].([]any)
	for _, e := range env {
		imageEnv = append(imageEnv, e)
	}
	process["env"] = imageEnv
	// The image's entrypoint (one element, the binary) with the
	// Deployment's args in place of the image's command.
	args := []any{process["args"].([]any)[0]}
	for _, a := range container.Args {
		args = append(args, a)
	}
	process["args"] = args
	spec["root"].(map[string]any)["readonly"] = *sc.ReadOnlyRootFilesystem

	mounts := spec["mounts"].([]any)
	for _, m := range container.VolumeMounts {
		var volume *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				volume = &pod.Volumes[i]
			}
		}
		switch {
		case volume != nil && volume.ConfigMap != nil:
			opts := []any{"rbind"}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			mounts = append(mounts, map[string]any{"destination": m.MountPath, "type": "bind", "source": configDir, "options": opts})
		case volume != nil && volume.EmptyDir != nil:
			opts := []any{"nosuid", "nodev", "mode=1777"}
			if volume.EmptyDir.SizeLimit != nil {
				opts = append(opts, "size="+strconv.FormatInt(volume.EmptyDir.SizeLimit.Value(), 10))
			}
			mounts = append(mounts, map[string]any{"destination": m.MountPath, "type": "tmpfs", "source": "tmpfs", "options": opts})
		default:
			t.Fatalf("volume mount %s: a volume this check does not know", m.Name)
		}
	}
	spec["mounts"] = mounts

	// The host's network namespace: the emulator and the test are on its
	// loopback.
	linux := spec["linux"].(map[string]any)
	var namespaces []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, ns)
		}
	}
	linux["namespaces"] = namespaces

	data, err = json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return uid, gid
}

// waitReady waits until url answers 200, the container exits, or the test
// times out.
func waitReady(t *testing.T, url string, exited <-chan error, logs *lockedLines) {
	t.Helper()
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-10*time.Second))
		defer cancel()
	}
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the container exited (%v) before serving:\n%s", err, logs)
		case <-ctx.Done():
			t.Fatalf("the registry did not serve %s:\n%s", url, logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// statusField returns a field of /proc/PID/status.
func statusField(status, field string) string {
	s := bufio.NewScanner(strings.NewReader(status))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// lockedLines collects a process's output.
type lockedLines struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *lockedLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

func (l *lockedLines) lines() []string {
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}
