package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// TestPushPullImage pushes an image with several layers, one of them over
// 64 MiB, and pulls it by tag and by digest from a registry that redirects
// blob pulls to COS and from one that streams them itself, both on the same
// bucket.
func TestPushPullImage(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	redirecting := startRegistry(t, emulator, registryOptions{Redirect: true})
	streaming := startRegistry(t, emulator, registryOptions{Redirect: false})

	img := registrytest.NewImage(t, 1, 1, 700<<10, 3*mib+17, 65*mib+4099)
	push(t, redirecting.Ref(t, "library/big:v1"), img)
	manifestDigest := mustDigest(t, img)

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bigDigest := digest.Digest(mustDigest(t, layers[3]).String())

	for _, tc := range []struct {
		name         string
		reg          *registrytest.Registry
		wantRedirect bool
	}{
		{"redirect", redirecting, true},
		{"no-redirect", streaming, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pullAndVerifyImage(t, tc.reg.Ref(t, "library/big:v1"), img)
			pullAndVerifyImage(t, tc.reg.Ref(t, "library/big@"+manifestDigest.String()), img)

			location := fetchBlob(t, tc.reg, "library/big", bigDigest, 65*mib+4099)
			switch {
			case tc.wantRedirect && !strings.HasPrefix(location, emulator.URL+"/"):
				t.Fatalf("GET of a blob: redirected to %q, want a presigned URL under %s", location, emulator.URL)
			case !tc.wantRedirect && location != "":
				t.Fatalf("GET of a blob with redirects disabled: redirected to %q", location)
			}
			// A HEAD of the blob answers with its size whichever way it is
			// served.
			if status := headStatus(t, tc.reg.URL+"/v2/library/big/blobs/"+bigDigest.String()); status != http.StatusOK && status != http.StatusTemporaryRedirect {
				t.Fatalf("HEAD of a blob: status %d", status)
			}
		})
	}
}

// TestPushPullImageIndex pushes a multi-platform index and pulls it, and every
// image in it, by tag and by digest.
func TestPushPullImageIndex(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true, RootDirectory: "/nested/root"})

	idx, images := registrytest.NewIndex(t, 2, 3, 4096, 1500<<10)
	if err := remote.WriteIndex(reg.Ref(t, "multi/arch:latest"), idx, remote.WithContext(testContext(t))); err != nil {
		t.Fatalf("pushing the index: %v", err)
	}
	pullAndVerifyIndex(t, reg.Ref(t, "multi/arch:latest"), idx, images)
	pullAndVerifyIndex(t, reg.Ref(t, "multi/arch@"+mustDigest(t, idx).String()), idx, images)

	// go-containerregistry resolves a platform from the index the way
	// docker pull does.
	arm, err := remote.Image(reg.Ref(t, "multi/arch:latest"),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}), remote.WithContext(testContext(t)))
	if err != nil {
		t.Fatalf("pulling linux/arm64 from the index: %v", err)
	}
	if got, want := mustDigest(t, arm), mustDigest(t, images[1]); got != want {
		t.Fatalf("linux/arm64 resolved to %s, want %s", got, want)
	}
}

// TestChunkedUploadUnevenPatches uploads one blob in PATCH requests of
// uneven sizes, several under COS's 1 MiB part minimum, checking the offset
// after each, then rejects a PATCH at the wrong offset.
func TestChunkedUploadUnevenPatches(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true})

	sizes := []int{700 << 10, 1, 3*mib + 17, 100 << 10, 5*mib + 123, 6 * mib, 200 << 10, 11*mib + 5}
	total := 0
	for _, s := range sizes {
		total += s
	}
	blob := testenv.RandomBytes(total, 3)
	dgst := digest.FromBytes(blob)

	location := startUpload(t, reg, "chunked/blob")
	offset := 0
	for _, size := range sizes {
		location = patchChunk(t, location, blob[offset:offset+size], int64(offset))
		offset += size
		checkUploadStatus(t, location, int64(offset))
	}

	// A chunk that does not start at the current offset is refused and
	// leaves the upload as it was.
	header := http.Header{}
	header.Set("Content-Type", "application/octet-stream")
	header.Set("Content-Range", fmt.Sprintf("%d-%d", offset+10, offset+19))
	resp, body := do(t, http.DefaultClient, http.MethodPatch, location, header, make([]byte, 10))
	expectStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
	checkUploadStatus(t, location, int64(offset))

	finishUpload(t, location, dgst, nil)
	fetchBlob(t, reg, "chunked/blob", dgst, total)
}

// TestMonolithicUpload stores blobs with a POST and one PUT carrying the
// whole body, as containerd does. (Distribution has no single-request POST
// upload: it answers POST ?digest= with 202 and an upload session.)
func TestMonolithicUpload(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{})

	for _, size := range []int{0, 32, 1*mib - 1, 7*mib + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			blob := testenv.RandomBytes(size, uint64(5+size))
			dgst := digest.FromBytes(blob)
			location := startUpload(t, reg, "mono/blob")
			finishUpload(t, location, dgst, blob)
			fetchBlob(t, reg, "mono/blob", dgst, size)
		})
	}
}

// TestCrossRepositoryMount mounts the blobs of an image pushed to one
// repository into another without uploading them again.
func TestCrossRepositoryMount(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true})

	img := registrytest.NewImage(t, 6, 300<<10, 2*mib)
	push(t, reg.Ref(t, "source/app:1"), img)
	layers, _ := img.Layers()
	configName, _ := img.ConfigName()
	blobs := []v1.Hash{configName}
	for _, l := range layers {
		blobs = append(blobs, mustDigest(t, l))
	}
	for _, b := range blobs {
		if status := headStatus(t, reg.URL+"/v2/target/app/blobs/"+b.String()); status != http.StatusNotFound {
			t.Fatalf("HEAD %s in target before the mount: status %d, want 404", b, status)
		}
		resp, body := do(t, http.DefaultClient, http.MethodPost,
			reg.URL+"/v2/target/app/blobs/uploads/?mount="+b.String()+"&from=source/app", nil, nil)
		expectStatus(t, resp, body, http.StatusCreated)
		if got := resp.Header.Get("Docker-Content-Digest"); got != b.String() {
			t.Fatalf("mount of %s: Docker-Content-Digest %q", b, got)
		}
	}
	// Every blob is now present, so this push only writes the manifest.
	push(t, reg.Ref(t, "target/app:1"), img)
	pullAndVerifyImage(t, reg.Ref(t, "target/app:1"), img)

	// go-containerregistry mounts on its own when it knows the source.
	source, err := remote.Image(reg.Ref(t, "source/app:1"), remote.WithContext(testContext(t)))
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg.Ref(t, "other/app:1"), source)
	pullAndVerifyImage(t, reg.Ref(t, "other/app:1"), img)
}

// TestTagListAndCatalogPagination pages through more than 100 tags and more
// than 100 repositories with n and last. Tags 1.2, 1.2.3, v1 and v1-rc are
// the ones a walk in raw key order drops when paging with n=1.
func TestTagListAndCatalogPagination(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{})

	img := registrytest.NewImage(t, 7, 1024)
	push(t, reg.Ref(t, "paging/base:seed"), img)
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mediaType, _ := img.MediaType()
	putManifest := func(repo, tag string) {
		t.Helper()
		header := http.Header{}
		header.Set("Content-Type", string(mediaType))
		resp, body := do(t, http.DefaultClient, http.MethodPut, reg.URL+"/v2/"+repo+"/manifests/"+tag, header, manifest)
		expectStatus(t, resp, body, http.StatusCreated)
	}

	wantTags := []string{"1.2", "1.2.3", "1.2-x", "1.20", "v1", "v1-rc", "v1.0", "v10", "latest", "seed"}
	for i := 0; i < 100; i++ {
		wantTags = append(wantTags, fmt.Sprintf("t%03d", i))
	}
	for _, tag := range wantTags {
		if tag != "seed" {
			putManifest("paging/base", tag)
		}
	}

	t.Run("tags", func(t *testing.T) {
		endpoint := reg.URL + "/v2/paging/base/tags/list"
		full := listAll(t, endpoint, "tags")
		if got, want := sorted(full), sorted(wantTags); !slices.Equal(got, want) {
			t.Fatalf("tags/list returned %d tags %v, want %d %v", len(got), got, len(want), want)
		}
		for _, n := range []int{1, 2, 7, 100} {
			paged, pages := listPaged(t, endpoint, "tags", n)
			if !slices.Equal(paged, full) {
				t.Fatalf("tags/list with n=%d over %d pages returned %d tags, want the %d of the unpaged list;\n got %v\nwant %v",
					n, pages, len(paged), len(full), paged, full)
			}
		}
		// go-containerregistry follows the Link headers.
		listed, err := remote.List(reg.Ref(t, "paging/base").Context(), remote.WithPageSize(9), remote.WithContext(testContext(t)))
		if err != nil {
			t.Fatalf("remote.List: %v", err)
		}
		if !slices.Equal(sorted(listed), sorted(wantTags)) {
			t.Fatalf("remote.List returned %d tags, want %d", len(listed), len(wantTags))
		}
	})

	wantRepos := []string{"paging/base"}
	for i := 0; i < 102; i++ {
		wantRepos = append(wantRepos, fmt.Sprintf("repo%03d", i))
	}
	// Names whose order differs between raw key order and path order.
	wantRepos = append(wantRepos, "lib/a", "lib-a", "lib.a", "lib/a/b", "lib0")
	configName, _ := img.ConfigName()
	layers, _ := img.Layers()
	blobs := []v1.Hash{configName, mustDigest(t, layers[0])}
	for _, repo := range wantRepos[1:] {
		for _, b := range blobs {
			resp, body := do(t, http.DefaultClient, http.MethodPost,
				reg.URL+"/v2/"+repo+"/blobs/uploads/?mount="+b.String()+"&from=paging/base", nil, nil)
			expectStatus(t, resp, body, http.StatusCreated)
		}
		putManifest(repo, "latest")
	}

	t.Run("catalog", func(t *testing.T) {
		endpoint := reg.URL + "/v2/_catalog"
		// Without n the catalog pages by 100; n=1000 is its maximum.
		full, pages := listPaged(t, endpoint, "repositories", 1000)
		if pages != 1 {
			t.Fatalf("_catalog with n=1000 took %d pages for %d repositories", pages, len(full))
		}
		if got, want := sorted(full), sorted(wantRepos); !slices.Equal(got, want) {
			t.Fatalf("_catalog returned %d repositories %v, want %d %v", len(got), got, len(want), want)
		}
		for _, n := range []int{1, 10, 50} {
			paged, pages := listPaged(t, endpoint, "repositories", n)
			if !slices.Equal(paged, full) {
				t.Fatalf("_catalog with n=%d over %d pages returned %d repositories, want the %d of the unpaged list;\n got %v\nwant %v",
					n, pages, len(paged), len(full), paged, full)
			}
		}
		registryName, err := name.NewRegistry(reg.Host)
		if err != nil {
			t.Fatal(err)
		}
		catalog, err := remote.Catalog(testContext(t), registryName)
		if err != nil {
			t.Fatalf("remote.Catalog: %v", err)
		}
		if !slices.Equal(sorted(catalog), sorted(wantRepos)) {
			t.Fatalf("remote.Catalog returned %d repositories, want %d", len(catalog), len(wantRepos))
		}
	})
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

// TestDeleteManifestAndBlob deletes a tag, a manifest by digest and a blob,
// and checks each is gone while the rest stays pullable.
func TestDeleteManifestAndBlob(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true})

	keep := registrytest.NewImage(t, 8, 1000, 2000)
	drop := registrytest.NewImage(t, 9, 3000)
	push(t, reg.Ref(t, "del/app:keep"), keep)
	push(t, reg.Ref(t, "del/app:drop"), drop)
	push(t, reg.Ref(t, "del/app:alias"), keep)

	// Delete a tag: the manifest stays reachable by digest and other tags.
	resp, body := do(t, http.DefaultClient, http.MethodDelete, reg.URL+"/v2/del/app/manifests/alias", nil, nil)
	expectStatus(t, resp, body, http.StatusAccepted)
	if status := headStatus(t, reg.URL+"/v2/del/app/manifests/alias"); status != http.StatusNotFound {
		t.Fatalf("HEAD of a deleted tag: status %d, want 404", status)
	}
	pullAndVerifyImage(t, reg.Ref(t, "del/app:keep"), keep)

	// Delete a manifest by digest: its tag goes with it.
	dropDigest := mustDigest(t, drop).String()
	resp, body = do(t, http.DefaultClient, http.MethodDelete, reg.URL+"/v2/del/app/manifests/"+dropDigest, nil, nil)
	expectStatus(t, resp, body, http.StatusAccepted)
	for _, ref := range []string{"drop", dropDigest} {
		if status := headStatus(t, reg.URL+"/v2/del/app/manifests/"+ref); status != http.StatusNotFound {
			t.Fatalf("HEAD manifest %s after deleting it: status %d, want 404", ref, status)
		}
	}
	tags := listAll(t, reg.URL+"/v2/del/app/tags/list", "tags")
	if !slices.Equal(sorted(tags), []string{"keep"}) {
		t.Fatalf("tags after the deletes: %v, want [keep]", tags)
	}

	// Delete a blob: it is gone from the repository.
	dropLayers, _ := drop.Layers()
	layerDigest := mustDigest(t, dropLayers[0]).String()
	resp, body = do(t, http.DefaultClient, http.MethodDelete, reg.URL+"/v2/del/app/blobs/"+layerDigest, nil, nil)
	expectStatus(t, resp, body, http.StatusAccepted)
	if status := headStatus(t, reg.URL+"/v2/del/app/blobs/"+layerDigest); status != http.StatusNotFound {
		t.Fatalf("HEAD of a deleted blob: status %d, want 404", status)
	}
	pullAndVerifyImage(t, reg.Ref(t, "del/app:keep"), keep)
}

// TestGarbageCollectDeleteUntagged runs `registry-cos garbage-collect
// --delete-untagged` and checks that exactly the blobs no tagged image
// references are removed and that tagged images stay pullable.
func TestGarbageCollectDeleteUntagged(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true, RootDirectory: "gc"})

	tagged := registrytest.NewImage(t, 10, 1100, 1200)
	shared := registrytest.NewImage(t, 11, 1300)
	untagged := registrytest.NewImage(t, 12, 1400, 1500)
	push(t, reg.Ref(t, "gc/app:tagged"), tagged)
	push(t, reg.Ref(t, "gc/other:v1"), shared)
	// Pushed under a tag that then moves to another image: untagged.
	push(t, reg.Ref(t, "gc/app:moving"), untagged)
	push(t, reg.Ref(t, "gc/app:moving"), shared)
	// A blob uploaded without any manifest.
	orphan := testenv.RandomBytes(4096, 13)
	orphanDigest := digest.FromBytes(orphan)
	finishUpload(t, startUpload(t, reg, "gc/app"), orphanDigest, orphan)

	before := storedBlobs(t, reg)
	want := map[string]bool{}
	for d := range before {
		want[d] = true
	}
	removed := append(imageBlobs(t, untagged), orphanDigest.String())
	for _, d := range removed {
		if !before[d] {
			t.Fatalf("blob %s is not in storage before the collection", d)
		}
		delete(want, d)
	}
	// The untagged image's layers are its own; its config and manifest too.
	for _, d := range append(imageBlobs(t, tagged), imageBlobs(t, shared)...) {
		if !want[d] {
			t.Fatalf("blob %s of a tagged image would be removed; the test images share blobs", d)
		}
	}

	configPath := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{RootDirectory: "gc"}))
	out, err := runBinary(t, "garbage-collect", "--delete-untagged", "--min-age", "0", configPath)
	if err != nil {
		t.Fatalf("registry-cos garbage-collect --delete-untagged: %v\n%s", err, out)
	}

	after := storedBlobs(t, reg)
	if !mapsEqual(after, want) {
		t.Fatalf("blobs after the collection:\n got %v\nwant %v\n(removed %v)", keys(after), keys(want), removed)
	}
	pullAndVerifyImage(t, reg.Ref(t, "gc/app:tagged"), tagged)
	pullAndVerifyImage(t, reg.Ref(t, "gc/app:moving"), shared)
	pullAndVerifyImage(t, reg.Ref(t, "gc/other:v1"), shared)
	if status := headStatus(t, reg.URL+"/v2/gc/app/manifests/"+mustDigest(t, untagged).String()); status != http.StatusNotFound {
		t.Fatalf("HEAD of the untagged manifest after the collection: status %d, want 404", status)
	}
}

// imageBlobs lists the digests of an image's manifest, config and layers.
func imageBlobs(t *testing.T, img v1.Image) []string {
	t.Helper()
	configName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{mustDigest(t, img).String(), configName.String()}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		out = append(out, mustDigest(t, l).String())
	}
	return out
}

// storedBlobs enumerates the blobs in the registry's storage through the
// cos driver.
func storedBlobs(t *testing.T, reg *registrytest.Registry) map[string]bool {
	t.Helper()
	ctx := context.Background()
	driver, err := cos.FromParameters(ctx, reg.Config.Storage.Parameters())
	if err != nil {
		t.Fatalf("cos.FromParameters: %v", err)
	}
	namespace, err := storage.NewRegistry(ctx, driver)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string]bool{}
	err = namespace.Blobs().Enumerate(ctx, func(d digest.Digest) error {
		blobs[d.String()] = true
		return nil
	})
	if err != nil {
		t.Fatalf("enumerating blobs: %v", err)
	}
	return blobs
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestUploadAlternatingBetweenInstances sends the PATCH requests of one
// upload alternately to two registry instances on one bucket, as a load
// balancer without sticky sessions does, and finishes it on either.
func TestUploadAlternatingBetweenInstances(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	instances := []*registrytest.Registry{
		startRegistry(t, emulator, registryOptions{Redirect: true}),
		startRegistry(t, emulator, registryOptions{Redirect: true}),
	}

	sizes := []int{300 << 10, 6*mib + 7, 1, 900 << 10, 5 * mib, 2*mib + 333}
	total := 0
	for _, s := range sizes {
		total += s
	}
	blob := testenv.RandomBytes(total, 14)
	dgst := digest.FromBytes(blob)

	location := startUpload(t, instances[0], "ha/app")
	offset := 0
	for i, size := range sizes {
		location = onRegistry(t, location, instances[(i+1)%2])
		location = patchChunk(t, location, blob[offset:offset+size], int64(offset))
		offset += size
		checkUploadStatus(t, onRegistry(t, location, instances[i%2]), int64(offset))
	}
	finishUpload(t, onRegistry(t, location, instances[1]), dgst, nil)
	for _, reg := range instances {
		fetchBlob(t, reg, "ha/app", dgst, total)
	}

	// A whole image pushed through one instance pulls through the other.
	img := registrytest.NewImage(t, 15, 2000, 1100<<10)
	push(t, instances[0].Ref(t, "ha/app:v1"), img)
	pullAndVerifyImage(t, instances[1].Ref(t, "ha/app:v1"), img)
}

// TestUploadResumedAfterRestart starts an upload, shuts its registry down,
// and finishes the upload on a new registry process on the same bucket.
func TestUploadResumedAfterRestart(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	first := startRegistry(t, emulator, registryOptions{})

	sizes := []int{6*mib + 1, 512 << 10, 3 * mib, 77}
	total := 0
	for _, s := range sizes {
		total += s
	}
	blob := testenv.RandomBytes(total, 16)
	dgst := digest.FromBytes(blob)

	location := startUpload(t, first, "restart/app")
	location = patchChunk(t, location, blob[:sizes[0]], 0)
	location = patchChunk(t, location, blob[sizes[0]:sizes[0]+sizes[1]], int64(sizes[0]))
	offset := sizes[0] + sizes[1]
	first.Close()

	second := startRegistry(t, emulator, registryOptions{})
	location = onRegistry(t, location, second)
	checkUploadStatus(t, location, int64(offset))
	location = patchChunk(t, location, blob[offset:offset+sizes[2]], int64(offset))
	offset += sizes[2]
	finishUpload(t, location, dgst, blob[offset:])
	fetchBlob(t, second, "restart/app", dgst, total)
}

// TestCountsOfOnePush records what one small push costs in COS requests;
// it asserts only that the counts are there, the numbers go to the log.
func TestCountsOfOnePush(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	reg := startRegistry(t, emulator, registryOptions{Redirect: true})
	img := registrytest.NewImage(t, 17, 4096)
	emulator.ResetStats()
	push(t, reg.Ref(t, "count/app:v1"), img)
	stats := emulator.Stats()
	if stats.Total() == 0 {
		t.Fatalf("the emulator counted no requests for a push")
	}
	t.Logf("a 1-layer push cost %d COS requests: %s", stats.Total(), formatStats(stats))
	emulator.ResetStats()
	pullAndVerifyImage(t, reg.Ref(t, "count/app:v1"), img)
	stats = emulator.Stats()
	t.Logf("pulling it back (redirected) cost %d COS requests: %s", stats.Total(), formatStats(stats))
}

func formatStats(stats costest.Stats) string {
	ops := make([]string, 0, len(stats.Requests))
	for op, n := range stats.Requests {
		ops = append(ops, fmt.Sprintf("%s=%d", op, n))
	}
	sort.Strings(ops)
	return strings.Join(ops, " ")
}
