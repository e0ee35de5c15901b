package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registry-cos/cos/costest"
)

const (
	// testHTTPSecret is shared by every test registry, so that an upload
	// started on one instance can continue on another, as behind a load
	// balancer.
	testHTTPSecret = "registry-cos-e2e-secret"
	// testChunkSize is the driver's minimum chunk size (5 MiB), so that
	// the layers of these tests span several multipart-upload parts.
	testChunkSize = 5 << 20
	// testVersion is stamped into the binary the tests build.
	testVersion = "v0.0.0-e2e"
	mib         = 1 << 20
)

func TestMain(m *testing.M) {
	// The registry logs every request, and every 404 as an error; keep test
	// output to what went wrong unless REGISTRY_COS_E2E_LOG is set.
	if os.Getenv("REGISTRY_COS_E2E_LOG") == "" {
		logrus.SetOutput(io.Discard)
	}
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// startEmulator starts a disk-backed COS emulator for one test.
func startEmulator(t *testing.T) *costest.Server {
	t.Helper()
	return startEmulatorWith(t, costest.Options{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
}

// startEmulatorWith starts a COS emulator with opts (faults, credentials,
// a memory backend when Dir is empty) for one test.
func startEmulatorWith(t *testing.T, opts costest.Options) *costest.Server {
	t.Helper()
	emulator, err := costest.NewServer(opts)
	if err != nil {
		t.Fatalf("starting the COS emulator: %v", err)
	}
	t.Cleanup(func() { _ = emulator.Close() })
	return emulator
}

// registryOptions configure a test registry.
type registryOptions struct {
	// Redirect turns on redirects of blob GET/HEAD to presigned COS URLs.
	Redirect bool
	// RootDirectory is the driver's rootdirectory parameter.
	RootDirectory string
	// MaxRetries is the driver's maxretries parameter; 0 leaves the
	// driver's default.
	MaxRetries int
}

// registryConfigYAML renders a registry configuration for the emulator, the
// way an operator would write it.
func registryConfigYAML(emulator *costest.Server, opts registryOptions) string {
	retries := ""
	if opts.MaxRetries != 0 {
		retries = fmt.Sprintf("\n    maxretries: %d", opts.MaxRetries)
	}
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
http:
  addr: 127.0.0.1:0
  secret: %q
storage:
  cos:
    secretid: %q
    secretkey: %q
    region: %q
    bucket: %q
    endpoint: %q
    rootdirectory: %q
    chunksize: %d%s
  delete:
    enabled: true
  redirect:
    disable: %t
  maintenance:
    uploadpurging:
      enabled: false
`, testHTTPSecret, emulator.SecretID, emulator.SecretKey, emulator.Region, emulator.Bucket,
		emulator.URL, opts.RootDirectory, testChunkSize, retries, !opts.Redirect)
}

// testRegistry is a registry application served on a local port.
type testRegistry struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Host is the host:port part of URL, as used in image references.
	Host string

	config *configuration.Configuration
	server *httptest.Server
	app    *handlers.App
	once   sync.Once
}

// startRegistry starts a registry on the emulator's bucket.
func startRegistry(t *testing.T, emulator *costest.Server, opts registryOptions) *testRegistry {
	t.Helper()
	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, opts)))
	if err != nil {
		t.Fatalf("parsing the registry configuration: %v", err)
	}
	app, err := newApp(context.Background(), config)
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	server := httptest.NewServer(app)
	reg := &testRegistry{
		URL:    server.URL,
		Host:   strings.TrimPrefix(server.URL, "http://"),
		config: config,
		server: server,
		app:    app,
	}
	t.Cleanup(reg.Close)
	return reg
}

// Close stops the registry, as a process shutting down would.
func (r *testRegistry) Close() {
	r.once.Do(func() {
		r.server.Close()
		_ = r.app.Shutdown()
	})
}

// ref parses an image reference on this registry.
func (r *testRegistry) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + s)
	if err != nil {
		t.Fatalf("parsing reference %q: %v", s, err)
	}
	return ref
}

// randomBytes returns n pseudo-random bytes; seed makes them reproducible
// and distinct between layers.
func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	key[2], key[3] = byte(seed>>16), byte(seed>>24)
	buf := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(buf)
	return buf
}

// newImage builds an OCI image whose layers have the given sizes.
// Distinct seeds give distinct layers.
func newImage(t *testing.T, seed uint64, layerSizes ...int) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	layers := make([]v1.Layer, 0, len(layerSizes))
	for i, size := range layerSizes {
		layers = append(layers, static.NewLayer(randomBytes(size, seed*1000+uint64(i)), types.OCILayer))
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatalf("building an image: %v", err)
	}
	// A distinct config keeps images of different seeds distinct even with
	// no layers.
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("reading the image config: %v", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{"seed": fmt.Sprint(seed)}
	cfg.Architecture, cfg.OS = "amd64", "linux"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatalf("setting the image config: %v", err)
	}
	return img
}

// newIndex builds an image index of count images for different platforms.
func newIndex(t *testing.T, seed uint64, count int, layerSizes ...int) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	archs := []string{"amd64", "arm64", "riscv64", "s390x", "ppc64le"}
	images := make([]v1.Image, 0, count)
	for i := 0; i < count; i++ {
		img := newImage(t, seed*100+uint64(i), layerSizes...)
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: archs[i%len(archs)]},
			},
		})
	}
	return idx, images
}

// push writes img to ref.
func push(t *testing.T, ref name.Reference, img v1.Image) {
	t.Helper()
	if err := remote.Write(ref, img, remote.WithContext(testContext(t))); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
}

// testContext is a context cancelled when the test ends.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mustDigest returns the manifest digest of an image or index.
func mustDigest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return h
}

// pullAndVerifyImage pulls ref and checks that its manifest is want's and
// that every blob (config and layers) read back matches its digest and
// want's content.
func pullAndVerifyImage(t *testing.T, ref name.Reference, want v1.Image) {
	t.Helper()
	if err := checkImage(testContext(t), ref, want); err != nil {
		t.Fatal(err)
	}
}

// errCorrupt marks a pull that completed but returned content other than
// what was pushed, as opposed to one that failed.
var errCorrupt = errors.New("content differs from what was pushed")

// checkImage pulls ref with opts and checks it as pullAndVerifyImage does.
// A mismatch is reported as errCorrupt; any other error is a failed pull.
func checkImage(ctx context.Context, ref name.Reference, want v1.Image, opts ...remote.Option) error {
	got, err := remote.Image(ref, append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	gotDigest, err := got.Digest()
	if err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	wantDigest, err := want.Digest()
	if err != nil {
		return err
	}
	if gotDigest != wantDigest {
		return fmt.Errorf("pulling %s: manifest digest %s, want %s: %w", ref, gotDigest, wantDigest, errCorrupt)
	}
	rawConfig, err := got.RawConfigFile()
	if err != nil {
		return fmt.Errorf("pulling the config of %s: %w", ref, err)
	}
	configName, err := want.ConfigName()
	if err != nil {
		return err
	}
	if h := sha256Hex(rawConfig); "sha256:"+h != configName.String() {
		return fmt.Errorf("config blob of %s has digest sha256:%s, want %s: %w", ref, h, configName, errCorrupt)
	}
	wantLayers, err := want.Layers()
	if err != nil {
		return err
	}
	gotLayers, err := got.Layers()
	if err != nil {
		return fmt.Errorf("layers of %s: %w", ref, err)
	}
	if len(gotLayers) != len(wantLayers) {
		return fmt.Errorf("%s has %d layers, want %d: %w", ref, len(gotLayers), len(wantLayers), errCorrupt)
	}
	for i, layer := range gotLayers {
		wantDigest, err := wantLayers[i].Digest()
		if err != nil {
			return err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return fmt.Errorf("opening layer %d (%s) of %s: %w", i, wantDigest, ref, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		// go-containerregistry verifies the digest as the layer is read and
		// reports a mismatch as a read error at the end.
		if err != nil && strings.Contains(err.Error(), "error verifying") {
			return fmt.Errorf("reading layer %d (%s) of %s after %d bytes: %v: %w", i, wantDigest, ref, n, err, errCorrupt)
		}
		if err != nil {
			return fmt.Errorf("reading layer %d (%s) of %s after %d bytes: %w", i, wantDigest, ref, n, err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != wantDigest.String() {
			return fmt.Errorf("layer %d of %s: read %d bytes with digest %s, want %s: %w", i, ref, n, got, wantDigest, errCorrupt)
		}
	}
	return nil
}

// pullAndVerifyIndex pulls an index and every image in it.
func pullAndVerifyIndex(t *testing.T, ref name.Reference, want v1.ImageIndex, images []v1.Image) {
	t.Helper()
	got, err := remote.Index(ref, remote.WithContext(testContext(t)))
	if err != nil {
		t.Fatalf("pulling index %s: %v", ref, err)
	}
	if g, w := mustDigest(t, got), mustDigest(t, want); g != w {
		t.Fatalf("index %s has digest %s, want %s", ref, g, w)
	}
	for _, img := range images {
		child, err := name.NewDigest(ref.Context().Name() + "@" + mustDigest(t, img).String())
		if err != nil {
			t.Fatal(err)
		}
		pullAndVerifyImage(t, child, img)
	}
}

// sha256Hex is the hex SHA-256 of b.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// noRedirectClient does not follow redirects, so tests can see them.
var noRedirectClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       2 * time.Minute,
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, client *http.Client, method, rawURL string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testContext(t), method, rawURL, reader)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, rawURL, err)
	}
	return resp, data
}

// expectStatus fails the test unless resp has the wanted status.
func expectStatus(t *testing.T, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, truncate(body))
	}
}

func truncate(b []byte) string {
	if len(b) > 500 {
		return string(b[:500]) + "..."
	}
	return string(b)
}

// absoluteLocation resolves a Location header against the registry base URL.
func absoluteLocation(t *testing.T, base string, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("%s %s: no Location header", resp.Request.Method, resp.Request.URL)
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	l, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("bad Location %q: %v", loc, err)
	}
	return b.ResolveReference(l).String()
}

// onRegistry points an upload location at another registry instance, as a
// load balancer sending the next request elsewhere would.
func onRegistry(t *testing.T, location string, reg *testRegistry) string {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = reg.Host
	return u.String()
}

// startUpload begins a blob upload in repo and returns its location.
func startUpload(t *testing.T, reg *testRegistry, repo string) string {
	t.Helper()
	resp, body := do(t, http.DefaultClient, http.MethodPost, reg.URL+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	expectStatus(t, resp, body, http.StatusAccepted)
	return absoluteLocation(t, reg.URL, resp)
}

// patchChunk sends one chunk at offset and checks the Range the registry
// reports afterwards. It returns the next location.
func patchChunk(t *testing.T, location string, chunk []byte, offset int64) string {
	t.Helper()
	header := http.Header{}
	header.Set("Content-Type", "application/octet-stream")
	header.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+int64(len(chunk))-1))
	resp, body := do(t, http.DefaultClient, http.MethodPatch, location, header, chunk)
	expectStatus(t, resp, body, http.StatusAccepted)
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", offset+int64(len(chunk))-1); got != want {
		t.Fatalf("PATCH of %d bytes at offset %d: Range %q, want %q", len(chunk), offset, got, want)
	}
	u, _ := url.Parse(location)
	base := u.Scheme + "://" + u.Host
	return absoluteLocation(t, base, resp)
}

// checkUploadStatus asks for the upload's progress and checks the offset.
func checkUploadStatus(t *testing.T, location string, size int64) {
	t.Helper()
	resp, body := do(t, http.DefaultClient, http.MethodGet, location, nil, nil)
	expectStatus(t, resp, body, http.StatusNoContent)
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", size-1); got != want {
		t.Fatalf("GET %s: Range %q, want %q", location, got, want)
	}
}

// finishUpload completes an upload with PUT ?digest=, with an optional last
// chunk as the body, and returns the blob's location.
func finishUpload(t *testing.T, location string, dgst digest.Digest, body []byte) {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", dgst.String())
	u.RawQuery = q.Encode()
	header := http.Header{}
	if body != nil {
		header.Set("Content-Type", "application/octet-stream")
	}
	resp, respBody := do(t, http.DefaultClient, http.MethodPut, u.String(), header, body)
	expectStatus(t, resp, respBody, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst.String() {
		t.Fatalf("PUT %s: Docker-Content-Digest %q, want %q", location, got, dgst)
	}
}

// fetchBlob GETs a blob through the registry, following a redirect when
// there is one, checks it against its digest and reports whether the
// registry redirected.
func fetchBlob(t *testing.T, reg *testRegistry, repo string, dgst digest.Digest, wantSize int) (redirected string) {
	t.Helper()
	resp, body := do(t, noRedirectClient, http.MethodGet, reg.URL+"/v2/"+repo+"/blobs/"+dgst.String(), nil, nil)
	if resp.StatusCode == http.StatusTemporaryRedirect {
		redirected = resp.Header.Get("Location")
		resp, body = do(t, noRedirectClient, http.MethodGet, redirected, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET blob %s in %s: redirect to %s answered %d: %s", dgst, repo, redirected, resp.StatusCode, truncate(body))
		}
	}
	expectStatus(t, resp, body, http.StatusOK)
	if len(body) != wantSize {
		t.Fatalf("GET blob %s in %s: %d bytes, want %d", dgst, repo, len(body), wantSize)
	}
	if got := digest.FromBytes(body); got != dgst {
		t.Fatalf("GET blob %s in %s: content has digest %s", dgst, repo, got)
	}
	return redirected
}

// headStatus returns the status of a HEAD request.
func headStatus(t *testing.T, rawURL string) int {
	t.Helper()
	resp, _ := do(t, noRedirectClient, http.MethodHead, rawURL, nil, nil)
	return resp.StatusCode
}

// listPaged walks a paginated list endpoint (tags/list or _catalog) with
// page size n, following "last" the way clients do, and returns every entry
// in order with the number of pages.
func listPaged(t *testing.T, endpoint, field string, n int) ([]string, int) {
	t.Helper()
	var all []string
	last, pages := "", 0
	for {
		u := fmt.Sprintf("%s?n=%d", endpoint, n)
		if last != "" {
			u += "&last=" + url.QueryEscape(last)
		}
		resp, body := do(t, http.DefaultClient, http.MethodGet, u, nil, nil)
		expectStatus(t, resp, body, http.StatusOK)
		pages++
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, truncate(body))
		}
		var entries []string
		if raw, ok := page[field]; ok {
			if err := json.Unmarshal(raw, &entries); err != nil {
				t.Fatalf("GET %s: %s: %v", u, field, err)
			}
		}
		if len(entries) > n {
			t.Fatalf("GET %s: %d entries, more than n=%d", u, len(entries), n)
		}
		all = append(all, entries...)
		if resp.Header.Get("Link") == "" || len(entries) == 0 {
			return all, pages
		}
		last = entries[len(entries)-1]
		if pages > 10000 {
			t.Fatalf("GET %s: pagination does not end", endpoint)
		}
	}
}

// listAll reads a list endpoint without n.
func listAll(t *testing.T, endpoint, field string) []string {
	t.Helper()
	resp, body := do(t, http.DefaultClient, http.MethodGet, endpoint, nil, nil)
	expectStatus(t, resp, body, http.StatusOK)
	var page map[string]json.RawMessage
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatalf("GET %s: %v", endpoint, err)
	}
	var entries []string
	if err := json.Unmarshal(page[field], &entries); err != nil {
		t.Fatalf("GET %s: %v", endpoint, err)
	}
	return entries
}

var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

// registryBinary builds the registry-cos binary once per test run, with
// testVersion stamped the way the Makefile stamps releases.
func registryBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "registry-cos-e2e-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "registry-cos")
		cmd := exec.Command("go", "build",
			"-ldflags", "-X github.com/distribution/distribution/v3/version.version="+testVersion,
			"-o", binaryPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatalf("building registry-cos: %v", binaryErr)
	}
	return binaryPath
}

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// registryProcess is a `registry-cos serve` subprocess.
type registryProcess struct {
	// URL is the base URL, http://127.0.0.1:PORT; Host its host:port.
	URL, Host string

	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
}

// startServeProcess runs the built binary as `registry-cos serve
// configPath` on a free local port (REGISTRY_HTTP_ADDR) with the extra
// environment variables env, and waits until it answers /v2/. The process
// is interrupted, then killed, when the test ends, and what it printed is
// logged if the test failed.
func startServeProcess(t *testing.T, configPath string, env ...string) *registryProcess {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(registryBinary(t), "serve", configPath)
	cmd.Env = append(append(os.Environ(), "REGISTRY_HTTP_ADDR="+addr), env...)
	p := &registryProcess{URL: "http://" + addr, Host: addr, cmd: cmd, out: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting registry-cos serve: %v", err)
	}
	go func() { p.exited <- cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("registry-cos serve on %s printed:\n%s", addr, p.Output())
		}
	})
	waitForHTTP(t, p.URL+"/v2/", p.exited, p.out)
	return p
}

// registry describes the process as a testRegistry, for ref and the
// upload helpers.
func (p *registryProcess) registry() *testRegistry {
	return &testRegistry{URL: p.URL, Host: p.Host}
}

// Output is everything the process printed so far, stdout and stderr.
func (p *registryProcess) Output() string { return p.out.String() }

// Kill ends the process with SIGKILL, as kill -9 does, and waits for it.
func (p *registryProcess) Kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 of registry-cos: %v", err)
	}
	<-p.exited
}

// stop interrupts the process and kills it if it has not exited in 10s.
func (p *registryProcess) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
