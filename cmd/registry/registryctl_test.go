package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

const registryctlSecret = "jobsecret01234567"

// registryctlCase is one request to the controller and the answer Harbor's
// own controller gives to it (src/registryctl of Harbor v2.16, read and
// observed: see docs/harbor.md).
type registryctlCase struct {
	name         string
	method, path string
	auth         string // the Authorization header; "" sends none
	status       int
	body         string // the exact body
	contentType  string // checked when set
	after        func(t *testing.T)
}

// TestRegistryctlContract pins every answer of `registry-cos registryctl`
// to Harbor's registry controller: the health check without
// authentication, Harbor-Secret authentication before routing (401 for
// every other path, known or not), the blob and manifest deletes Harbor's
// garbage collection calls and what they remove from the bucket (the
// blob's data, the manifest's revision link; nothing else: the other
// image still pulls), 404 with Harbor's error body for what is not there
// (GC goes on), 400 for a bad manifest digest, 500 for a bad blob digest,
// 405 for another method.
func TestRegistryctlContract(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, emulator, registryOptions{})
	kept := registrytest.NewImage(t, 230, 1000, 1100)
	// doomed shares kept's layers and adds one of its own.
	doomed, err := mutate.AppendLayers(kept, static.NewLayer(testenv.RandomBytes(1200, 231), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg.Ref(t, "harbor/app:kept"), kept)
	push(t, reg.Ref(t, "harbor/app:doomed"), doomed)
	push(t, reg.Ref(t, "library/a/b:v1"), kept)

	configPath := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{}))
	driver, err := openStorage(testContext(t), configPath)
	if err != nil {
		t.Fatal(err)
	}
	ctl := httptest.NewServer(newRegistryctlHandler(driver, registryctlSecret))
	t.Cleanup(ctl.Close)

	doomedLayers, err := doomed.Layers()
	if err != nil {
		t.Fatal(err)
	}
	onlyDoomed, err := doomedLayers[len(doomedLayers)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	doomedDigest := mustDigest(t, doomed)
	keptDigest := mustDigest(t, kept)
	blobData := blobDataPath(onlyDoomed)
	revision := "/docker/registry/v2/repositories/harbor/app/_manifests/revisions/sha256/" + doomedDigest.Hex
	nestedRevision := "/docker/registry/v2/repositories/library/a/b/_manifests/revisions/sha256/" + keptDigest.Hex
	secret := "Harbor-Secret " + registryctlSecret
	const jsonType = "application/json; charset=utf-8"
	notFound := func(path string) string {
		return fmt.Sprintf(`{"errors":[{"code":"NOT_FOUND","message":"cos: Path not found: %s"}]}`+"\n", path)
	}

	cases := []registryctlCase{
		{name: "health needs no credentials", method: http.MethodGet, path: "/api/health",
			status: http.StatusOK, body: `"healthy"`},
		{name: "health ignores a wrong credential", method: http.MethodGet, path: "/api/health", auth: "Harbor-Secret wrong",
			status: http.StatusOK, body: `"healthy"`},
		{name: "health is GET only", method: http.MethodPost, path: "/api/health",
			status: http.StatusMethodNotAllowed, body: ""},
		{name: "no credential", method: http.MethodDelete, path: "/api/registry/blob/" + onlyDoomed.String(),
			status: http.StatusUnauthorized, body: "Unauthorized\n", after: expectPresent(driver, blobData)},
		{name: "core's secret is not the jobservice's", method: http.MethodDelete, path: "/api/registry/blob/" + onlyDoomed.String(),
			auth: "Harbor-Secret coresecret0123456", status: http.StatusUnauthorized, body: "Unauthorized\n", after: expectPresent(driver, blobData)},
		{name: "the secret in another scheme", method: http.MethodDelete, path: "/api/registry/blob/" + onlyDoomed.String(),
			auth: "Bearer " + registryctlSecret, status: http.StatusUnauthorized, body: "Unauthorized\n", after: expectPresent(driver, blobData)},
		{name: "unknown path without credential", method: http.MethodGet, path: "/api/other",
			status: http.StatusUnauthorized, body: "Unauthorized\n"},
		{name: "unknown path", method: http.MethodGet, path: "/api/other", auth: secret,
			status: http.StatusNotFound, body: "404 page not found\n"},
		{name: "blob without digest", method: http.MethodDelete, path: "/api/registry/blob/", auth: secret,
			status: http.StatusNotFound, body: "404 page not found\n"},
		{name: "blob is DELETE only", method: http.MethodGet, path: "/api/registry/blob/" + onlyDoomed.String(), auth: secret,
			status: http.StatusMethodNotAllowed, body: "", after: expectPresent(driver, blobData)},
		{name: "delete blob", method: http.MethodDelete, path: "/api/registry/blob/" + onlyDoomed.String(), auth: secret,
			status: http.StatusOK, body: "", after: expectGone(driver, blobData)},
		{name: "delete blob again", method: http.MethodDelete, path: "/api/registry/blob/" + onlyDoomed.String(), auth: secret,
			status: http.StatusNotFound, body: notFound(blobData), contentType: jsonType},
		{name: "bad blob digest", method: http.MethodDelete, path: "/api/registry/blob/sha256:xyz", auth: secret,
			status: http.StatusInternalServerError, body: `{"errors":[{"code":"UNKNOWN","message":"internal server error"}]}` + "\n", contentType: jsonType},
		{name: "manifest is DELETE only", method: http.MethodPut, path: "/api/registry/harbor/app/manifests/" + doomedDigest.String(), auth: secret,
			status: http.StatusMethodNotAllowed, body: "", after: expectPresent(driver, revision)},
		{name: "manifest by tag", method: http.MethodDelete, path: "/api/registry/harbor/app/manifests/doomed", auth: secret,
			status: http.StatusBadRequest, body: `{"errors":[{"code":"BAD_REQUEST","message":"bad request: not supported reference: invalid checksum digest format"}]}` + "\n",
			contentType: jsonType, after: expectPresent(driver, revision)},
		{name: "delete manifest", method: http.MethodDelete, path: "/api/registry/harbor/app/manifests/" + doomedDigest.String(), auth: secret,
			status: http.StatusOK, body: "", after: func(t *testing.T) {
				expectGone(driver, revision)(t)
				// The registry no longer serves it; the tag's own link (Harbor
				// deletes tags through the registry API) and the other image
				// are untouched.
				if code := headStatus(t, reg.URL+"/v2/harbor/app/manifests/"+doomedDigest.String()); code != http.StatusNotFound {
					t.Errorf("HEAD of the deleted manifest: status %d, want 404", code)
				}
				expectPresent(driver, "/docker/registry/v2/repositories/harbor/app/_manifests/tags/doomed/current/link")(t)
			}},
		{name: "delete manifest again", method: http.MethodDelete, path: "/api/registry/harbor/app/manifests/" + doomedDigest.String(), auth: secret,
			status: http.StatusNotFound, body: notFound(revision), contentType: jsonType},
		{name: "delete manifest in a nested repository", method: http.MethodDelete, path: "/api/registry/library/a/b/manifests/" + keptDigest.String(), auth: secret,
			status: http.StatusOK, body: "", after: expectGone(driver, nestedRevision)},
		{name: "repository name outside the registry's grammar", method: http.MethodDelete, path: "/api/registry/harbor/../../blobs/manifests/" + keptDigest.String(), auth: secret,
			status: http.StatusNotFound, contentType: jsonType,
			body: `{"errors":[{"code":"NOT_FOUND","message":"repository \"harbor/../../blobs\": invalid reference format"}]}` + "\n"},
	}
	for _, c := range cases {
		req, err := http.NewRequestWithContext(testContext(t), c.method, ctl.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The path as sent, uncleaned, as a client that does not clean
		// paths sends it.
		req.URL.Opaque = c.path
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, body := doRequest(t, req)
		if resp.StatusCode != c.status || string(body) != c.body {
			t.Errorf("%s: %s %s: %d %q, want %d %q", c.name, c.method, c.path, resp.StatusCode, body, c.status, c.body)
		}
		if got := resp.Header.Get("Content-Type"); c.contentType != "" && got != c.contentType {
			t.Errorf("%s: Content-Type %q, want %q", c.name, got, c.contentType)
		}
		if c.after != nil {
			c.after(t)
		}
	}
	pullAndVerifyImage(t, reg.Ref(t, "harbor/app:kept"), kept)
}

// expectPresent checks that path is in storage.
func expectPresent(driver storagedriver.StorageDriver, path string) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if _, err := driver.Stat(context.Background(), path); err != nil {
			t.Errorf("%s: %v, want it in storage", path, err)
		}
	}
}

// expectGone checks that nothing is stored at or under path.
func expectGone(driver storagedriver.StorageDriver, path string) func(*testing.T) {
	return func(t *testing.T) {
		t.Helper()
		_, err := driver.Stat(context.Background(), path)
		if notFound := (storagedriver.PathNotFoundError{}); !errors.As(err, &notFound) {
			t.Errorf("%s: Stat answered %v, want it deleted", path, err)
		}
	}
}

// blobDataPath is the directory of a blob's data, what Harbor's controller
// deletes.
func blobDataPath(d v1.Hash) string {
	return fmt.Sprintf("/docker/registry/v2/blobs/%s/%s/%s", d.Algorithm, d.Hex[:2], d.Hex)
}

// doRequest sends req and returns the response with its body read.
func doRequest(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// TestRegistryctlCommand runs `registry-cos registryctl -c FILE` as Harbor
// runs its controller: the configuration file in Harbor's layout, PORT,
// REGISTRY_CONFIG and JOBSERVICE_SECRET from the environment overriding
// it, and a REGISTRY_STORAGE_COS_* variable applied to the registry
// configuration (the file names a bucket that does not exist); a delete
// through the process removes the blob from the bucket. Bad configurations
// stop it with one line naming what is wrong.
func TestRegistryctlCommand(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, emulator, registryOptions{})
	img := registrytest.NewImage(t, 232, 1000)
	push(t, reg.Ref(t, "harbor/cmd:v1"), img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	registryConfig := filepath.Join(dir, "registry.yml")
	wrongBucket := strings.Replace(registryConfigYAML(emulator, registryOptions{}), emulator.Bucket, "missing-1250000000", 1)
	if err := os.WriteFile(registryConfig, []byte(wrongBucket), 0o600); err != nil {
		t.Fatal(err)
	}
	ctlConfig := filepath.Join(dir, "registryctl.yml")
	if err := os.WriteFile(ctlConfig, []byte("---\nprotocol: \"http\"\nport: 1\nlog_level: info\nregistry_config: \"/nonexistent/config.yml\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	cmd := exec.Command(registryBinary(t), "registryctl", "-c", ctlConfig)
	cmd.Env = append(os.Environ(), "PORT="+port, "REGISTRY_CONFIG="+registryConfig,
		"JOBSERVICE_SECRET="+registryctlSecret, "REGISTRY_STORAGE_COS_BUCKET="+emulator.Bucket)
	proc := testenv.StartProcess(t, cmd)
	proc.WaitForHTTP(t, "http://"+addr+"/api/health", 30*time.Second)

	req, err := http.NewRequestWithContext(testContext(t), http.MethodDelete, "http://"+addr+"/api/registry/blob/"+layer.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Harbor-Secret "+registryctlSecret)
	resp, body := doRequest(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE blob through the process: %d %s", resp.StatusCode, body)
	}
	configPath := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{}))
	driver, err := openStorage(testContext(t), configPath)
	if err != nil {
		t.Fatal(err)
	}
	expectGone(driver, blobDataPath(layer))(t)
	if err := proc.Stop(10 * time.Second); err != nil {
		t.Errorf("registryctl did not stop cleanly on an interrupt: %v", err)
	}

	for _, c := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no configuration", []string{"registryctl"}, nil, "no registryctl configuration file given (-c FILE)"},
		{"no secret", []string{"registryctl", "-c", ctlConfig}, []string{"JOBSERVICE_SECRET="}, "JOBSERVICE_SECRET is not set"},
		{"bad protocol", []string{"registryctl", "-c", ctlConfig}, []string{"REGISTRYCTL_PROTOCOL=ftp"}, `protocol "ftp", want http or https`},
		{"missing registry configuration", []string{"registryctl", "-c", ctlConfig}, []string{"JOBSERVICE_SECRET=x"}, "/nonexistent/config.yml: no such file or directory"},
		{"the bucket of the file", []string{"registryctl", "-c", ctlConfig}, []string{"JOBSERVICE_SECRET=x", "REGISTRY_CONFIG=" + registryConfig}, "missing-1250000000"},
	} {
		cmd := exec.Command(registryBinary(t), c.args...)
		cmd.Env = append(os.Environ(), append([]string{"PORT=" + port}, c.env...)...)
		out, err := cmd.CombinedOutput()
		line := strings.TrimSpace(string(out))
		if err == nil || !strings.HasPrefix(line, "registry-cos: ") || strings.Count(line, "\n") != 0 || !strings.Contains(line, c.want) {
			t.Errorf("%s: exit %v, printed %q; want one line with %q and a non-zero exit", c.name, err, out, c.want)
		}
	}
}
