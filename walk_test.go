package cos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

func putFiles(t *testing.T, d storagedriver.StorageDriver, paths []string) {
	t.Helper()
	for _, p := range paths {
		require.NoError(t, d.PutContent(context.Background(), p, []byte("content "+p)), "put %s", p)
	}
}

func walked(t *testing.T, d storagedriver.StorageDriver, from string, fn storagedriver.WalkFn, opts ...func(*storagedriver.WalkOptions)) ([]string, error) {
	t.Helper()
	var got []string
	err := d.Walk(context.Background(), from, func(fi storagedriver.FileInfo) error {
		got = append(got, fi.Path())
		if fn != nil {
			return fn(fi)
		}
		return nil
	}, opts...)
	return got, err
}

// TestWalk ports the s3 driver's walk cases, expecting distribution's path
// order ('/' first: "/folder1/file1" before "/folder1-suffix").
func TestWalk(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	putFiles(t, d, []string{
		"/file1",
		"/folder1-suffix/file1",
		"/folder1/file1",
		"/folder2/file1",
		"/folder3/subfolder1/subfolder1/file1",
		"/folder3/subfolder2/subfolder1/file1",
		"/folder4/file1",
	})
	all := []string{
		"/file1",
		"/folder1", "/folder1/file1",
		"/folder1-suffix", "/folder1-suffix/file1",
		"/folder2", "/folder2/file1",
		"/folder3", "/folder3/subfolder1", "/folder3/subfolder1/subfolder1", "/folder3/subfolder1/subfolder1/file1",
		"/folder3/subfolder2", "/folder3/subfolder2/subfolder1", "/folder3/subfolder2/subfolder1/file1",
		"/folder4", "/folder4/file1",
	}
	folder3 := []string{
		"/folder3/subfolder1", "/folder3/subfolder1/subfolder1", "/folder3/subfolder1/subfolder1/file1",
		"/folder3/subfolder2", "/folder3/subfolder2/subfolder1", "/folder3/subfolder2/subfolder1/file1",
	}
	hint := storagedriver.WithStartAfterHint
	tests := []struct {
		name    string
		from    string
		fn      storagedriver.WalkFn
		hint    string
		want    []string
		wantErr bool
	}{
		{name: "walk all", from: "/", want: all},
		{name: "skip directory", from: "/", fn: func(fi storagedriver.FileInfo) error {
			if fi.Path() == "/folder3" {
				return storagedriver.ErrSkipDir
			}
			return nil
		}, want: []string{"/file1", "/folder1", "/folder1/file1", "/folder1-suffix", "/folder1-suffix/file1",
			"/folder2", "/folder2/file1", "/folder3", "/folder4", "/folder4/file1"}},
		{name: "start late without from", from: "/", hint: "/folder3/subfolder1/subfolder1/file1",
			want: []string{"/folder3/subfolder2", "/folder3/subfolder2/subfolder1", "/folder3/subfolder2/subfolder1/file1", "/folder4", "/folder4/file1"}},
		{name: "start late with from", from: "/folder3", hint: "/folder3/subfolder1/subfolder1/file1",
			want: []string{"/folder3/subfolder2", "/folder3/subfolder2/subfolder1", "/folder3/subfolder2/subfolder1/file1"}},
		{name: "start after from", from: "/folder1", hint: "/folder2", want: nil},
		{name: "start before from", from: "/folder2", hint: "/folder1", want: []string{"/folder2/file1"}},
		{name: "start matches from", from: "/folder3", hint: "/folder3", want: folder3},
		{name: "start doesn't exist", from: "/folder3", hint: "/folder3/notafolder/notafile", want: folder3},
		{name: "start after a missing entry", from: "/folder3", hint: "/folder3/subfolder1/zzz", want: folder3[3:]},
		{name: "start at a directory", from: "/", hint: "/folder1",
			want: append([]string{"/folder1/file1", "/folder1-suffix", "/folder1-suffix/file1", "/folder2", "/folder2/file1"}, append([]string{"/folder3"}, append(folder3, "/folder4", "/folder4/file1")...)...)},
		{name: "stop early", from: "/", fn: func(fi storagedriver.FileInfo) error {
			if fi.Path() == "/folder1/file1" {
				return storagedriver.ErrFilledBuffer
			}
			return nil
		}, want: []string{"/file1", "/folder1", "/folder1/file1"}},
		{name: "error", from: "/", fn: func(storagedriver.FileInfo) error { return errors.New("foo") }, want: []string{"/file1"}, wantErr: true},
		{name: "from folder", from: "/folder1", want: []string{"/folder1/file1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []func(*storagedriver.WalkOptions)
			if tc.hint != "" {
				opts = append(opts, hint(tc.hint))
			}
			got, err := walked(t, d, tc.from, tc.fn, opts...)
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, got, "walked paths")
		})
	}
	t.Run("missing from", func(t *testing.T) {
		_, err := walked(t, d, "/nothing/here", nil)
		require.IsType(t, storagedriver.PathNotFoundError{}, err)
	})
}

// TestWalkPathOrderTagPaging pins the order the registry's tag-list paging
// needs: with n=1 and the hint at the last tag, every tag comes back once.
func TestWalkPathOrderTagPaging(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	const tags = "/r/_manifests/tags"
	names := []string{"v1-rc", "1.2.3", "v1", "1.2", "1.2-beta", "latest"}
	for _, n := range names {
		putFiles(t, d, []string{tags + "/" + n + "/current/link", tags + "/" + n + "/index/sha256/abc/link"})
	}
	var got []string
	last := ""
	for range len(names) + 1 {
		var page []string
		var opts []func(*storagedriver.WalkOptions)
		if last != "" {
			opts = append(opts, storagedriver.WithStartAfterHint(tags+"/"+last))
		}
		// The callback is the registry's handleTag: only entries right
		// under tags/ are tags.
		err := d.Walk(context.Background(), tags, func(fi storagedriver.FileInfo) error {
			tag := strings.TrimPrefix(fi.Path(), tags+"/")
			if strings.Contains(tag, "/") {
				return storagedriver.ErrSkipDir
			}
			page = append(page, tag)
			return storagedriver.ErrFilledBuffer
		}, opts...)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		last = page[0]
	}
	want := slices.Clone(names)
	slices.Sort(want)
	require.Equal(t, want, got, "tags paged one at a time")
}

// TestWalkEmptyUploadsDir: a "dir/" marker key never yields an empty name.
func TestWalkEmptyUploadsDir(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	in := internal(d)
	for _, k := range []string{
		"docker/registry/v2/blobs/sha256/04/046909",
		"docker/registry/v2/repositories/testns/testimg/_layers/sha256/2a43dc",
		"docker/registry/v2/repositories/testns/testimg/_uploads/",
	} {
		require.NoError(t, in.putObject(context.Background(), k, nil, []byte("x")))
	}
	got, err := walked(t, d, "/docker/registry/v2", func(fi storagedriver.FileInfo) error {
		if _, file := path.Split(fi.Path()); file == "" {
			return fmt.Errorf("empty file name in %q", fi.Path())
		}
		return nil
	})
	require.NoError(t, err)
	require.Contains(t, got, "/docker/registry/v2/repositories/testns/testimg/_uploads")
}

// TestOverThousandObjects lists, walks and deletes more than one page.
func TestOverThousandObjects(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	in := internal(d)
	const n = 1005
	for i := range n {
		require.NoError(t, in.putObject(context.Background(), fmt.Sprintf("many/file%04d", i), nil, []byte("x")))
	}
	list, err := d.List(context.Background(), "/many")
	require.NoError(t, err)
	require.Len(t, list, n)
	all, err := walked(t, d, "/many", nil)
	require.NoError(t, err)
	require.Len(t, all, n)
	require.True(t, slices.IsSorted(all), "walk in order")
	srv.ResetStats()
	require.NoError(t, d.Delete(context.Background(), "/many"))
	require.EqualValues(t, 2, srv.Stats().Count("DeleteMultipleObjects"), "1005 keys delete in two batches")
	_, err = d.List(context.Background(), "/many")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
}

// randomTree returns keys under "p/" built from names around '/': '-',
// '.' and '0' sort on either side of it, so raw key order and path order
// disagree everywhere. Directory and file names never collide (a path is
// a file or a directory, as in a filesystem). One directory, big, holds
// bigKeys files.
func randomTree(rng *rand.Rand, n, bigKeys int) []string {
	dirs := []string{"a", "a-b", "a.b", "a0", "b", "a-", "-", ".x", "0"}
	files := []string{"f", "f-", "f.", "f0", "a-f", "a.f", "-f"}
	seen := map[string]bool{}
	var keys []string
	for len(keys) < n {
		var parts []string
		for range rng.IntN(4) {
			parts = append(parts, dirs[rng.IntN(len(dirs))])
		}
		parts = append(parts, files[rng.IntN(len(files))])
		if k := "p/" + strings.Join(parts, "/"); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	big := "p/" + dirs[rng.IntN(len(dirs))] + "/" + dirs[rng.IntN(len(dirs))]
	for i := range bigKeys {
		keys = append(keys, fmt.Sprintf("%s/%s%04d", big, files[i%len(files)], i))
	}
	return keys
}

// keysDriver is a tree of keys with just what WalkFallback calls: List
// and Stat.
type keysDriver struct {
	storagedriver.StorageDriver
	keys []string // "p/a/f": the file /p/a/f
}

func (k keysDriver) List(_ context.Context, dir string) ([]string, error) {
	var children []string
	for _, key := range k.keys {
		if rel, ok := strings.CutPrefix("/"+key, dir+"/"); ok {
			name, _, _ := strings.Cut(rel, "/")
			if p := dir + "/" + name; !slices.Contains(children, p) {
				children = append(children, p)
			}
		}
	}
	if len(children) == 0 {
		return nil, storagedriver.PathNotFoundError{Path: dir}
	}
	return children, nil
}

func (k keysDriver) Stat(_ context.Context, p string) (storagedriver.FileInfo, error) {
	for _, key := range k.keys {
		if "/"+key == p || strings.HasPrefix("/"+key, p+"/") {
			return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, IsDir: "/"+key != p}}, nil
		}
	}
	return nil, storagedriver.PathNotFoundError{Path: p}
}

// fallbackWalk walks the same keys with distribution's generic
// WalkFallback: the reference order.
func fallbackWalk(t *testing.T, keys []string, hint string, fn storagedriver.WalkFn) []string {
	t.Helper()
	var opts []func(*storagedriver.WalkOptions)
	if hint != "" {
		opts = append(opts, storagedriver.WithStartAfterHint(hint))
	}
	var got []string
	require.NoError(t, storagedriver.WalkFallback(context.Background(), keysDriver{keys: keys}, "/p", func(fi storagedriver.FileInfo) error {
		got = append(got, fi.Path())
		return fn(fi)
	}, opts...))
	return got
}

// TestWalkRandomTreesMatchFallback: on random trees (subtrees above and
// below a page), with directories skipped at random, stops and hints, the
// flat walk visits exactly what WalkFallback visits, in its order; the
// flat pages it reads are those of the keys it visits plus at most one per
// skipped directory.
func TestWalkRandomTreesMatchFallback(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 12))
		keys := randomTree(rng, 50+rng.IntN(400), []int{0, 300, 1500}[seed%3])
		skipP := rng.Float64() * 0.5
		stopAt := -1
		if seed%4 == 1 {
			stopAt = rng.IntN(len(keys))
		}
		decide := func(skipped *[]string) storagedriver.WalkFn {
			n := 0
			return func(fi storagedriver.FileInfo) error {
				n++
				if n == stopAt {
					return storagedriver.ErrFilledBuffer
				}
				h := fnv.New64a()
				fmt.Fprint(h, seed, fi.Path())
				if fi.IsDir() && float64(h.Sum64()%1000)/1000 < skipP {
					*skipped = append(*skipped, fi.Path())
					return storagedriver.ErrSkipDir
				}
				return nil
			}
		}
		var refSkipped, skipped []string
		want := fallbackWalk(t, keys, "", decide(&refSkipped))
		got, flat, probes := memWalkHint(t, keys, "/p", "", maxListKeys, decide(&skipped))
		require.Equal(t, want, got, "seed %d: walk order", seed)
		require.Equal(t, refSkipped, skipped, "seed %d: skipped directories", seed)
		if stopAt < 0 {
			visitedKeys := 0
			for _, k := range keys {
				if !slices.ContainsFunc(skipped, func(dir string) bool { return isUnder("/"+k, dir) }) {
					visitedKeys++
				}
			}
			limit := (visitedKeys+maxListKeys-1)/maxListKeys + len(skipped) + 1
			require.LessOrEqual(t, flat, limit, "seed %d: flat pages for %d keys visited, %d skipped dirs", seed, visitedKeys, len(skipped))
			require.Len(t, slices.Compact(slices.Sorted(slices.Values(probes))), len(probes), "seed %d: a directory probed twice", seed)
		}
		// A hint at a visited path, or at a path that does not exist.
		all := fallbackWalk(t, keys, "", func(storagedriver.FileInfo) error { return nil })
		hint := all[rng.IntN(len(all))]
		if seed%2 == 0 {
			hint += []string{"-", ".", "/0", "0"}[rng.IntN(4)]
		}
		want = fallbackWalk(t, keys, hint, func(storagedriver.FileInfo) error { return nil })
		got, _, _ = memWalkHint(t, keys, "/p", hint, maxListKeys, nil)
		require.Equal(t, want, got, "seed %d: walk after hint %q", seed, hint)
	}
}

// TestWalkListingCost pins the cost of flat walks through the emulator: a
// walk costs its pages, and a skipped subtree the page ends inside costs
// one listing that jumps past it (the marker goes over the wire).
func TestWalkListingCost(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	in := internal(d)
	var keys []string
	for i := range 1200 {
		keys = append(keys, fmt.Sprintf("c/blobs/sha256/%02x/%04d/data", i%256, i))
	}
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("c/big/f%04d", i))
	}
	keys = append(keys, "c/big-1/f", "c/big.1/f", "c/big0/f", "c/small/f")
	work := make(chan string)
	errs := make(chan error, len(keys))
	for range 16 {
		go func() {
			for k := range work {
				errs <- in.putObject(context.Background(), k, nil, []byte("x"))
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	for range keys {
		require.NoError(t, <-errs)
	}

	srv.ResetStats()
	blobs, err := walked(t, d, "/c/blobs", nil)
	require.NoError(t, err)
	require.Len(t, blobs, 1200+256+1+1200, "files, their directories and sha256")
	require.EqualValues(t, 2, srv.Stats().Count("ListObjects"), "1,200 blobs: two flat pages")

	srv.ResetStats()
	got, err := walked(t, d, "/c", func(fi storagedriver.FileInfo) error {
		if fi.Path() == "/c/big" || fi.Path() == "/c/blobs" {
			return storagedriver.ErrSkipDir
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"/c/big", "/c/big-1", "/c/big-1/f", "/c/big.1", "/c/big.1/f", "/c/big0", "/c/big0/f",
		"/c/blobs", "/c/small", "/c/small/f"}, got)
	// Page 1 holds big-1, big.1 and 998 keys of big; skipping big jumps
	// to big0, whose page ends inside blobs; skipping blobs jumps to small.
	require.EqualValues(t, 3, srv.Stats().Count("ListObjects"), "a skipped subtree is jumped over")
}
