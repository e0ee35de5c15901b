package gc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/gc"
	"github.com/registry-cos/cos/internal/gcdriver"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// smallRegistry pushes, through reg's API, repos repositories of two
// images each (one base layer shared by all) and deletes the second image
// of every repository: its layer and config become garbage. It returns
// the garbage blobs.
func smallRegistry(t *testing.T, reg *registrytest.Registry, repos int) []digest.Digest {
	t.Helper()
	var garbage []digest.Digest
	keep := registrytest.NewImage(t, 1, 300)
	for i := range repos {
		repo := fmt.Sprintf("r%02d", i)
		drop := registrytest.NewImage(t, uint64(100+i), 200)
		for tag, img := range map[string]v1.Image{"keep": keep, "drop": drop} {
			if err := remote.Write(reg.Ref(t, repo+":"+tag), img); err != nil {
				t.Fatal(err)
			}
		}
		m, err := drop.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		dropDigest, _ := drop.Digest()
		if err := remote.Delete(reg.Ref(t, repo+"@"+dropDigest.String())); err != nil {
			t.Fatal(err)
		}
		garbage = append(garbage, digest.Digest(dropDigest.String()), digest.Digest(m.Config.Digest.String()), digest.Digest(m.Layers[0].Digest.String()))
	}
	return garbage
}

// TestCollectRequests counts the COS requests of a collection: a dry run
// is the listing pages of the blob store and the repository tree plus one
// read per manifest (none per tag, blob or link), fewer than distribution's
// collector makes on the caching driver; the deleting run adds one
// multi-object delete per phase and one upload listing, not a request per
// blob.
func TestCollectRequests(t *testing.T) {
	ctx := context.Background()
	pushed := testenv.StartEmulator(t, costest.Options{})
	const repos = 12
	garbage := smallRegistry(t, startRegistry(t, pushed), repos)
	// Counted on a copy: the registry confirms its upload directories'
	// deletes in the background, requests that would land in the count.
	srv := copyEmulator(t, pushed)
	d := newDriver(t, srv)

	srv.ResetStats()
	res, err := gc.Collect(ctx, d, gc.Options{DryRun: true, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	dry := srv.Stats()
	manifests := int64(repos) // the kept image's manifest in every repository
	if got := dry.Count("GetObject"); got != 1 {
		// One manifest digest, shared by every repository, read once.
		t.Errorf("the dry run read %d objects, want 1 (the one manifest)", got)
	}
	if got, lists := dry.Total(), dry.Count("ListObjects"); got != lists+1 || lists > 4 {
		t.Errorf("the dry run made %d requests (%v), want 2-4 listing pages and one read", got, dry.Requests)
	}
	if len(res.Blobs) != len(garbage) {
		t.Errorf("%d blobs eligible, want the %d garbage blobs", len(res.Blobs), len(garbage))
	}

	srv.ResetStats()
	namespace, err := storage.NewRegistry(ctx, gcdriver.New(d))
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.MarkAndSweep(ctx, gcdriver.New(d), namespace, storage.GCOpts{DryRun: true, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	upstream := srv.Stats()
	t.Logf("dry run over %d repositories (%d manifests): %d requests %v; upstream's collector on gcdriver: %d", repos, manifests, dry.Total(), dry.Requests, upstream.Total())
	if dry.Total() >= upstream.Total() {
		t.Errorf("the collector made %d requests, upstream's on gcdriver %d", dry.Total(), upstream.Total())
	}

	srv.ResetStats()
	var out, summary strings.Builder
	if _, err := gc.Collect(ctx, d, gc.Options{Out: &out, Progress: &summary}); err != nil {
		t.Fatal(err)
	}
	del := srv.Stats()
	t.Logf("deleting run: %d requests %v\n%s", del.Total(), del.Requests, summary.String())
	// Upstream's summary line, which scripts parse, and the summary on the
	// progress stream: counts, phases, the COS requests by operation.
	if line := fmt.Sprintf("%d blobs marked, %d blobs and 0 manifests eligible for deletion", len(res.Marked), len(garbage)); !strings.Contains(out.String(), line) {
		t.Errorf("the output lacks %q:\n%s", line, out.String())
	}
	for _, want := range []string{
		fmt.Sprintf("garbage-collect: %d blobs marked; %d blobs (", len(res.Marked), len(garbage)),
		fmt.Sprintf("and %d layer links deleted", len(garbage)*2/3),
		"took ", "list ", "read ", "mark ", "sweep ",
		// The counter is the process's: in this test it also counts the
		// registry's background requests to the other emulator, so only
		// its presence is checked (TestGarbageCollectCommand runs it alone).
		" COS requests (", "DeleteMultipleObjects ",
	} {
		if !strings.Contains(summary.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, summary.String())
		}
	}
	// Blobs, then layer links: a batch each; no manifests to delete.
	if got := del.Count("DeleteMultipleObjects"); got != 2 {
		t.Errorf("the deleting run sent %d multi-object deletes, want 2 (blobs, layer links)", got)
	}
	if got := del.Count("DeleteObject"); got != 0 {
		t.Errorf("the deleting run sent %d single deletes, want none", got)
	}
	for _, g := range garbage {
		if _, err := d.Stat(ctx, "/docker/registry/v2/blobs/sha256/"+g.Encoded()[:2]+"/"+g.Encoded()+"/data"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
			t.Errorf("garbage blob %s: Stat after the collection: %v, want not found", g, err)
		}
	}
	pullEveryTag(t, srv)
}

// TestMinAgeKeepsRecentWrites runs the collector as if the registry had
// just been written: with --min-age the garbage blobs, their layer links
// and (with --delete-untagged) untagged manifests are kept, and reported;
// an hour later the same collection deletes them.
func TestMinAgeKeepsRecentWrites(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, srv)
	garbage := smallRegistry(t, reg, 2)
	untagged := registrytest.NewImage(t, 7, 100)
	untaggedDigest, _ := untagged.Digest()
	if err := remote.Write(reg.Ref(t, "r00@"+untaggedDigest.String()), untagged); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, srv)
	before := storedFiles(t, d)

	var out strings.Builder
	res, err := gc.Collect(ctx, d, gc.Options{RemoveUntagged: true, MinAge: time.Hour, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 0 || len(res.Manifests) != 0 || len(res.LayerLinks) != 0 {
		t.Fatalf("within --min-age the collector deleted %d blobs, %d manifests, %d repositories' layer links", len(res.Blobs), len(res.Manifests), len(res.LayerLinks))
	}
	if len(res.KeptYoung) != len(garbage) {
		t.Errorf("%d blobs kept by --min-age, want the %d garbage blobs", len(res.KeptYoung), len(garbage))
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d blobs kept", len(garbage))) {
		t.Errorf("the output does not report the kept blobs:\n%s", out.String())
	}
	if after := storedFiles(t, d); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("a collection within --min-age changed the stored files")
	}

	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	res, err = gc.Collect(ctx, d, gc.Options{RemoveUntagged: true, MinAge: time.Hour, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	// The untagged image's manifest, config and layer go too.
	if len(res.Blobs) != len(garbage)+3 || len(res.Manifests) != 1 || len(res.KeptYoung) != 0 {
		t.Fatalf("past --min-age: %d blobs (want %d), %d manifests (want 1), %d kept (want 0)", len(res.Blobs), len(garbage)+3, len(res.Manifests), len(res.KeptYoung))
	}
	pullEveryTag(t, srv)
}

// TestFailureDeletesNothing corrupts one manifest's blob: the collection
// fails naming it, and nothing is deleted.
func TestFailureDeletesNothing(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, srv)
	smallRegistry(t, reg, 2)
	img := registrytest.NewImage(t, 9, 100)
	if err := remote.Write(reg.Ref(t, "r01:bad"), img); err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	d := newDriver(t, srv)
	if err := d.PutContent(ctx, "/docker/registry/v2/blobs/sha256/"+h.Hex[:2]+"/"+h.Hex+"/data", []byte(`{"schemaVersion": 7}`)); err != nil {
		t.Fatal(err)
	}
	before := storedFiles(t, d)
	_, err := gc.Collect(ctx, d, gc.Options{Quiet: true})
	if err == nil || !strings.Contains(err.Error(), h.String()) || !strings.Contains(err.Error(), "unrecognized manifest schema version 7") {
		t.Fatalf("collection over a corrupt manifest: %v, want an error naming %s and its schema version", err, h)
	}
	if after := storedFiles(t, d); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("a failed collection changed the stored files")
	}
}

// TestRedisEviction runs registries with the Redis blob-descriptor cache
// (a real redis-server): a collection without eviction leaves the cache
// answering for the blobs it deleted (a HEAD says 200, so a client skips
// the upload and the pull then fails); with gc.RedisEvictor the global and
// repository descriptors of every deleted blob are gone, the HEAD says
// 404, and a push of the same image afterwards pulls in full.
func TestRedisEviction(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		skip := t.Skip
		if os.Getenv("CI") != "" {
			skip = t.Fatal // in CI a skip would hide that this never ran
		}
		skip("redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)")
	}
	ctx := context.Background()
	addr := startRedis(t)
	srv := testenv.StartEmulator(t, costest.Options{})
	config := registrytest.Config(t, registrytest.Options{Parameters: testenv.DriverParameters(srv)})
	config.Redis.Options.Addrs = []string{addr}
	config.Storage["cache"] = map[string]any{"blobdescriptor": "redis"}
	reg := registrytest.Start(t, config)
	client, err := gc.RedisCache(config)
	if err != nil || client == nil {
		t.Fatalf("RedisCache: %v, %v", client, err)
	}
	defer client.Close()
	d := newDriver(t, srv)

	pushAndDelete := func(repo string, seed uint64) (v1.Image, digest.Digest) {
		img := registrytest.NewImage(t, seed, 150)
		if err := remote.Write(reg.Ref(t, repo+":v1"), img); err != nil {
			t.Fatal(err)
		}
		h, _ := img.Digest()
		if err := remote.Delete(reg.Ref(t, repo+"@"+h.String())); err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		return img, digest.Digest(m.Layers[0].Digest.String())
	}
	headStatus := func(repo string, dgst digest.Digest) int {
		resp, err := http.Head(reg.URL + "/v2/" + repo + "/blobs/" + dgst.String())
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}

	// Without eviction: the cache still vouches for a deleted blob.
	_, staleLayer := pushAndDelete("stale", 1)
	if _, err := gc.Collect(ctx, d, gc.Options{Quiet: true}); err != nil {
		t.Fatal(err)
	}
	if got := headStatus("stale", staleLayer); got != http.StatusOK {
		t.Fatalf("control: HEAD of a blob deleted without eviction: %d, want the cache's stale 200", got)
	}

	img, layer := pushAndDelete("fresh", 2)
	res, err := gc.Collect(ctx, d, gc.Options{Quiet: true, Evict: gc.RedisEvictor(client, 4)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 3 {
		t.Fatalf("%d blobs deleted, want the image's 3", len(res.Blobs))
	}
	for _, b := range res.Blobs {
		if n, err := client.Exists(ctx, "blobs::"+b.String(), "repository::fresh::blobs::"+b.String()).Result(); err != nil || n != 0 {
			t.Errorf("descriptors of deleted blob %s still in Redis (%d keys, %v)", b, n, err)
		}
		if member, err := client.SIsMember(ctx, "repository::fresh::blobs", b.String()).Result(); err != nil || member {
			t.Errorf("deleted blob %s still a member of the repository's set in Redis (%v)", b, err)
		}
	}
	if got := headStatus("fresh", layer); got != http.StatusNotFound {
		t.Fatalf("HEAD of a blob deleted with eviction: %d, want 404", got)
	}
	if err := remote.Write(reg.Ref(t, "fresh:v2"), img); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(reg.Ref(t, "fresh:v2"))
	if err == nil {
		err = pullAll(desc)
	}
	if err != nil {
		t.Fatalf("pull after the collection and a new push: %v", err)
	}
}

// startRedis starts a redis-server on a free port for the test and returns
// its address once it accepts commands.
func startRedis(t *testing.T) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	p := testenv.StartProcess(t, exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"))
	p.WaitForOutput(t, "Ready to accept connections", time.Minute)
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis-server on %s: %v", addr, err)
	}
	return addr
}
