package gc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/gc"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// TestSameDecisionsAsUpstream builds random registries through the
// registry's API (layers shared across repositories, indexes, retagged
// and deleted tags, deleted manifests, manifests pushed by digest only,
// referrers, cross-repository mounts, orphan uploads), copies each tree
// twice, and runs distribution's MarkAndSweep on one copy and gc.Collect on
// the other, with and without --delete-untagged: the decision lines of the
// dry runs (what is marked, every blob, manifest and layer link eligible
// for deletion) are the same lines, the trees left by the deleting runs
// are the same keys, and every tag left still pulls in full.
func TestSameDecisionsAsUpstream(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			source := testenv.StartEmulator(t, costest.Options{})
			buildRandomRegistry(t, source, seed)
			for _, untagged := range []bool{false, true} {
				t.Run(fmt.Sprintf("delete-untagged=%t", untagged), func(t *testing.T) {
					compareWithUpstream(t, source, untagged)
				})
			}
		})
	}
}

func compareWithUpstream(t *testing.T, source *costest.Server, untagged bool) {
	ctx := context.Background()
	upstreamTree, oursTree := copyEmulator(t, source), copyEmulator(t, source)
	upstreamDriver, oursDriver := newDriver(t, upstreamTree), newDriver(t, oursTree)

	want := upstreamRun(t, upstreamDriver, storage.GCOpts{DryRun: true, RemoveUntagged: untagged})
	var out strings.Builder
	res, err := gc.Collect(ctx, oursDriver, gc.Options{DryRun: true, RemoveUntagged: untagged, Out: &out})
	if err != nil {
		t.Fatalf("gc.Collect --dry-run: %v", err)
	}
	got := sortedLines(out.String())
	if !slices.Equal(got, want) {
		t.Fatalf("decision lines differ from upstream's:\n%s", lineDiff(want, got))
	}
	if len(res.Blobs) == 0 || len(res.LayerLinks) == 0 || (untagged && len(res.Manifests) == 0) {
		t.Fatalf("the random registry has nothing to collect (%d blobs, %d repositories' layer links, %d manifests): the comparison proves little", len(res.Blobs), len(res.LayerLinks), len(res.Manifests))
	}
	t.Logf("%d marked, %d blobs, %d manifests, %d repositories with layer links eligible", len(res.Marked), len(res.Blobs), len(res.Manifests), len(res.LayerLinks))

	upstreamRun(t, upstreamDriver, storage.GCOpts{RemoveUntagged: untagged})
	if _, err := gc.Collect(ctx, oursDriver, gc.Options{RemoveUntagged: untagged}); err != nil {
		t.Fatalf("gc.Collect: %v", err)
	}
	wantKeys, gotKeys := storedFiles(t, upstreamDriver), storedFiles(t, oursDriver)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Fatalf("files left differ from upstream's:\n%s", lineDiff(wantKeys, gotKeys))
	}
	pullEveryTag(t, oursTree)
}

// upstreamRun runs distribution's MarkAndSweep on d and returns the lines
// it printed, sorted (it prints the eligible blobs in map order).
func upstreamRun(t *testing.T, d storagedriver.StorageDriver, opts storage.GCOpts) []string {
	t.Helper()
	ctx := context.Background()
	namespace, err := storage.NewRegistry(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	// MarkAndSweep prints to os.Stdout and nowhere else.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	var out strings.Builder
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = io.Copy(&out, r) }()
	err = storage.MarkAndSweep(ctx, d, namespace, opts)
	os.Stdout = stdout
	_ = w.Close()
	wg.Wait()
	_ = r.Close()
	if err != nil {
		t.Fatalf("upstream MarkAndSweep: %v", err)
	}
	return sortedLines(out.String())
}

func sortedLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	sort.Strings(lines)
	return lines
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got []string) string {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var b strings.Builder
	for _, l := range want {
		if count[l] > 0 {
			fmt.Fprintf(&b, "- %s\n", l)
			count[l]--
		}
	}
	for _, l := range got {
		if count[l] < 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
			count[l]++
		}
	}
	return b.String()
}

func newDriver(t *testing.T, srv *costest.Server) *cos.Driver {
	t.Helper()
	d, err := cos.FromParameters(context.Background(), testenv.DriverParameters(srv))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// storedFiles lists every file of the registry but its upload directories.
func storedFiles(t *testing.T, d storagedriver.StorageDriver) []string {
	t.Helper()
	var files []string
	err := d.Walk(context.Background(), "/", func(fi storagedriver.FileInfo) error {
		if fi.IsDir() && strings.HasSuffix(fi.Path(), "/_uploads") {
			return storagedriver.ErrSkipDir
		}
		if !fi.IsDir() {
			files = append(files, fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// copyEmulator starts an emulator holding a copy of src's registry files.
func copyEmulator(t *testing.T, src *costest.Server) *costest.Server {
	t.Helper()
	ctx := context.Background()
	dst := testenv.StartEmulator(t, costest.Options{})
	from, to := newDriver(t, src), newDriver(t, dst)
	for _, p := range storedFiles(t, from) {
		content, err := from.GetContent(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.PutContent(ctx, p, content); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// pullEveryTag pulls every tag of every repository of srv, every blob of
// it, checked against its digest.
func pullEveryTag(t *testing.T, srv *costest.Server) {
	t.Helper()
	reg := startRegistry(t, srv)
	repos, err := remote.Catalog(context.Background(), mustRegistry(t, reg))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	pulled := 0
	for _, repo := range repos {
		tags, err := remote.List(mustRepo(t, reg, repo))
		if err != nil && strings.Contains(err.Error(), "NAME_UNKNOWN") {
			continue // a repository with no tag left
		}
		if err != nil {
			t.Fatalf("tags of %s: %v", repo, err)
		}
		for _, tag := range tags {
			ref := reg.Ref(t, repo+":"+tag)
			desc, err := remote.Get(ref)
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			if err := pullAll(desc); err != nil {
				t.Fatalf("pull %s after the collection: %v", ref, err)
			}
			pulled++
		}
	}
	if pulled == 0 {
		t.Fatal("no tag left to pull")
	}
}

// pullAll reads every blob an image or index references, each checked
// against its digest as it is read.
func pullAll(desc *remote.Descriptor) error {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, child := range m.Manifests {
			img, err := idx.Image(child.Digest)
			if err != nil {
				return err
			}
			if err := registrytest.ReadImage(img); err != nil {
				return err
			}
		}
		return nil
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return registrytest.ReadImage(img)
}

func startRegistry(t *testing.T, srv *costest.Server) *registrytest.Registry {
	t.Helper()
	return registrytest.Start(t, registrytest.Config(t, registrytest.Options{Parameters: testenv.DriverParameters(srv)}))
}

func mustRegistry(t *testing.T, reg *registrytest.Registry) name.Registry {
	r, err := name.NewRegistry(reg.Host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRepo(t *testing.T, reg *registrytest.Registry, repo string) name.Repository {
	r, err := name.NewRepository(reg.Host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// buildRandomRegistry fills srv through a registry's API with a random
// history of pushes, retags, deletes and mounts drawn from seed.
func buildRandomRegistry(t *testing.T, srv *costest.Server, seed uint64) {
	t.Helper()
	reg := startRegistry(t, srv)
	rng := rand.New(rand.NewPCG(seed, 22))
	var layers []v1.Layer
	for i := range 14 {
		layers = append(layers, static.NewLayer(testenv.RandomBytes(64+rng.IntN(512), seed*1000+uint64(i)), types.OCIUncompressedLayer))
	}
	repos := []string{"app", "app/web", "base", "tools/x", "zeta"}
	tags := []string{"latest", "v1", "v2", "v1.2"}
	pushed := map[string][]v1.Hash{}       // manifests pushed, by repository
	tagged := map[string]map[string]bool{} // tags set, by repository
	linked := map[string][]v1.Layer{}      // layers pushed, by repository
	imageSeq := 0
	newImage := func() v1.Image {
		imageSeq++
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		n := 1 + rng.IntN(3)
		var ls []v1.Layer
		for _, i := range rng.Perm(len(layers))[:n] {
			ls = append(ls, layers[i])
		}
		img, err := mutate.AppendLayers(img, ls...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		cfg.Config.Labels = map[string]string{"image": fmt.Sprintf("%d-%d", seed, imageSeq)}
		cfg.Architecture, cfg.OS = "amd64", "linux"
		img, err = mutate.ConfigFile(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	record := func(repo string, img v1.Image) {
		ls, _ := img.Layers()
		linked[repo] = append(linked[repo], ls...)
	}
	digestOf := func(d interface{ Digest() (v1.Hash, error) }) v1.Hash {
		h, err := d.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	pushImage := func(repo, ref string, img v1.Image) {
		if err := remote.Write(reg.Ref(t, repo+ref), img); err != nil {
			t.Fatalf("push %s%s: %v", repo, ref, err)
		}
		record(repo, img)
		pushed[repo] = append(pushed[repo], digestOf(img))
	}
	setTag := func(repo, tag string) {
		if tagged[repo] == nil {
			tagged[repo] = map[string]bool{}
		}
		tagged[repo][tag] = true
	}
	for range 40 {
		repo := repos[rng.IntN(len(repos))]
		switch op := rng.IntN(10); {
		case op < 3: // a tagged image (a retag when the tag exists)
			tag := tags[rng.IntN(len(tags))]
			pushImage(repo, ":"+tag, newImage())
			setTag(repo, tag)
		case op == 3: // an image pushed by digest only
			img := newImage()
			pushImage(repo, "@"+digestOf(img).String(), img)
		case op == 4: // an index of two images, tagged; the images are reached only through it
			idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
			for i, arch := range []string{"amd64", "arm64"} {
				img := newImage()
				if i == 1 && len(pushed[repo]) > 0 && rng.IntN(2) == 0 {
					// A child the repository also holds on its own.
					if existing, err := remote.Image(reg.Ref(t, repo+"@"+pushed[repo][0].String())); err == nil {
						if mt, _ := existing.MediaType(); mt == types.OCIManifestSchema1 {
							img = existing
						}
					}
				}
				idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
				record(repo, img)
			}
			tag := tags[rng.IntN(len(tags))]
			if err := remote.WriteIndex(reg.Ref(t, repo+":"+tag), idx); err != nil {
				t.Fatalf("push index %s:%s: %v", repo, tag, err)
			}
			pushed[repo] = append(pushed[repo], digestOf(idx))
			setTag(repo, tag)
		case op == 5: // a tag deleted
			for tag := range tagged[repo] {
				if err := remote.Delete(reg.Ref(t, repo+":"+tag)); err != nil {
					t.Fatalf("delete tag %s:%s: %v", repo, tag, err)
				}
				delete(tagged[repo], tag)
				break
			}
		case op == 6: // a manifest deleted
			if n := len(pushed[repo]); n > 0 {
				i := rng.IntN(n)
				err := remote.Delete(reg.Ref(t, repo+"@"+pushed[repo][i].String()))
				if err != nil && !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
					t.Fatalf("delete manifest %s@%s: %v", repo, pushed[repo][i], err)
				}
				pushed[repo] = slices.Delete(pushed[repo], i, i+1)
			}
		case op == 7: // a layer mounted from another repository, no manifest of it here
			from := repos[rng.IntN(len(repos))]
			if from != repo && len(linked[from]) > 0 {
				l := linked[from][rng.IntN(len(linked[from]))]
				mount(t, reg, repo, from, digestOf(l))
				linked[repo] = append(linked[repo], l)
			}
		case op == 8: // an upload no manifest will reference
			blob := testenv.RandomBytes(100, seed*7919+uint64(rng.IntN(1_000_000)))
			if err := registrytest.PushBlob(context.Background(), http.DefaultClient, reg.URL, repo, strings.NewReader(string(blob)), int64(len(blob)), digest.FromBytes(blob)); err != nil {
				t.Fatalf("upload an orphan blob: %v", err)
			}
		case op == 9: // a referrer (an artifact whose subject is an image), pushed by digest
			if n := len(pushed[repo]); n > 0 {
				subject, err := remote.Get(reg.Ref(t, repo+"@"+pushed[repo][rng.IntN(n)].String()))
				if err != nil {
					continue // deleted meanwhile
				}
				art := mutate.Subject(newImage(), subject.Descriptor).(v1.Image)
				pushImage(repo, "@"+digestOf(art).String(), art)
			}
		}
	}
}

// mount links blob dgst of repository from into repo with the registry's
// cross-repository mount.
func mount(t *testing.T, reg *registrytest.Registry, repo, from string, dgst v1.Hash) {
	t.Helper()
	u := fmt.Sprintf("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", reg.URL, repo, dgst, from)
	resp, err := http.Post(u, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mount %s from %s into %s: %s", dgst, from, repo, resp.Status)
	}
}
