package main

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	cos "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/gc"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// preS3Bucket dates the emulator's bucket before 2024: COS lets only such
// buckets be addressed path-style, as the s3-aws driver must address an
// emulator whose address names no bucket (forcepathstyle). On COS itself
// the driver goes virtual-hosted (forcepathstyle false, regionendpoint
// https://cos.<region>.myqcloud.com), which every bucket takes.
var preS3Bucket = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)

// s3AWSConfig is the configuration of upstream's s3-aws driver on the
// emulator's bucket, as an operator on COS writes it, under migrationRoot
// with its smallest chunk size (5 MiB) so a layer spans several parts.
func s3AWSConfig(t *testing.T, emulator *costest.Server) *configuration.Configuration {
	t.Helper()
	return registrytest.Config(t, registrytest.Options{Driver: "s3", Parameters: map[string]any{
		"accesskey": emulator.SecretID, "secretkey": emulator.SecretKey, "region": emulator.Region,
		"bucket": emulator.Bucket, "regionendpoint": emulator.URL, "forcepathstyle": true, "secure": false,
		"rootdirectory": migrationRoot, "chunksize": 5 * mib,
	}})
}

// TestMigrateFromS3AWS is the migration for real: upstream's registry on
// its s3-aws driver writes the bucket over the emulator's S3-compatible
// surface (repositories, tags, an index, a layer above the chunk size, a
// cross-repository mount, an upload left half-way), then registry-cos on
// the same bucket and rootdirectory serves every tag and blob with its
// digest, takes further pushes (one moving a tag), and its garbage-collect
// removes exactly what upstream's collector removes from a copy of the same
// bucket, by default and with --delete-untagged. Then
// the way back: upstream on s3-aws serves what registry-cos wrote.
func TestMigrateFromS3AWS(t *testing.T) {
	dataDir := t.TempDir()
	emulator := testenv.StartEmulator(t, costest.Options{Dir: dataDir, BucketCreated: preS3Bucket})
	old := registrytest.Start(t, s3AWSConfig(t, emulator))

	idx, children := registrytest.NewIndex(t, 50, 2, 2*mib, 3000)
	small1, small2 := registrytest.NewImage(t, 51, 1500, 70000), registrytest.NewImage(t, 52, 900)
	large := registrytest.NewImage(t, 53, 12*mib, 2*mib) // above the 5 MiB chunk size
	nested := registrytest.NewImage(t, 54, 4096)
	pushed := []migratedImage{
		{repo: "library/alpine", tag: "3.19", image: small1},
		{repo: "library/alpine", tag: "3.20", image: small2},
		{repo: "team/app", tag: "v1", index: idx, children: children},
		{repo: "team/app", tag: "1.2", image: large},
		{repo: "team/app/worker", tag: "v1", image: nested},
	}
	ctx := testContext(t)
	for _, p := range pushed {
		ref := old.Ref(t, p.repo+":"+p.tag)
		if p.index != nil {
			if err := remote.WriteIndex(ref, p.index, remote.WithContext(ctx)); err != nil {
				t.Fatalf("pushing %s: %v", ref, err)
			}
			continue
		}
		// crane, as an operator would push.
		if err := crane.Push(p.image, ref.String(), crane.WithContext(ctx)); err != nil {
			t.Fatalf("crane push %s: %v", ref, err)
		}
	}
	// A cross-repository mount of every blob of small1, then its manifest.
	mountImage(t, old, small1, "library/alpine", "mirror/alpine")
	push(t, old.Ref(t, "mirror/alpine:3.19"), small1)
	pushed = append(pushed, migratedImage{repo: "mirror/alpine", tag: "3.19", image: small1})
	// crane round trip through upstream on s3-aws.
	pulled, err := crane.Pull(old.Ref(t, "team/app:1.2").String(), crane.WithContext(ctx))
	if err != nil {
		t.Fatalf("crane pull from s3-aws: %v", err)
	}
	if got, want := mustDigest(t, pulled), mustDigest(t, large); got != want {
		t.Fatalf("crane pull from s3-aws: %s, want %s", got, want)
	}
	// An orphan blob, for the collectors to find.
	orphan := testenv.RandomBytes(70000, 55)
	finishUpload(t, startUpload(t, old, "team/app"), digest.FromBytes(orphan), orphan)
	// An upload the old registry never finished: 3 MiB sent, no PUT.
	pending := testenv.RandomBytes(3*mib, 56)
	location := patchChunk(t, startUpload(t, old, "team/app"), pending, 0)
	old.Close()
	uploads := countOpenUploads(t, emulator)
	t.Logf("s3-aws left %d multipart uploads open", uploads)

	reg := startRegistry(t, emulator, registryOptions{RootDirectory: migrationRoot})
	verifyMigrated(t, reg, pushed)

	// The upload s3-aws left: recoverable by a client, never a 5xx.
	// Its status says nothing was received (s3-aws keeps what it received
	// in an open multipart upload, which registry-cos does not resume), and
	// finishing it is a clean 416, after which the client starts again.
	resp, body := do(t, http.DefaultClient, http.MethodGet, onRegistry(t, location, reg), nil, nil)
	expectStatus(t, resp, body, http.StatusNoContent)
	if got := resp.Header.Get("Range"); got != "0-0" {
		t.Fatalf("status of the upload s3-aws left: Range %q, want 0-0", got)
	}
	dgst := digest.FromBytes(pending)
	u := onRegistry(t, location, reg)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	resp, body = do(t, http.DefaultClient, http.MethodPut, u+sep+"digest="+dgst.String(), nil, nil)
	expectStaleUploadRefused(t, resp, body)
	restart := startUpload(t, reg, "team/app")
	finishUpload(t, restart, dgst, pending)
	fetchBlob(t, reg, "team/app", dgst, len(pending))
	// Pushes continue; one moves a tag, leaving the 12 MiB image untagged.
	newer := registrytest.NewImage(t, 57, 6*mib)
	push(t, reg.Ref(t, "team/app:v3"), newer)
	pushed = append(pushed, migratedImage{repo: "team/app", tag: "v3", image: newer})
	retagged := registrytest.NewImage(t, 59, 4000)
	push(t, reg.Ref(t, "team/app:1.2"), retagged)
	for i := range pushed {
		if pushed[i].repo == "team/app" && pushed[i].tag == "1.2" {
			pushed[i].image = retagged
		}
	}
	// Each commit's Delete of its upload directory ends in the background
	// (startedat last); the copy below must not catch it half done.
	reg.Wait(t)
	reg.Close()

	// The collectors: registry-cos garbage-collect on this bucket, upstream's
	// (storage.MarkAndSweep on the s3-aws driver) on a copy of it; first as
	// by default, then with --delete-untagged.
	blobKey := func(d digest.Digest) string {
		return strings.TrimPrefix(migrationRoot, "/") + "/docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	}
	removed, total := collectLikeUpstream(t, emulator, dataDir, storage.GCOpts{Quiet: true})
	if !slices.Contains(removed, blobKey(digest.FromBytes(orphan))) {
		t.Fatalf("the collections left the orphan blob (removed %v)", removed)
	}
	t.Logf("garbage-collect: both collectors removed the same %d of %d keys", len(removed), total)
	largeLayers, err := large.Layers()
	if err != nil {
		t.Fatal(err)
	}
	removed, total = collectLikeUpstream(t, emulator, dataDir, storage.GCOpts{Quiet: true, RemoveUntagged: true})
	if d := digest.Digest(mustDigest(t, largeLayers[0]).String()); !slices.Contains(removed, blobKey(d)) {
		t.Fatalf("--delete-untagged left the untagged image's layer %s (removed %v)", d, removed)
	}
	t.Logf("garbage-collect --delete-untagged: both collectors removed the same %d of %d keys", len(removed), total)

	// The way back: upstream on s3-aws serves what registry-cos wrote.
	back := registrytest.Start(t, s3AWSConfig(t, emulator))
	verifyMigrated(t, back, pushed)
	push(t, back.Ref(t, "team/app:v4"), registrytest.NewImage(t, 58, 3000))
}

// collectLikeUpstream runs registry-cos garbage-collect with opts on the
// emulator's bucket, and upstream's collector (storage.MarkAndSweep on the
// s3-aws driver) with the same options on a copy of it, and fails unless
// both leave the same keys. It returns the keys removed and how many there
// were.
func collectLikeUpstream(t *testing.T, emulator *costest.Server, dataDir string, opts storage.GCOpts) (removed []string, total int) {
	t.Helper()
	ctx := testContext(t)
	twin, before := copyEmulator(t, emulator, dataDir)
	cosConfig, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, registryOptions{RootDirectory: migrationRoot})))
	if err != nil {
		t.Fatal(err)
	}
	// MinAge 0 (the zero Options): the data was written moments ago.
	cosOpts := gcOptions{Options: gc.Options{DryRun: opts.DryRun, RemoveUntagged: opts.RemoveUntagged, Quiet: opts.Quiet}}
	if err := garbageCollect(ctx, cosConfig, cosOpts); err != nil {
		t.Fatalf("registry-cos garbage-collect: %v", err)
	}
	upstreamConfig := s3AWSConfig(t, twin)
	driver, err := factory.Create(ctx, upstreamConfig.Storage.Type(), upstreamConfig.Storage.Parameters())
	if err != nil {
		t.Fatal(err)
	}
	namespace, err := storage.NewRegistry(ctx, driver) // as upstream's garbage-collect command builds it
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.MarkAndSweep(ctx, driver, namespace, opts); err != nil {
		t.Fatalf("upstream garbage-collect on s3-aws: %v", err)
	}
	ours, theirs := bucketKeys(t, emulator), bucketKeys(t, twin)
	if !slices.Equal(ours, theirs) {
		t.Fatalf("after the collections the buckets differ:\nonly registry-cos kept %v\nonly upstream kept %v",
			difference(ours, theirs), difference(theirs, ours))
	}
	return difference(before, ours), len(before)
}

// verifyMigrated checks that reg lists every repository and tag pushed and
// serves each with its digests.
func verifyMigrated(t *testing.T, reg *registrytest.Registry, pushed []migratedImage) {
	t.Helper()
	wantTags := map[string][]string{}
	for _, p := range pushed {
		wantTags[p.repo] = append(wantTags[p.repo], p.tag)
	}
	var wantRepos []string
	for repo, tags := range wantTags {
		wantRepos = append(wantRepos, repo)
		slices.Sort(tags)
	}
	slices.Sort(wantRepos)
	if got := listAll(t, reg.URL+"/v2/_catalog", "repositories"); !slices.Equal(got, wantRepos) {
		t.Fatalf("catalog %q, want %q", got, wantRepos)
	}
	for repo, want := range wantTags {
		if got := listAll(t, reg.URL+"/v2/"+repo+"/tags/list", "tags"); !slices.Equal(got, want) {
			t.Errorf("tags of %s: %q, want %q", repo, got, want)
		}
	}
	for _, p := range pushed {
		ref := reg.Ref(t, p.repo+":"+p.tag)
		if p.index != nil {
			pullAndVerifyIndex(t, ref, p.index, p.children)
			continue
		}
		pullAndVerifyImage(t, ref, p.image)
	}
}

// mountImage mounts every blob of img from one repository into another
// (POST .../blobs/uploads/?mount=&from=), as docker push does across
// repositories of one registry.
func mountImage(t *testing.T, reg *registrytest.Registry, img v1.Image, from, to string) {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	digests := []v1.Hash{cfg}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		digests = append(digests, mustDigest(t, l))
	}
	for _, d := range digests {
		resp, body := do(t, http.DefaultClient, http.MethodPost,
			reg.URL+"/v2/"+to+"/blobs/uploads/?mount="+d.String()+"&from="+from, nil, nil)
		expectStatus(t, resp, body, http.StatusCreated)
	}
}

// countOpenUploads counts the multipart uploads open in the bucket.
func countOpenUploads(t *testing.T, emulator *costest.Server) int {
	t.Helper()
	res, _, err := emulator.Client().Bucket.ListMultipartUploads(testContext(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Uploads)
}

// bucketKeys lists every key of the emulator's bucket, in order.
func bucketKeys(t *testing.T, emulator *costest.Server) []string {
	t.Helper()
	var keys []string
	opt := &cos.BucketGetOptions{MaxKeys: 1000}
	for {
		res, _, err := emulator.Client().Bucket.Get(testContext(t), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Contents {
			keys = append(keys, o.Key)
		}
		if !res.IsTruncated {
			return keys
		}
		opt.Marker = res.NextMarker
	}
}

// difference is what a holds and b does not; both sorted.
func difference(a, b []string) []string {
	var out []string
	for _, k := range a {
		if _, found := slices.BinarySearch(b, k); !found {
			out = append(out, k)
		}
	}
	return out
}

// copyEmulator starts a second emulator on a copy of the first one's data
// directory and returns it with the keys both hold. The registry's
// background work (aborting the multipart uploads under a removed upload
// directory) may still change the bucket as it is copied: the copy is made
// again until it holds what the bucket holds.
func copyEmulator(t *testing.T, emulator *costest.Server, dataDir string) (*costest.Server, []string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		copyTree(t, dataDir, dir)
		twin, err := costest.NewServer(costest.Options{Dir: dir, BucketCreated: preS3Bucket})
		if err != nil {
			t.Fatal(err)
		}
		keys, twinKeys := bucketKeys(t, emulator), bucketKeys(t, twin)
		if slices.Equal(keys, twinKeys) && countOpenUploads(t, emulator) == countOpenUploads(t, twin) {
			t.Cleanup(func() { twin.Close() })
			return twin, keys
		}
		if attempt == 20 {
			t.Fatalf("the copy holds %d keys, the bucket %d", len(twinKeys), len(keys))
		}
		twin.Close()
	}
}

// copyTree copies the files under src to dst; a file removed while the
// copy runs is left out.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the emulator's data: %v", err)
	}
}
