package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// migrationRoot is the rootdirectory both drivers are given: an operator
// moving from s3-aws to cos keeps the same prefix.
const migrationRoot = "/registry"

// migratedImage is one tag pushed before the migration.
type migratedImage struct {
	repo, tag string
	image     v1.Image      // nil for an index
	index     v1.ImageIndex // nil for an image
	children  []v1.Image
}

// TestMigrateFromUpstreamTree writes a registry with upstream's filesystem
// driver, copies every file of its tree into the emulator under the same
// keys (as `coscli sync` or a COS migration job would copy an s3-aws
// bucket), starts registry-cos on the bucket and pulls every tag with every
// digest checked. An upload left in progress is copied as the s3-aws driver
// leaves one in a bucket (its startedat and hashstates objects, and an open
// multipart upload at _uploads/<id>/data): its status says nothing was
// received, and sending more or finishing it gets a 416 RANGE_INVALID every
// time (the driver finds nothing to resume, so the
// upload's offset is wrong), never a 5xx, and the client's fresh upload of
// the same blob succeeds.
func TestMigrateFromUpstreamTree(t *testing.T) {
	oldDir := t.TempDir()
	old := startFilesystemRegistry(t, oldDir)

	idx, children := registrytest.NewIndex(t, 40, 2, 2*mib, 3000)
	small1, small2 := registrytest.NewImage(t, 41, 1500, 70000), registrytest.NewImage(t, 42, 900)
	large := registrytest.NewImage(t, 43, 12*mib, 2*mib) // larger than a chunk: ranged reads
	nested := registrytest.NewImage(t, 44, 4096)
	pushed := []migratedImage{
		{repo: "library/alpine", tag: "3.19", image: small1},
		{repo: "library/alpine", tag: "3.20", image: small2},
		{repo: "library/alpine", tag: "latest", image: small2},
		{repo: "mirror/alpine", tag: "3.19", image: small1}, // blobs shared across repositories
		{repo: "team/app", tag: "v1", index: idx, children: children},
		{repo: "team/app", tag: "1.2", image: large},
		{repo: "team/app", tag: "1.2.3", image: small1},
		{repo: "team/app/worker", tag: "v1-rc", image: nested},
		{repo: "team/app/worker", tag: "v1", image: nested},
	}
	for _, p := range pushed {
		ref := old.Ref(t, p.repo+":"+p.tag)
		if p.index != nil {
			if err := remote.WriteIndex(ref, p.index, remote.WithContext(testContext(t))); err != nil {
				t.Fatalf("pushing %s: %v", ref, err)
			}
			continue
		}
		push(t, ref, p.image)
	}
	// An upload the old registry never finished: 3 MiB sent, no PUT.
	pending := testenv.RandomBytes(3*mib, 45)
	location := patchChunk(t, startUpload(t, old, "team/app"), pending, 0)
	old.Close()

	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	files, bytesCopied, openUploads := copyTreeToCOS(t, oldDir, emulator)
	if openUploads != 1 {
		t.Fatalf("%d uploads in progress found in the old tree, want 1", openUploads)
	}

	reg := startRegistry(t, emulator, registryOptions{RootDirectory: migrationRoot})

	// Every repository and tag is there, in the registry's order, and every
	// tag resolves to the digest pushed, every blob reads back whole.
	verifyMigrated(t, reg, pushed)
	repos, blobs, images := map[string]bool{}, map[v1.Hash]bool{}, map[v1.Hash]bool{}
	for _, p := range pushed {
		repos[p.repo] = true
		if p.index != nil {
			images[mustDigest(t, p.index)] = true
			for _, c := range p.children {
				countBlobs(t, c, blobs)
				images[mustDigest(t, c)] = true
			}
			continue
		}
		countBlobs(t, p.image, blobs)
		images[mustDigest(t, p.image)] = true
	}
	t.Logf("migrated %d files (%d bytes) holding %d repositories, %d tags, %d manifests, %d distinct blobs; 1 upload in progress",
		files, bytesCopied, len(repos), len(pushed), len(images), len(blobs))

	// The upload the old driver left: a clean 4xx that makes the client
	// start again, the same on every try.
	for i := 0; i < 3; i++ {
		// Its status says that nothing was received.
		resp, body := do(t, http.DefaultClient, http.MethodGet, onRegistry(t, location, reg), nil, nil)
		expectStatus(t, resp, body, http.StatusNoContent)
		if got := resp.Header.Get("Range"); got != "0-0" {
			t.Fatalf("status of the upload left by the old driver: Range %q, want 0-0 (nothing to resume)", got)
		}
		header := http.Header{"Content-Type": {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", len(pending), len(pending)+1023)}}
		resp, body = do(t, http.DefaultClient, http.MethodPatch, onRegistry(t, location, reg), header, testenv.RandomBytes(1024, 46))
		expectStaleUploadRefused(t, resp, body)
	}
	dgst := digest.FromBytes(pending)
	u, _ := url.Parse(onRegistry(t, location, reg))
	q := u.Query()
	q.Set("digest", dgst.String())
	u.RawQuery = q.Encode()
	resp, body := do(t, http.DefaultClient, http.MethodPut, u.String(), nil, nil)
	expectStaleUploadRefused(t, resp, body)
	// The client's restart: a new upload of the same content succeeds.
	restart := startUpload(t, reg, "team/app")
	finishUpload(t, restart, dgst, pending)
	fetchBlob(t, reg, "team/app", dgst, len(pending))
	// Pushing after the migration works like before it.
	push(t, reg.Ref(t, "team/app:v3"), registrytest.NewImage(t, 47, 6*mib))
}

// expectStaleUploadRefused checks the answer the registry gives for an upload it
// cannot resume: 416 RANGE_INVALID, a final client error (not retried as a
// 5xx is) after which clients start a new upload.
func expectStaleUploadRefused(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || !bytes.Contains(body, []byte("RANGE_INVALID")) {
		t.Fatalf("%s of the upload left by the old driver: status %d, body %s; want 416 RANGE_INVALID",
			resp.Request.Method, resp.StatusCode, truncate(body))
	}
}

// countBlobs adds the config and layer digests of img to blobs.
func countBlobs(t *testing.T, img v1.Image, blobs map[v1.Hash]bool) {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	blobs[cfg] = true
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		blobs[mustDigest(t, l)] = true
	}
}

// startFilesystemRegistry starts an upstream registry on the filesystem
// driver, with the HTTP secret the registry-cos instances use (an operator
// keeps it across the migration).
func startFilesystemRegistry(t *testing.T, dir string) *registrytest.Registry {
	t.Helper()
	return serveConfig(t, registrytest.Config(t, registrytest.Options{
		Driver:     "filesystem",
		Parameters: map[string]any{"rootdirectory": filepath.Join(dir, migrationRoot)},
	}))
}

// copyTreeToCOS puts every file under dir into the emulator's bucket at the
// key of its path relative to dir, with the official COS SDK. The data file
// of an upload in progress becomes what the s3-aws driver leaves instead of
// an object: an open multipart upload at that key with the bytes as a part.
func copyTreeToCOS(t *testing.T, dir string, emulator *costest.Server) (files int, size int64, openUploads int) {
	t.Helper()
	client := emulator.Client()
	ctx := testContext(t)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, strings.TrimPrefix(migrationRoot, "/")+"/docker/registry/v2/") {
			return fmt.Errorf("unexpected file %s outside the upstream tree", key)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		size += int64(len(data))
		if strings.Contains(key, "/_uploads/") && strings.HasSuffix(key, "/data") {
			openUploads++
			initiated, _, err := client.Object.InitiateMultipartUpload(ctx, key, nil)
			if err != nil {
				return fmt.Errorf("initiating the multipart upload of %s: %w", key, err)
			}
			_, err = client.Object.UploadPart(ctx, key, initiated.UploadID, 1, bytes.NewReader(data), nil)
			return err
		}
		_, err = client.Object.Put(ctx, key, bytes.NewReader(data), nil)
		return err
	})
	if err != nil {
		t.Fatalf("copying the tree into the bucket: %v", err)
	}
	return files, size, openUploads
}
