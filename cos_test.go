package cos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/testsuites"
	"github.com/registry-cos/cos/costest"
	"github.com/stretchr/testify/require"
)

// newServer starts an emulator for one test; dir "" keeps it in memory.
func newServer(t testing.TB, opts costest.Options) *costest.Server {
	t.Helper()
	srv, err := costest.NewServer(opts)
	require.NoError(t, err, "starting the COS emulator")
	t.Cleanup(func() { srv.Close() })
	return srv
}

// serverParameters are the parameters that address srv.
func serverParameters(srv *costest.Server) Parameters {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = srv.SecretID, srv.SecretKey
	p.Bucket, p.Region = srv.Bucket, srv.Region
	p.Endpoint = srv.URL
	return p
}

// newTestDriver builds a driver on srv; tune adjusts the parameters.
func newTestDriver(t testing.TB, srv *costest.Server, tune func(*Parameters)) *Driver {
	t.Helper()
	p := serverParameters(srv)
	if tune != nil {
		tune(&p)
	}
	d, err := New(context.Background(), p)
	require.NoError(t, err, "creating the driver")
	return d
}

// internal returns the implementation behind a Driver.
func internal(d *Driver) *driver { return d.Base.StorageDriver.(*driver) }

// TestDriverSuite runs distribution's full storage-driver suite (including
// the 5 GiB stream) against a disk-backed emulator, so memory stays flat.
func TestDriverSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the full suite moves about 6 GiB; skipped with -short")
	}
	srv := newServer(t, costest.Options{Dir: t.TempDir()})
	testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
		p := serverParameters(srv)
		p.RootDirectory = "/suite"
		return New(context.Background(), p)
	}, false)
}

// TestDriverSuiteRealCOS runs the same suite against real COS when
// COS_SECRET_ID, COS_SECRET_KEY, COS_BUCKET and COS_REGION are set.
func TestDriverSuiteRealCOS(t *testing.T) {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = os.Getenv("COS_SECRET_ID"), os.Getenv("COS_SECRET_KEY")
	p.Bucket, p.Region = os.Getenv("COS_BUCKET"), os.Getenv("COS_REGION")
	if p.SecretID == "" || p.SecretKey == "" || p.Bucket == "" || p.Region == "" {
		t.Skip("real COS not configured: set COS_SECRET_ID, COS_SECRET_KEY, COS_BUCKET (name-appid) and COS_REGION to run the suite against a real bucket")
	}
	p.RootDirectory = fmt.Sprintf("registry-cos-test/%d", time.Now().UnixNano())
	testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
		return New(context.Background(), p)
	}, false)
}

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
	srv := newServer(t, costest.Options{})
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
	srv := newServer(t, costest.Options{})
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
	srv := newServer(t, costest.Options{})
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

// TestDelete ports the s3 driver's table: a delete never touches siblings.
func TestDelete(t *testing.T) {
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	objs := []string{
		"/file1", "/file1-2", "/folder1/file1", "/folder2/file1", "/folder3/file1",
		"/folder3/subfolder1/subfolder1/file1", "/folder3/subfolder2/subfolder1/file1",
		"/folder4/file1", "/folder1-v2/file1", "/folder1-v2/subfolder1/file1",
	}
	type testCase struct {
		name    string
		delete  string
		deleted []string
		errType any
	}
	tcs := []testCase{
		{name: "folder1", delete: "/folder1", deleted: []string{"/folder1/file1"}},
		{name: "folder3", delete: "/folder3", deleted: []string{"/folder3/file1", "/folder3/subfolder1/subfolder1/file1", "/folder3/subfolder2/subfolder1/file1"}},
		{name: "missing", delete: "/path/does/not/exist", errType: storagedriver.PathNotFoundError{}},
		{name: "trailing slash", delete: "/path/is/invalid/", errType: storagedriver.InvalidPathError{}},
		{name: "trailing special character", delete: "/path/is/invalid*", errType: storagedriver.InvalidPathError{}},
	}
	for _, p := range objs {
		tcs = append(tcs, testCase{name: "file " + p, delete: p, deleted: []string{p}})
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			putFiles(t, d, objs)
			err := d.Delete(context.Background(), tc.delete)
			if tc.errType != nil {
				require.IsType(t, tc.errType, err)
			} else {
				require.NoError(t, err)
			}
			for _, p := range objs {
				_, err := d.GetContent(context.Background(), p)
				if slices.Contains(tc.deleted, p) {
					require.IsType(t, storagedriver.PathNotFoundError{}, err, "%s should be deleted", p)
				} else {
					require.NoError(t, err, "%s should remain", p)
				}
			}
		})
	}
}

// TestOverThousandObjects lists, walks and deletes more than one page.
func TestOverThousandObjects(t *testing.T) {
	srv := newServer(t, costest.Options{})
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

// TestMoveWithMultipartCopy moves an object in parallel part copies.
func TestMoveWithMultipartCopy(t *testing.T) {
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.MultipartCopyThreshold = 2 * mib
		p.MultipartCopyChunkSize = 1 * mib
	})
	content := randomBytes(t, 5*mib+123)
	require.NoError(t, d.PutContent(context.Background(), "/src", content))
	srv.ResetStats()
	require.NoError(t, d.Move(context.Background(), "/src", "/dst"))
	require.EqualValues(t, 6, srv.Stats().Count("UploadPartCopy"), "5 MiB+ in 1 MiB parts")
	got, err := d.GetContent(context.Background(), "/dst")
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, got), "moved content differs")
	_, err = d.Stat(context.Background(), "/src")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// TestRequestCounts pins what common operations cost in COS requests.
func TestRequestCounts(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	require.NoError(t, d.PutContent(ctx, "/a/file", []byte("hello")))

	t.Run("stat hit is one HEAD", func(t *testing.T) {
		srv.ResetStats()
		_, err := d.Stat(ctx, "/a/file")
		require.NoError(t, err)
		require.EqualValues(t, 1, srv.Stats().Total())
	})
	t.Run("stat of a directory is HEAD and one listing", func(t *testing.T) {
		srv.ResetStats()
		fi, err := d.Stat(ctx, "/a")
		require.NoError(t, err)
		require.True(t, fi.IsDir())
		require.EqualValues(t, 2, srv.Stats().Total())
	})
	t.Run("small commit is one PUT, no multipart upload", func(t *testing.T) {
		srv.ResetStats()
		w, err := d.Writer(ctx, "/small", false)
		require.NoError(t, err)
		_, err = w.Write(bytes.Repeat([]byte("x"), 32))
		require.NoError(t, err)
		require.NoError(t, w.Commit(ctx))
		require.NoError(t, w.Close())
		st := srv.Stats()
		require.EqualValues(t, 1, st.Total(), "requests: %v", st.Requests)
		require.EqualValues(t, 1, st.Count("PutObject"))
	})
	t.Run("resume is one request before the first byte", func(t *testing.T) {
		w, err := d.Writer(ctx, "/upload", false)
		require.NoError(t, err)
		_, err = w.Write(randomBytes(t, 3*mib))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		srv.ResetStats()
		w, err = d.Writer(ctx, "/upload", true)
		require.NoError(t, err)
		require.EqualValues(t, 3*mib, w.Size())
		require.EqualValues(t, 1, srv.Stats().Total(), "requests: %v", srv.Stats().Requests)
		require.NoError(t, w.Cancel(ctx))
	})
	t.Run("tag walk that skips every tag lists tags, not history", func(t *testing.T) {
		const tags = "/r/_manifests/tags"
		in := internal(d)
		for i := range 30 {
			for j := range 40 { // 1200 history keys: more than one flat page
				require.NoError(t, in.putObject(ctx, in.key(fmt.Sprintf("%s/t%02d/index/sha256/%03d/link", tags, i, j)), nil, nil))
			}
			require.NoError(t, in.putObject(ctx, in.key(fmt.Sprintf("%s/t%02d/current/link", tags, i)), nil, nil))
		}
		srv.ResetStats()
		got, err := walked(t, d, tags, func(storagedriver.FileInfo) error { return storagedriver.ErrSkipDir })
		require.NoError(t, err)
		require.Len(t, got, 30)
		// One flat page to learn the tree is big, then one delimiter page.
		require.LessOrEqual(t, srv.Stats().Count("ListObjects"), int64(2), "listing requests")
	})
}

// TestResumeAcrossDriversWithListLag is the failure the s3 driver has in
// the field: two registry replicas alternate on one upload while listings
// lag. Resume reads the state by key, so it never notices the lag.
func TestResumeAcrossDriversWithListLag(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{Faults: costest.Faults{ListLag: 5 * time.Second}})
	drivers := []*Driver{newTestDriver(t, srv, nil), newTestDriver(t, srv, nil)}
	for _, chunk := range []int{300 * kib, 3 * mib, 7*mib + 11} {
		t.Run(fmt.Sprintf("chunk %d", chunk), func(t *testing.T) {
			p := fmt.Sprintf("/uploads/%d/data", chunk)
			var all []byte
			w, err := drivers[0].Writer(ctx, p, false)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			for i := range 4 {
				w, err := drivers[i%2].Writer(ctx, p, true)
				require.NoError(t, err, "resume %d", i)
				require.EqualValues(t, len(all), w.Size(), "size after resume %d", i)
				data := randomBytes(t, chunk)
				_, err = w.Write(data)
				require.NoError(t, err)
				all = append(all, data...)
				require.NoError(t, w.Close())
			}
			w, err = drivers[1].Writer(ctx, p, true)
			require.NoError(t, err)
			require.NoError(t, w.Commit(ctx))
			got, err := drivers[0].GetContent(ctx, p)
			require.NoError(t, err)
			require.True(t, bytes.Equal(all, got), "content after alternating resumes")
		})
	}
}

// TestUploadStateIsNotContent: an upload in progress is invisible to reads
// and looks like a partly written file to Stat.
func TestUploadStateIsNotContent(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	w, err := d.Writer(ctx, "/partial", false)
	require.NoError(t, err)
	_, err = w.Write([]byte("0123456789"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = d.GetContent(ctx, "/partial")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
	_, err = d.Reader(ctx, "/partial", 5)
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
	fi, err := d.Stat(ctx, "/partial")
	require.NoError(t, err)
	require.EqualValues(t, 10, fi.Size())
	require.False(t, fi.IsDir())
	require.Error(t, d.Move(ctx, "/partial", "/elsewhere"), "an upload in progress cannot be moved")
}

// TestDeleteAbortsUploads: deleting an upload directory leaves no parts.
func TestDeleteAbortsUploads(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/_uploads/u1/data", false)
	require.NoError(t, err)
	_, err = w.Write(randomBytes(t, 2*MinChunkSize+1))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, d.PutContent(ctx, "/_uploads/u1/startedat", []byte("now")))
	require.NoError(t, d.Delete(ctx, "/_uploads/u1"))
	require.EqualValues(t, 1, srv.Stats().Count("AbortMultipartUpload"))
	_, err = d.Writer(ctx, "/_uploads/u1/data", true)
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
}

// TestFaults: with 5xx, SlowDown and dropped connections at a steady rate,
// writes and reads still come back byte-identical.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{Seed: 7})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxRetries = 10 })
	content := randomBytes(t, 3*MinChunkSize+5)
	srv.SetFaults(costest.Faults{ErrorRate: 0.15, DropRate: 0.05, CompleteErrorRate: 0.3})
	for i := range 3 {
		p := fmt.Sprintf("/faulty/%d", i)
		w, err := d.Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = io.Copy(w, bytes.NewReader(content))
		require.NoError(t, err)
		require.NoError(t, w.Commit(ctx))
		require.NoError(t, w.Close())
		got, err := d.GetContent(ctx, p)
		require.NoError(t, err)
		require.True(t, bytes.Equal(content, got), "content of %s", p)
	}
	st := srv.Stats()
	require.Positive(t, st.Faults["error"]+st.Faults["drop"], "faults were injected: %v", st.Faults)
}

// TestCRCMismatchIsReported corrupts the CRC64 COS reports on Complete.
func TestCRCMismatchIsReported(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/blob", false)
	require.NoError(t, err)
	_, err = w.Write(randomBytes(t, MinChunkSize+10))
	require.NoError(t, err)
	// Pretend COS acknowledged a part with another CRC64 than the one it
	// computes for the object: Complete must not be taken as done.
	iw := w.(*writer)
	require.NoError(t, iw.settle())
	part := iw.parts[1]
	part.CRC64 ^= 1
	iw.parts[1] = part
	err = w.Commit(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "CRC64")
}

// TestRedirectURL presigns GET and HEAD only.
func TestRedirectURL(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	require.NoError(t, d.PutContent(ctx, "/blob", []byte("0123456789")))
	for _, method := range []string{"GET", "HEAD"} {
		r, _ := httpRequest(method)
		u, err := d.RedirectURL(r, "/blob")
		require.NoError(t, err)
		resp, err := httpDo(method, u)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, "%s %s", method, u)
		require.EqualValues(t, 10, resp.ContentLength)
	}
	r, _ := httpRequest("PUT")
	u, err := d.RedirectURL(r, "/blob")
	require.NoError(t, err)
	require.Empty(t, u)
}

// TestNewReportsStartupErrors checks the one-sentence start-up errors.
func TestNewReportsStartupErrors(t *testing.T) {
	srv := newServer(t, costest.Options{})
	tests := []struct {
		name string
		tune func(*Parameters)
		want string
	}{
		{"missing bucket", func(p *Parameters) { p.Bucket = "nothere-1250000000" }, "does not exist"},
		{"unknown secret id", func(p *Parameters) { p.SecretID = "AKIDunknown" }, "InvalidAccessKeyId"},
		{"wrong secret key", func(p *Parameters) { p.SecretKey = "wrong" }, "SignatureDoesNotMatch"},
		{"unreachable", func(p *Parameters) { p.Endpoint = "http://127.0.0.1:1"; p.MaxRetries = 0 }, "cannot reach"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := serverParameters(srv)
			tc.tune(&p)
			_, err := New(context.Background(), p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), p.SecretKey, "secret in error")
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestKeyMapping(t *testing.T) {
	for _, tc := range []struct{ root, path, key, prefix string }{
		{"", "/", "", ""},
		{"", "/a/b", "a/b", "a/b/"},
		{"/registry/", "/", "registry", "registry/"},
		{"registry", "/a", "registry/a", "registry/a/"},
		{"x/y", "/a", "x/y/a", "x/y/a/"},
	} {
		d := &driver{root: strings.Trim(tc.root, "/")}
		require.Equal(t, tc.key, d.key(tc.path), "key of %q under %q", tc.path, tc.root)
		require.Equal(t, tc.prefix, d.dirPrefix(tc.path))
		if tc.path != "/" {
			require.Equal(t, tc.path, d.pathOf(tc.key))
		}
	}
}

func httpRequest(method string) (*http.Request, error) {
	return http.NewRequest(method, "http://registry.example/v2/x/blobs/sha256:0", nil)
}

func httpDo(method, url string) (*http.Response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, resp.Body.Close()
}

// TestDeleteCosts: a committed tree costs one listing and one batch delete;
// siblings that sort before "key/" are skipped, never deleted.
func TestDeleteCosts(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	in := internal(d)
	putFiles(t, d, []string{"/blobs/ab/abcd/data", "/blobs/ab/abce/data"})
	srv.ResetStats()
	require.NoError(t, d.Delete(ctx, "/blobs/ab/abcd"))
	st := srv.Stats()
	require.EqualValues(t, 2, st.Total(), "requests: %v", st.Requests)
	require.EqualValues(t, 1, st.Count("ListObjects"))

	for i := range 1001 {
		require.NoError(t, in.putObject(ctx, fmt.Sprintf("sib/a-x/file%04d", i), nil, nil))
	}
	putFiles(t, d, []string{"/sib/a", "/sib/a/file", "/sib/a0"})
	require.NoError(t, d.Delete(ctx, "/sib/a"))
	for _, p := range []string{"/sib/a", "/sib/a/file"} {
		_, err := d.Stat(ctx, p)
		require.IsType(t, storagedriver.PathNotFoundError{}, err, p)
	}
	list, err := d.List(ctx, "/sib")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"/sib/a-x", "/sib/a0"}, list, "siblings survive")
	_, err = d.Stat(ctx, "/blobs/ab/abce/data")
	require.NoError(t, err)
}

// TestResumeSurvivesDroppedConnections: reading the upload-state record is
// retried when the connection drops mid-record, so a PATCH does not fail.
func TestResumeSurvivesDroppedConnections(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{Seed: 11})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 30 })
	w, err := d.Writer(ctx, "/upload", false)
	require.NoError(t, err)
	_, err = w.Write(randomBytes(t, 700*kib))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	srv.SetFaults(costest.Faults{DropRate: 0.5})
	for i := range 5 {
		w, err := d.Writer(ctx, "/upload", true)
		require.NoError(t, err, "resume %d", i)
		require.EqualValues(t, 700*kib, w.Size())
	}
	srv.SetFaults(costest.Faults{})
	require.Positive(t, srv.Stats().Faults["drop"], "connections were dropped")
}
