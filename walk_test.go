package cos

import (
	"context"
	"errors"
	"fmt"
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
		require.NoError(t, in.putObject(context.Background(), k, []byte("x"), nil))
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
		require.NoError(t, in.putObject(context.Background(), fmt.Sprintf("many/file%04d", i), []byte("x"), nil))
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
