package cos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestDelete ports the s3 driver's table: a delete never touches siblings.
func TestDelete(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
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

// TestDeleteAbortsUploads: deleting an upload directory leaves no parts.
func TestDeleteAbortsUploads(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/_uploads/u1/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(2*MinChunkSize+1, 101))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, d.PutContent(ctx, "/_uploads/u1/startedat", []byte("now")))
	require.NoError(t, d.Delete(ctx, "/_uploads/u1"))
	require.EqualValues(t, 1, srv.Stats().Count("AbortMultipartUpload"))
	w, err = d.Writer(ctx, "/_uploads/u1/data", true)
	require.NoError(t, err)
	require.Zero(t, w.Size(), "nothing of the deleted upload is resumed")
	require.NoError(t, w.Cancel(ctx))
	waitUploadsGone(t, d, "/")

	// Deleting the upload's own file, an upload-state record, aborts it too.
	w, err = d.Writer(ctx, "/file", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(2*MinChunkSize+1, 102))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, d.Delete(ctx, "/file"))
	waitUploadsGone(t, d, "/")

	// A multipart copy of Move to a blob's data, left by a crash, has no
	// upload-state record; the blob's Delete (garbage collection) aborts it.
	putFiles(t, d, []string{"/blobs/sha256/ab/abcd/data"})
	_, _, err = internal(d).client.Object.InitiateMultipartUpload(ctx, "blobs/sha256/ab/abcd/data", nil)
	require.NoError(t, err)
	require.NoError(t, d.Delete(ctx, "/blobs/sha256/ab/abcd"))
	res, _, err := internal(d).client.Object.ListUploads(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, res.Upload, "multipart uploads left open")
}

// TestDeleteCosts: a committed tree costs one listing, one batch delete,
// the listing that shows the delete (without lag, at once) and a listing
// of the multipart uploads under it; siblings that sort before "key/" are
// skipped, never deleted.
func TestDeleteCosts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	in := internal(d)
	putFiles(t, d, []string{"/blobs/ab/abcd/data", "/blobs/ab/abce/data"})
	srv.ResetStats()
	require.NoError(t, d.Delete(ctx, "/blobs/ab/abcd"))
	st := srv.Stats()
	require.EqualValues(t, 4, st.Total(), "requests: %v", st.Requests)
	require.EqualValues(t, 2, st.Count("ListObjects"))
	require.EqualValues(t, 1, st.Count("ListMultipartUploads"))

	for i := range 1001 {
		require.NoError(t, in.putObject(ctx, fmt.Sprintf("sib/a-x/file%04d", i), nil))
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

// TestDeleteUploadCosts: an upload directory costs the registry's commit
// what it cost before Delete learnt about lag, one listing and one batch
// delete; the listing that shows the delete, the abort of any multipart
// upload left under the directory and the delete of startedat, kept until
// then, follow in the background.
func TestDeleteUploadCosts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	putFiles(t, d, []string{"/r/_uploads/u1/startedat", "/r/_uploads/u1/hashstates/sha256/0"})
	srv.ResetStats()
	require.NoError(t, d.Delete(ctx, "/r/_uploads/u1"))
	st := srv.Stats()
	require.EqualValues(t, 2, st.Total(), "requests before Delete returns: %v", st.Requests)
	require.EqualValues(t, 1, st.Count("ListObjects"))
	_, err := d.Stat(ctx, "/r/_uploads/u1/startedat")
	require.NoError(t, err, "startedat stays until the listing has caught up")
	require.NoError(t, d.Wait(ctx))
	_, err = internal(d).head(ctx, "r/_uploads/u1/startedat")
	require.True(t, isNotFound(err), "startedat is deleted in the background: %v", err)
	st = srv.Stats()
	require.EqualValues(t, 2, st.Count("ListObjects"), "requests: %v", st.Requests)
	require.EqualValues(t, 2, st.Count("DeleteMultipleObjects"), "requests: %v", st.Requests)
	require.EqualValues(t, 1, st.Count("ListMultipartUploads"), "requests: %v", st.Requests)
}

// waitUploadsGone waits for the background part of Delete to end and
// checks that no key is left under root/_uploads/.
func waitUploadsGone(t *testing.T, d *Driver, root string) {
	t.Helper()
	require.NoError(t, d.Wait(context.Background()))
	require.Empty(t, filesUnder(t, d, root, "/_uploads/"), "keys left")
}

// filesUnder lists the files under root whose path contains part.
func filesUnder(t *testing.T, d *Driver, root, part string) []string {
	t.Helper()
	var files []string
	err := d.Walk(context.Background(), root, func(fi storagedriver.FileInfo) error {
		if strings.Contains(fi.Path(), part) && !fi.IsDir() {
			files = append(files, fi.Path())
		}
		return nil
	})
	if _, ok := err.(storagedriver.PathNotFoundError); !ok {
		require.NoError(t, err)
	}
	return files
}

// TestDeleteUnderListingLag: keys written a moment before Delete, which a
// lagging listing does not show yet, are deleted all the same: a file by
// name; a tag directory's unlisted keys before Delete returns; an upload
// directory's, listed or not, in the background once the listing shows
// the delete (or a marker Delete writes). Nothing is listed once the lag
// has passed, and no multipart upload is open.
func TestDeleteUnderListingLag(t *testing.T) {
	ctx := context.Background()
	const lag = 300 * time.Millisecond
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	putFiles(t, d, []string{"/_uploads/u1/startedat", "/_uploads/u1/hashstates/sha256/0",
		"/_manifests/tags/v1/index/sha256/a/link"})
	time.Sleep(10 * time.Millisecond)
	srv.SetFaults(costest.Faults{ListLag: lag})
	// Written within the lag, as another replica's last PATCH does.
	w, err := d.Writer(ctx, "/_uploads/u1/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(MinChunkSize+1, 102))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	putFiles(t, d, []string{"/_uploads/u1/hashstates/sha256/5242881", "/_layers/sha256/ab/link",
		"/_uploads/u2/startedat", "/_uploads/u2/hashstates/sha256/0", "/_manifests/tags/v1/current/link"})

	require.NoError(t, d.Delete(ctx, "/_layers/sha256/ab/link"), "a file not listed yet")
	require.NoError(t, d.Delete(ctx, "/_manifests/tags/v1"))
	_, err = d.GetContent(ctx, "/_manifests/tags/v1/current/link")
	require.IsType(t, storagedriver.PathNotFoundError{}, err, "a tag is deleted when Delete returns")
	require.NoError(t, d.Delete(ctx, "/_uploads/u1"))
	require.NoError(t, d.Delete(ctx, "/_uploads/u2"), "a tree none of which is listed yet")
	err = d.Delete(ctx, "/_layers/sha256/missing/link")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
	err = d.Delete(ctx, "/_uploads/missing")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)

	time.Sleep(lag)
	srv.SetFaults(costest.Faults{})
	waitUploadsGone(t, d, "/")
	for _, dir := range []string{"/_layers/", "/_manifests/"} {
		require.Empty(t, filesUnder(t, d, "/", dir), "keys left under %s", dir)
	}
	res, _, err := internal(d).client.Object.ListUploads(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, res.Upload, "multipart uploads left open")
}

// TestDeleteCutShortIsPurged: a Delete of an upload directory whose
// background part never runs to its end (the replica is killed, or COS
// fails it) leaves the directory with its startedat, so the registry's
// upload purger removes all of it.
func TestDeleteCutShortIsPurged(t *testing.T) {
	ctx := context.Background()
	const lag = 300 * time.Millisecond
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 0 })
	dir := "/docker/registry/v2/repositories/r/_uploads/" + uuid.NewString()
	started := []byte(time.Now().Add(-time.Hour).Format(time.RFC3339))
	require.NoError(t, d.PutContent(ctx, dir+"/startedat", started))
	putFiles(t, d, []string{dir + "/hashstates/sha256/0"})
	time.Sleep(10 * time.Millisecond)
	srv.SetFaults(costest.Faults{ListLag: lag})
	putFiles(t, d, []string{dir + "/hashstates/sha256/5242881"}) // not listed yet

	require.NoError(t, d.Delete(ctx, dir))
	// Every request fails from now on: the background part gives up at
	// its first listing, as one whose replica was killed never makes it.
	srv.SetFaults(costest.Faults{ListLag: lag, ErrorRate: 1})
	require.NoError(t, d.Wait(ctx))
	require.Positive(t, srv.Stats().Faults["error"], "the background part's listing failed")
	srv.SetFaults(costest.Faults{})
	left := filesUnder(t, d, "/", "/_uploads/")
	require.ElementsMatch(t, []string{dir + "/startedat", dir + "/hashstates/sha256/5242881"}, left)

	purged, errs := storage.PurgeUploads(ctx, d, time.Now(), true)
	require.Empty(t, errs)
	require.Len(t, purged, 1)
	waitUploadsGone(t, d, "/")
}

// TestDeleteOfAMissingTagLeavesNoPhantom: a Delete of a path that does not
// exist writes a marker to learn when the listing has caught up. While it
// waits (its listings held back here), List, Walk and Stat do not see it;
// and when the wait ends in an error (the caller gives up, a listing
// fails) the marker goes all the same. Before, the marker sat under the
// path, was listed as a tag during the wait, and stayed for good after an
// error: a phantom tag in tags/list.
func TestDeleteOfAMissingTagLeavesNoPhantom(t *testing.T) {
	for _, end := range []string{"caller gives up", "listing fails"} {
		t.Run(end, func(t *testing.T) {
			h, err := costest.NewHandler(costest.Options{})
			require.NoError(t, err)
			const tags, missing = "/r/_manifests/tags", "/r/_manifests/tags/missing"
			var hold atomic.Value // the Delete's listing prefix, once its marker is written
			hold.Store("")
			written, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "registry-cos-delete-marker") {
					h.ServeHTTP(w, r)
					once.Do(func() {
						hold.Store(strings.Trim(r.URL.Path[:strings.Index(r.URL.Path, "registry-cos-delete-marker")-1], "/"))
						close(written)
					})
					return
				}
				if prefix := r.URL.Query().Get("prefix"); r.Method == http.MethodGet && prefix != "" && prefix == hold.Load() {
					<-release
					if end == "listing fails" {
						http.Error(w, "", http.StatusForbidden)
						return
					}
				}
				h.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			var released sync.Once
			releaseListings := func() { released.Do(func() { close(release) }) }
			t.Cleanup(releaseListings) // before srv.Close, should the test fail
			d := driverOn(t, srv.URL, func(p *Parameters) { p.MaxRetries = 0 })
			ctx := context.Background()
			h.SetFaults(costest.Faults{})
			putFiles(t, d, []string{tags + "/v1/current/link"}) // listed
			h.SetFaults(costest.Faults{ListLag: time.Hour})

			deleting, giveUp := context.WithCancel(ctx)
			deleted := make(chan error, 1)
			go func() { deleted <- d.Delete(deleting, missing) }()
			<-written
			h.SetFaults(costest.Faults{}) // the test's own listings see everything
			seen := func(when string) {
				children, err := d.List(ctx, tags)
				require.NoError(t, err)
				require.Equal(t, []string{tags + "/v1"}, children, "List %s", when)
				var walked []string
				require.NoError(t, d.Walk(ctx, tags, func(fi storagedriver.FileInfo) error {
					walked = append(walked, fi.Path())
					return nil
				}))
				require.Equal(t, []string{tags + "/v1", tags + "/v1/current", tags + "/v1/current/link"}, walked, "Walk %s", when)
				_, err = d.Stat(ctx, missing)
				require.IsType(t, storagedriver.PathNotFoundError{}, err, "Stat %s", when)
			}
			seen("while the Delete waits")
			if end == "caller gives up" {
				giveUp()
			}
			releaseListings()
			require.Error(t, <-deleted)
			giveUp()
			seen("after the Delete")
			res, _, err := d.Client().Bucket.Get(ctx, nil)
			require.NoError(t, err)
			for _, o := range res.Contents {
				require.NotContains(t, o.Key, "registry-cos-delete-marker", "a marker outlived its Delete")
			}
		})
	}
}

// TestDeleteOfAnUnlistedRecordAbortsItsUpload: a Delete of an upload-state
// record the listing does not show yet (written within the lag), or shows
// as an older object of another size, aborts the record's multipart
// upload: it is read from the record, not guessed from the listing.
// Before, the record was found by HEAD and deleted, and its upload left
// open and billed.
func TestDeleteOfAnUnlistedRecordAbortsItsUpload(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	require.NoError(t, d.PutContent(ctx, "/older/data", []byte("an older object, listed"))) // listed before the lag
	srv.SetFaults(costest.Faults{ListLag: time.Hour})
	for _, p := range []string{"/unlisted/data", "/older/data"} {
		w, err := d.Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = w.Write(testenv.RandomBytes(MinChunkSize+10, 109)) // a part, and a record
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, d.Delete(ctx, p), p)
		_, err = d.Stat(ctx, p)
		require.IsType(t, storagedriver.PathNotFoundError{}, err, p)
	}
	srv.SetFaults(costest.Faults{})
	require.Empty(t, uploadsOf(t, d, ""), "multipart uploads left open")
}

// TestDeleteRemovesALeftMarker: a marker left by a Delete cut short (a
// crash) is never listed as registry data, and goes with the next Delete
// of its path (as the upload purger's).
func TestDeleteRemovesALeftMarker(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	putFiles(t, d, []string{"/_uploads/u1/startedat"})
	marker := markerOf(internal(d).key("/_uploads/u1"))
	_, err := d.Client().Object.Put(ctx, marker, strings.NewReader(""), nil)
	require.NoError(t, err)
	children, err := d.List(ctx, "/_uploads")
	require.NoError(t, err)
	require.Equal(t, []string{"/_uploads/u1"}, children)
	require.NoError(t, d.Delete(ctx, "/_uploads/u1"))
	// An upload directory's confirming part, which removes the marker, runs
	// in the background.
	require.NoError(t, d.Wait(ctx))
	_, err = d.Client().Object.Head(ctx, marker, nil)
	require.Error(t, err, "the marker is gone")
}
