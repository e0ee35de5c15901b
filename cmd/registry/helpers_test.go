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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

const (
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

// registryOptions configure a test registry on the emulator.
type registryOptions struct {
	// Redirect turns on redirects of blob GET/HEAD to presigned COS URLs.
	Redirect bool
	// RootDirectory is the driver's rootdirectory parameter.
	RootDirectory string
	// MaxRetries is the driver's maxretries parameter; 0 leaves the
	// driver's default.
	MaxRetries int
	// RedirectExpiry is the driver's redirectexpiry; 0 leaves the default.
	RedirectExpiry time.Duration
	// HTPasswd, when set, is the path of an htpasswd file the registry
	// authenticates every request against.
	HTPasswd string
	// Redis, when set, is the address of a Redis server the registry uses
	// as its blob-descriptor cache; else BlobCache turns on the in-memory
	// one.
	Redis     string
	BlobCache bool
	// Balanced configures a replica behind a load balancer: relative URLs
	// in Location headers and a 10s drain on SIGTERM.
	Balanced bool
}

// registryConfigYAML renders a registry configuration for the emulator, the
// way an operator would write it, with parts of testChunkSize.
func registryConfigYAML(emulator *costest.Server, opts registryOptions) string {
	params := testenv.DriverParameters(emulator)
	params["chunksize"] = testChunkSize
	if opts.RootDirectory != "" {
		params["rootdirectory"] = opts.RootDirectory
	}
	if opts.MaxRetries != 0 {
		params["maxretries"] = opts.MaxRetries
	}
	if opts.RedirectExpiry != 0 {
		params["redirectexpiry"] = opts.RedirectExpiry
	}
	config := registrytest.ConfigYAML(registrytest.Options{Parameters: params, Redirect: opts.Redirect,
		BlobDescriptorCache: opts.BlobCache || opts.Redis != ""})
	// What registrytest does not write, before the storage section (which
	// follows the http section).
	var more string
	if opts.Balanced {
		more += "  relativeurls: true\n  draintimeout: 10s\n"
	}
	if opts.HTPasswd != "" {
		more += fmt.Sprintf("auth:\n  htpasswd:\n    realm: registry-cos\n    path: %q\n", opts.HTPasswd)
	}
	if opts.Redis != "" {
		more += fmt.Sprintf("redis:\n  addrs: [%s]\n  dialtimeout: 100ms\n  readtimeout: 100ms\n  writetimeout: 100ms\n", opts.Redis)
		config = strings.Replace(config, "blobdescriptor: inmemory", "blobdescriptor: redis", 1)
	}
	return strings.Replace(config, "\nstorage:\n", "\n"+more+"storage:\n", 1)
}

// startRegistry starts a registry on the emulator's bucket, built by this
// command's newApp, in the test's process.
func startRegistry(t *testing.T, emulator *costest.Server, opts registryOptions) *registrytest.Registry {
	t.Helper()
	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, opts)))
	if err != nil {
		t.Fatalf("parsing the registry configuration: %v", err)
	}
	return serveConfig(t, config)
}

// serveConfig serves the registry of config, built by this command's
// newApp, in the test's process.
func serveConfig(t *testing.T, config *configuration.Configuration) *registrytest.Registry {
	t.Helper()
	registrytest.Track(config)
	app, err := newApp(context.Background(), config)
	if err != nil {
		t.Fatalf("starting the registry: %v", err)
	}
	return registrytest.Serve(t, config, app)
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
	return t.Context()
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

// onRegistry points an upload location at another registry instance, as a
// load balancer sending the next request elsewhere would.
func onRegistry(t *testing.T, location string, reg *registrytest.Registry) string {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = reg.Host
	return u.String()
}

// startUpload begins a blob upload in repo and returns its location.
func startUpload(t *testing.T, reg *registrytest.Registry, repo string) string {
	t.Helper()
	location, err := registrytest.StartUpload(testContext(t), http.DefaultClient, reg.URL, repo)
	if err != nil {
		t.Fatal(err)
	}
	return location
}

// patchChunk sends one chunk at offset and checks the Range the registry
// reports afterwards. It returns the next location.
func patchChunk(t *testing.T, location string, chunk []byte, offset int64) string {
	t.Helper()
	next, rng, err := registrytest.PatchUpload(testContext(t), http.DefaultClient, location, bytes.NewReader(chunk), int64(len(chunk)), offset)
	if err != nil {
		t.Fatalf("PATCH of %d bytes at offset %d: %v", len(chunk), offset, err)
	}
	if want := fmt.Sprintf("0-%d", offset+int64(len(chunk))-1); rng != want {
		t.Fatalf("PATCH of %d bytes at offset %d: Range %q, want %q", len(chunk), offset, rng, want)
	}
	return next
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
// chunk as the body, and checks the digest the registry answers.
func finishUpload(t *testing.T, location string, dgst digest.Digest, body []byte) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	if err := registrytest.FinishUpload(testContext(t), http.DefaultClient, location, dgst, reader, int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

// fetchBlob GETs a blob through the registry, following a redirect when
// there is one, checks it against its digest and size, and returns where
// the registry redirected ("" when it served the blob itself).
func fetchBlob(t *testing.T, reg *registrytest.Registry, repo string, dgst digest.Digest, wantSize int) (redirected string) {
	t.Helper()
	var blob bytes.Buffer
	n, redirected, err := registrytest.FetchBlob(testContext(t), http.DefaultClient, reg.URL, repo, dgst, &blob)
	if err != nil {
		t.Fatalf("GET blob %s in %s: %v", dgst, repo, err)
	}
	if n != int64(wantSize) {
		t.Fatalf("GET blob %s in %s: %d bytes, want %d", dgst, repo, n, wantSize)
	}
	if got := digest.FromBytes(blob.Bytes()); got != dgst {
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
		binaryErr = testenv.GoBuild(binaryPath, ".",
			"-ldflags", "-X github.com/distribution/distribution/v3/version.version="+testVersion)
	})
	if binaryErr != nil {
		t.Fatalf("building registry-cos: %v", binaryErr)
	}
	return binaryPath
}

// startServeProcess runs the built binary as `registry-cos serve
// configPath` with the extra environment variables env, and waits until it
// answers /v2/.
func startServeProcess(t *testing.T, configPath string, env ...string) *registrytest.Process {
	t.Helper()
	return registrytest.StartProcess(t, registryBinary(t), configPath, env...)
}
