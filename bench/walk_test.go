package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/distribution/reference"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/gcdriver"
	"github.com/registry-cos/cos/internal/testenv"
)

// registryRoot is where the registry keeps its tree in the storage driver.
const registryRoot = "/docker/registry/v2"

// fakeDigest is a deterministic digest for seeded links.
func fakeDigest(parts ...any) digest.Digest {
	return digest.FromString(fmt.Sprint(parts...))
}

// BenchmarkTagList lists the tags of a repository with 1,000 tags, each
// with a history of 5 revisions (an index link per revision, as pushing the
// tag 5 times leaves), through the registry's API: all at once, and in
// pages of 100 following the Link header. The data is seeded straight into
// the emulator through the driver's PutContent.
func BenchmarkTagList(b *testing.B) {
	const repo, history = "bench/tags", 5
	tags := scaled(1000, 100)
	emulator := newEmulator(b, costest.Faults{})
	driver := newDriver(b, emulator)
	perTag := 1 + history
	seedObjects(b, driver, tags*perTag, func(i int) (string, []byte) {
		tag, h := fmt.Sprintf("v%04d", i/perTag), i%perTag
		dir := fmt.Sprintf("%s/repositories/%s/_manifests/tags/%s", registryRoot, repo, tag)
		if h == 0 {
			return dir + "/current/link", []byte(fakeDigest(tag, history-1))
		}
		d := fakeDigest(tag, h-1)
		return dir + "/index/sha256/" + d.Encoded() + "/link", []byte(d)
	})
	base := newRegistry(b, "cos", testenv.DriverParameters(emulator), true)

	for _, page := range []int{0, 100} {
		label := "all"
		if page > 0 {
			label = fmt.Sprintf("pages-of-%d", page)
		}
		b.Run(label, func(b *testing.B) {
			url := base + "/v2/" + repo + "/tags/list"
			if page > 0 {
				url += fmt.Sprintf("?n=%d", page)
			}
			benchmarkListing(b, emulator, url, "tags", tags)
		})
	}
}

// BenchmarkCatalog lists a registry of 1,000 repositories, each with a
// tag, its history, a revision and three layer links, through the
// registry's catalog API: all at once and in pages of 100.
func BenchmarkCatalog(b *testing.B) {
	repos := scaled(1000, 100)
	emulator := newEmulator(b, costest.Faults{})
	driver := newDriver(b, emulator)
	const perRepo = 6
	seedObjects(b, driver, repos*perRepo, func(i int) (string, []byte) {
		name := fmt.Sprintf("bench/repo-%04d", i/perRepo)
		dir := fmt.Sprintf("%s/repositories/%s", registryRoot, name)
		manifest := fakeDigest(name, "manifest")
		switch k := i % perRepo; k {
		case 0:
			return dir + "/_manifests/tags/latest/current/link", []byte(manifest)
		case 1:
			return dir + "/_manifests/tags/latest/index/sha256/" + manifest.Encoded() + "/link", []byte(manifest)
		case 2:
			return dir + "/_manifests/revisions/sha256/" + manifest.Encoded() + "/link", []byte(manifest)
		default:
			layer := fakeDigest(name, "layer", k)
			return dir + "/_layers/sha256/" + layer.Encoded() + "/link", []byte(layer)
		}
	})
	base := newRegistry(b, "cos", testenv.DriverParameters(emulator), true)

	for _, page := range []int{1000, 100} {
		b.Run(fmt.Sprintf("pages-of-%d", page), func(b *testing.B) {
			benchmarkListing(b, emulator, fmt.Sprintf("%s/v2/_catalog?n=%d", base, page), "repositories", repos)
		})
	}
}

// benchmarkListing fetches a paginated list (tags or catalog) from url,
// following Link headers, checks it has want entries, and reports the time
// and the COS requests it took.
func benchmarkListing(b *testing.B, emulator *costest.Server, url, field string, want int) {
	var stats costest.Stats
	var pages int
	b.ResetTimer()
	for range b.N {
		emulator.ResetStats()
		var got int
		got, pages = fetchList(b, url, field)
		stats = settledStats(emulator)
		if got != want {
			b.Fatalf("GET %s: %d %s, want %d", url, got, field, want)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(pages), "pages")
	reportRequests(b, "list", stats)
	b.Logf("%d %s in %d pages, COS requests:%s", want, field, pages, requestTable(stats))
}

// fetchList follows a registry list through its pages and returns how
// many entries and pages it had.
func fetchList(b *testing.B, url, field string) (entries, pages int) {
	next := url
	for next != "" {
		resp, err := httpClient.Get(next)
		if err != nil {
			b.Fatal(err)
		}
		var body map[string]json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			b.Fatalf("GET %s: %s, %v", next, resp.Status, err)
		}
		var list []string
		if raw, ok := body[field]; ok {
			if err := json.Unmarshal(raw, &list); err != nil {
				b.Fatal(err)
			}
		}
		entries += len(list)
		pages++
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			// </v2/_catalog?last=x&n=100>; rel="next"
			start, end := strings.Index(link, "<"), strings.Index(link, ">")
			if start >= 0 && end > start {
				u, err := resp.Request.URL.Parse(link[start+1 : end])
				if err != nil {
					b.Fatal(err)
				}
				next = u.String()
			}
		}
	}
	return entries, pages
}

// BenchmarkGarbageCollect runs distribution's garbage collector
// (storage.MarkAndSweep on gcdriver.Driver, what "registry-cos
// garbage-collect --upstream" runs) over
// 10,000 blobs: 200 repositories of 5 tagged manifests, each referencing a
// config and 4 layers (6,000 blobs in use), and 4,000 blobs no manifest
// references. It reports a dry run (mark, then list what would go) and the
// real run that deletes the 4,000.
func BenchmarkGarbageCollect(b *testing.B) {
	ctx := context.Background()
	repos, manifestsPerRepo, orphans := scaled(200, 20), 5, scaled(4000, 400)
	emulator := newEmulator(b, costest.Faults{})
	driver := newDriver(b, emulator)

	var dry, real time.Duration
	var dryStats, realStats costest.Stats
	var blobs int
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		blobs = seedGarbage(b, driver, i, repos, manifestsPerRepo, orphans)
		b.StartTimer()
		for _, dryRun := range []bool{true, false} {
			emulator.ResetStats()
			d, err := timed(func() error {
				// A fresh gcdriver.Driver per run, as each command run has.
				gc := gcdriver.New(driver)
				namespace, err := storage.NewRegistry(ctx, gc)
				if err != nil {
					return err
				}
				err = storage.MarkAndSweep(ctx, gc, namespace, storage.GCOpts{DryRun: dryRun, Quiet: true})
				return errors.Join(err, gc.Wait())
			})
			if err != nil {
				b.Fatalf("garbage-collect (dry run %v): %v", dryRun, err)
			}
			if dryRun {
				dry, dryStats = d, settledStats(emulator)
			} else {
				real, realStats = d, settledStats(emulator)
			}
		}
		b.StopTimer()
		if left := countBlobs(b, driver); left != blobs-orphans {
			b.Fatalf("after garbage-collect %d blobs are left, want %d", left, blobs-orphans)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(blobs), "blobs")
	b.ReportMetric(dry.Seconds(), "dry-run-s")
	b.ReportMetric(real.Seconds(), "delete-run-s")
	reportRequests(b, "dry", dryStats)
	reportRequests(b, "delete", realStats)
	b.Logf("garbage-collect over %d blobs (%d repositories, %d manifests, %d unreferenced)",
		blobs, repos, repos*manifestsPerRepo, orphans)
	b.Logf("dry run %.2fs, COS requests:%s", dry.Seconds(), requestTable(dryStats))
	b.Logf("deleting run %.2fs, COS requests:%s", real.Seconds(), requestTable(realStats))
}

// seedGarbage writes the garbage collector's data set and returns how many
// blobs it holds.
func seedGarbage(b testing.TB, driver storagedriver.StorageDriver, round, repos, manifestsPerRepo, orphans int) int {
	type object struct {
		path    string
		content []byte
	}
	var objects []object
	blob := func(content []byte) digest.Digest {
		d := digest.FromBytes(content)
		objects = append(objects, object{fmt.Sprintf("%s/blobs/sha256/%s/%s/data", registryRoot, d.Encoded()[:2], d.Encoded()), content})
		return d
	}
	type descriptor struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	blobs := 0
	for r := range repos {
		name := fmt.Sprintf("bench/gc-%d-%03d", round, r)
		for m := range manifestsPerRepo {
			content := []byte(fmt.Sprintf(`{"config":"%s/%d"}`, name, m))
			config := descriptor{"application/vnd.oci.image.config.v1+json", blob(content), int64(len(content))}
			var layers []descriptor
			for l := range 4 {
				content := []byte(fmt.Sprintf("layer %s/%d/%d", name, m, l))
				layers = append(layers, descriptor{"application/vnd.oci.image.layer.v1.tar+gzip", blob(content), int64(len(content))})
			}
			manifest, _ := json.Marshal(map[string]any{
				"schemaVersion": 2,
				"mediaType":     "application/vnd.oci.image.manifest.v1+json",
				"config":        config,
				"layers":        layers,
			})
			md := blob(manifest)
			blobs += 6
			repoDir := fmt.Sprintf("%s/repositories/%s", registryRoot, name)
			for _, l := range append(layers, config) {
				objects = append(objects, object{repoDir + "/_layers/sha256/" + l.Digest.Encoded() + "/link", []byte(l.Digest)})
			}
			dir := repoDir + "/_manifests"
			tag := fmt.Sprintf("v%d", m)
			objects = append(objects,
				object{dir + "/revisions/sha256/" + md.Encoded() + "/link", []byte(md)},
				object{dir + "/tags/" + tag + "/current/link", []byte(md)},
				object{dir + "/tags/" + tag + "/index/sha256/" + md.Encoded() + "/link", []byte(md)},
			)
		}
	}
	for o := range orphans {
		blob([]byte(fmt.Sprintf("orphan %d/%d", round, o)))
		blobs++
	}
	seedObjects(b, driver, len(objects), func(i int) (string, []byte) { return objects[i].path, objects[i].content })
	return blobs
}

// countBlobs counts the blobs left in the registry's blob store.
func countBlobs(b *testing.B, driver storagedriver.StorageDriver) int {
	n := 0
	err := driver.Walk(context.Background(), registryRoot+"/blobs", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && strings.HasSuffix(fi.Path(), "/data") {
			n++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// TestRegistryWalkListings counts the listing requests of the registry's
// own walks over one registry of 150 repositories (3 images each) and
// 1,500 unreferenced blobs: the catalog, a tag list and a garbage-collect
// dry run. Flat pages cost about a request per 1,000 keys walked; a
// listing per repository, tag or blob would blow every bound here.
func TestRegistryWalkListings(t *testing.T) {
	ctx := context.Background()
	const repos, images, orphans = 150, 3, 1500
	emulator := newEmulator(t, costest.Faults{})
	driver := newDriver(t, emulator)
	blobs := seedGarbage(t, driver, 0, repos, images, orphans)
	const tagRepo, tags, history = "bench/tags", 300, 5
	seedTags(t, driver, tagRepo, tags, history)
	namespace, err := storage.NewRegistry(ctx, driver)
	require.NoError(t, err)
	listings := func() int64 { return settledStats(emulator).Count("ListObjects") }
	pages := func(keys int) int64 { return int64((keys + 999) / 1000) }

	// Catalog: every key lies in a skipped _layers or _manifests, so the
	// cost is the pages the skips do not jump over, plus probes for the
	// "bench/gc" and "bench/gc-0" directories that names like
	// "bench/gc-0-001" leave open.
	emulator.ResetStats()
	names := make([]string, repos+10)
	n, err := namespace.Repositories(ctx, names, "")
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, repos+1, n, "repositories in the catalog")
	catalogKeys := repos*images*(5+3) + tags*(1+history) + 1
	catalog := listings()
	t.Logf("catalog of %d repositories (%d keys): %d listings", n, catalogKeys, catalog)
	require.LessOrEqual(t, catalog, pages(catalogKeys)+2, "catalog listings")

	// Tag list: 300 tags, each with its current and index directories
	// skipped.
	emulator.ResetStats()
	named, err := reference.WithName(tagRepo)
	require.NoError(t, err)
	repo, err := namespace.Repository(ctx, named)
	require.NoError(t, err)
	// The registry's paged tag list (the API's ?n=) walks; All lists.
	lister, ok := repo.Tags(ctx).(interface {
		List(ctx context.Context, limit int, last string) ([]string, error)
	})
	require.True(t, ok, "the tag store pages with List")
	all, err := lister.List(ctx, -1, "")
	require.ErrorIs(t, err, io.EOF) // the walk ran to the end
	require.Len(t, all, tags)
	tagList := listings()
	t.Logf("tag list of %d tags (%d keys): %d listings", tags, tags*(1+history), tagList)
	require.LessOrEqual(t, tagList, 2*pages(tags*(1+history)), "tag list listings")
	emulator.ResetStats()
	var paged []string
	for last := ""; ; {
		page, err := lister.List(ctx, 100, last)
		paged = append(paged, page...)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		last = page[len(page)-1]
	}
	require.Equal(t, all, paged, "tags paged 100 at a time")
	t.Logf("tag list in pages of 100: %d listings", listings())
	require.LessOrEqual(t, listings(), 4*pages(tags*(1+history)), "paged tag list listings")

	// Garbage-collect dry run: the catalog, one walk of each repository's
	// revisions and one of its layer links (the collector's own design),
	// and the blob store in flat pages.
	emulator.ResetStats()
	require.NoError(t, storage.MarkAndSweep(ctx, driver, namespace, storage.GCOpts{DryRun: true, Quiet: true}))
	gc := listings()
	t.Logf("garbage-collect over %d blobs: %d listings", blobs, gc)
	require.LessOrEqual(t, gc, catalog+2*int64(repos+1)+pages(blobs)+1, "garbage-collect listings")
}

// seedTags writes a repository of tags, each with a current link and an
// index of history revisions, and one layer link (the garbage collector
// needs every repository to have a _layers).
func seedTags(tb testing.TB, driver storagedriver.StorageDriver, repo string, tags, history int) {
	seedObjects(tb, driver, tags*(1+history)+1, func(i int) (string, []byte) {
		if i == tags*(1+history) {
			layer := fakeDigest("layer")
			return registryRoot + "/repositories/" + repo + "/_layers/sha256/" + layer.Encoded() + "/link", []byte(layer)
		}
		tag, h := fmt.Sprintf("v%04d", i/(1+history)), i%(1+history)
		dir := fmt.Sprintf("%s/repositories/%s/_manifests/tags/%s", registryRoot, repo, tag)
		d := fakeDigest(tag, h)
		if h == 0 {
			return dir + "/current/link", []byte(d)
		}
		return dir + "/index/sha256/" + d.Encoded() + "/link", []byte(d)
	})
}
