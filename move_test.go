package cos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestMoveWithMultipartCopy moves an object in parallel part copies.
func TestMoveWithMultipartCopy(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.MultipartCopyThreshold = 2 * mib
		p.MultipartCopyChunkSize = 1 * mib
	})
	content := testenv.RandomBytes(5*mib+123, 103)
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

// TestCopyCRCMismatchIsFinal: a copy whose CRC64 differs from the source's
// is reported at once, by the single copy and the multipart copy alike;
// sending it again cannot mend it.
func TestCopyCRCMismatchIsFinal(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MultipartCopyChunkSize = minPartSize })
	id := internal(d)
	require.NoError(t, d.PutContent(ctx, "/src", testenv.RandomBytes(2*minPartSize+1, 104)))
	head, err := id.head(ctx, id.key("/src"))
	require.NoError(t, err)
	head.crc64 = "12345" // what the source's HEAD would have said were it another object

	for name, copyFn := range map[string]func() error{
		"CopyObject":              func() error { return id.copyObject(ctx, id.key("/src"), id.key("/single"), head, "") },
		"CompleteMultipartUpload": func() error { return id.multipartCopy(ctx, id.key("/src"), id.key("/parts"), head, "") },
	} {
		srv.ResetStats()
		err := copyFn()
		require.ErrorContains(t, err, "CRC64", name)
		require.EqualValues(t, 1, srv.Stats().Count(name), "%s: a CRC mismatch was sent again", name)
	}
}

// TestMoveOntoItselfKeepsContent: Move(p, p) keeps p, below and above
// multipartcopythreshold.
func TestMoveOntoItselfKeepsContent(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MultipartCopyThreshold = 2 * mib })
	for _, size := range []int{10, 3 * mib} {
		p := fmt.Sprintf("/self/%d", size)
		data := testenv.RandomBytes(size, 901)
		require.NoError(t, d.PutContent(ctx, p, data))
		require.NoError(t, d.Move(ctx, p, p), "size %d", size)
		got, err := d.GetContent(ctx, p)
		require.NoError(t, err, "size %d", size)
		require.True(t, bytes.Equal(data, got), "content of size %d after Move onto itself", size)
	}
	require.IsType(t, storagedriver.PathNotFoundError{}, d.Move(ctx, "/self/missing", "/self/missing"))
}

// TestMoveOntoUploadAbortsIt: a Move onto a path with an upload in
// progress aborts that upload, whose state record the copy replaces.
func TestMoveOntoUploadAbortsIt(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	overwrite := map[string]func(p string) error{
		"Move": func(p string) error {
			require.NoError(t, d.PutContent(ctx, "/src", []byte("new")))
			return d.Move(ctx, "/src", p)
		},
	}
	for name, f := range overwrite {
		p := "/over/" + name
		w, err := d.Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = w.Write(testenv.RandomBytes(MinChunkSize+2*mib, 903)) // a part, and a tail in the record
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.Len(t, uploadsOf(t, d, internal(d).key(p)), 1, name)
		require.NoError(t, f(p), name)
		require.Empty(t, uploadsOf(t, d, internal(d).key(p)), "%s leaves no upload behind", name)
		got, err := d.GetContent(ctx, p)
		require.NoError(t, err)
		require.Equal(t, "new", string(got), name)
	}
}

// TestMoveAfterStat: the registry Stats an upload and moves it right
// after; Move takes that Stat's answer instead of a HEAD of its own, on
// both copy paths.
func TestMoveAfterStat(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MultipartCopyThreshold = minPartSize })
	for name, size := range map[string]int{"CopyObject": minPartSize / 2, "UploadPartCopy": 2*minPartSize + 1} {
		content := testenv.RandomBytes(size, 201)
		require.NoError(t, d.PutContent(ctx, "/src", content))
		_, err := d.Stat(ctx, "/src")
		require.NoError(t, err)
		srv.ResetStats()
		require.NoError(t, d.Move(ctx, "/src", "/dst"))
		// One HEAD, of the destination (an upload in progress there is
		// aborted); none of the source.
		require.EqualValues(t, 1, srv.Stats().Count("HeadObject"), "%s: Move after Stat asks no HEAD of the source", name)
		require.Zero(t, srv.Stats().Count("GetObject"), "%s: a destination that is absent or committed content is not read", name)
		require.Positive(t, srv.Stats().Count(name), "%s: copied that way", name)
		got, err := d.GetContent(ctx, "/dst")
		require.NoError(t, err)
		require.Equal(t, content, got, "%s: moved content", name)
		_, err = d.Stat(ctx, "/src")
		require.IsType(t, storagedriver.PathNotFoundError{}, err, "%s: source gone", name)
	}
}

// TestMoveAfterStatSourceChanged: another process (a second driver on the
// same bucket) rewrites or removes the source between this driver's Stat
// and its Move: the pinned copy fails and Move moves what is there now.
func TestMoveAfterStatSourceChanged(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	tune := func(p *Parameters) { p.MultipartCopyThreshold = minPartSize }
	d, other := newTestDriver(t, srv, tune), newTestDriver(t, srv, tune)
	for name, size := range map[string]int{"single copy": minPartSize / 2, "part copies": 2*minPartSize + 1} {
		require.NoError(t, d.PutContent(ctx, "/src", testenv.RandomBytes(size, 202)))
		_, err := d.Stat(ctx, "/src")
		require.NoError(t, err)
		newer := testenv.RandomBytes(size+1, 203)
		require.NoError(t, other.PutContent(ctx, "/src", newer))
		require.NoError(t, d.Move(ctx, "/src", "/dst"))
		got, err := d.GetContent(ctx, "/dst")
		require.NoError(t, err)
		require.Equal(t, newer, got, "%s: the source as it is now moved", name)

		require.NoError(t, d.PutContent(ctx, "/src", newer))
		_, err = d.Stat(ctx, "/src")
		require.NoError(t, err)
		require.NoError(t, other.Delete(ctx, "/src"))
		require.IsType(t, storagedriver.PathNotFoundError{}, d.Move(ctx, "/src", "/dst"), "%s: source removed meanwhile", name)
	}
}

// TestMoveSizesCopyPartsFromTheSource: a multipart copy takes no more
// parts than COS allows (here a test limit of 5; COS's is 10,000), with
// parts larger than multipartcopychunksize when the source needs them, and
// stops at the first refused part copy instead of sending the rest.
func TestMoveSizesCopyPartsFromTheSource(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.MultipartCopyThreshold = 2 * mib
		p.MultipartCopyChunkSize = 1 * mib
		p.MaxConcurrency = 1
	})
	internal(d).maxParts = 5
	content := testenv.RandomBytes(12*mib+5, 105)
	require.NoError(t, d.PutContent(ctx, "/src", content))
	srv.ResetStats()
	require.NoError(t, d.Move(ctx, "/src", "/dst"))
	require.EqualValues(t, 5, srv.Stats().Count("UploadPartCopy"), "12 MiB in 5 parts of 3 MiB, not 13 of 1 MiB")
	require.Equal(t, 5, partCount(t, d, "/dst"))
	got, err := d.GetContent(ctx, "/dst")
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, got), "moved content differs")

	srv.SetMisbehavior(costest.Misbehavior{Deny: []string{"UploadPartCopy"}})
	srv.ResetStats()
	require.Error(t, d.Move(ctx, "/dst", "/again"))
	srv.SetMisbehavior(costest.Misbehavior{})
	require.EqualValues(t, 1, srv.Stats().Count("UploadPartCopy"), "part copies sent after the first was refused")
	require.Empty(t, uploadsOf(t, d, ""), "the failed copy's upload is aborted")
}

// TestCopyPartSize: at COS's scale, multipartcopychunksize while 10,000
// parts of it hold the source, else whole MiB that do, up to 5 GiB parts.
func TestCopyPartSize(t *testing.T) {
	for _, tc := range []struct {
		size, chunk, want int64
	}{
		{size: 10000 * 32 * mib, chunk: 32 * mib, want: 32 * mib},
		{size: 10000*32*mib + 1, chunk: 32 * mib, want: 33 * mib},
		{size: 976 * gib, chunk: 32 * mib, want: 100 * mib},
		{size: 10000 * maxPartSize, chunk: 32 * mib, want: maxPartSize},
		{size: 10000*maxPartSize + 1, chunk: 32 * mib},
	} {
		got, err := copyPartSize(tc.size, tc.chunk, maxPartCount)
		if tc.want == 0 {
			require.Error(t, err, "size %d", tc.size)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "size %d", tc.size)
		require.LessOrEqual(t, (tc.size+got-1)/got, int64(maxPartCount))
	}
}

// TestMoveOntoAnUploadBeingClosed: a Move onto an upload whose Close is
// growing its record, the Close's Complete landing after the Move's copy
// (held back here until the Move returns): the Move wins (the destination
// reads as the source, the Close fails), or it fails and keeps the source.
// Before, the Complete replaced the moved content with a record: Move
// returned nil and the destination read as PathNotFound.
func TestMoveOntoAnUploadBeingClosed(t *testing.T) {
	ctx := context.Background()
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	const dst = "/over/closing"
	arrived, release := make(chan struct{}), make(chan struct{})
	var held sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") && strings.HasSuffix(r.URL.Path, dst) {
			held.Do(func() { close(arrived); <-release })
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })

	w, err := d.Writer(ctx, dst, false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(2*mib, 906)) // a stored tail: Close grows it at COS
	require.NoError(t, err)
	require.NoError(t, w.Close())
	w, err = d.Writer(ctx, dst, true)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(mib, 907))
	require.NoError(t, err)
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	<-arrived // the Close's Complete is on its way

	source := testenv.RandomBytes(3*mib, 908)
	require.NoError(t, d.PutContent(ctx, "/src", source))
	moveErr := d.Move(ctx, "/src", dst)
	close(release)
	closeErr := <-closed

	if moveErr == nil {
		require.Error(t, closeErr, "the Close after the Move must fail")
		got, err := d.GetContent(ctx, dst)
		require.NoError(t, err, "the moved content")
		require.True(t, bytes.Equal(source, got), "the destination is the source")
	} else {
		got, err := d.GetContent(ctx, "/src")
		require.NoError(t, err, "a failed Move keeps the source")
		require.True(t, bytes.Equal(source, got))
	}
	require.Empty(t, uploadsOf(t, d, internal(d).key(dst)), "no upload left at the destination")
}

// TestMoveOfUploadInProgressIsNotFound: a source that is an upload in
// progress is PathNotFound to Move, whether Move HEADs it itself or finds
// it after a Stat saw content there (the copy pinned to that content's
// ETag is refused and the second look finds the upload's record), and
// nothing is copied.
func TestMoveOfUploadInProgressIsNotFound(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d, other := newTestDriver(t, srv, nil), newTestDriver(t, srv, nil)
	startUpload := func(path string) {
		w, err := other.Writer(ctx, path, false)
		require.NoError(t, err)
		_, err = w.Write([]byte("0123456789"))
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
	startUpload("/unstated")
	require.IsType(t, storagedriver.PathNotFoundError{}, d.Move(ctx, "/unstated", "/dst"))

	require.NoError(t, d.PutContent(ctx, "/stated", []byte("content")))
	_, err := d.Stat(ctx, "/stated")
	require.NoError(t, err)
	startUpload("/stated")
	require.IsType(t, storagedriver.PathNotFoundError{}, d.Move(ctx, "/stated", "/dst"))

	_, err = d.Stat(ctx, "/dst")
	require.IsType(t, storagedriver.PathNotFoundError{}, err, "nothing was copied")
	require.EqualValues(t, 1, srv.Stats().Count("CopyObject"), "only the pinned copy, refused with 412")
}
