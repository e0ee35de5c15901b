package cos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/registry-cos/cos/costest"
	"github.com/stretchr/testify/require"
)

// TestMoveOntoItselfKeepsContent: Move(p, p) keeps p, below and above
// multipartcopythreshold.
func TestMoveOntoItselfKeepsContent(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MultipartCopyThreshold = 2 * mib })
	for _, size := range []int{10, 3 * mib} {
		p := fmt.Sprintf("/self/%d", size)
		data := randomBytes(t, size)
		require.NoError(t, d.PutContent(ctx, p, data))
		require.NoError(t, d.Move(ctx, p, p), "size %d", size)
		got, err := d.GetContent(ctx, p)
		require.NoError(t, err, "size %d", size)
		require.True(t, bytes.Equal(data, got), "content of size %d after Move onto itself", size)
	}
	require.IsType(t, storagedriver.PathNotFoundError{}, d.Move(ctx, "/self/missing", "/self/missing"))
}

// TestUploadInProgressReadsAsNotFound: a reader of an upload in progress
// gets PathNotFoundError at every offset, and Walk reports the written
// size as Stat does.
func TestUploadInProgressReadsAsNotFound(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	w, err := d.Writer(ctx, "/up/data", false)
	require.NoError(t, err)
	_, err = w.Write([]byte("0123456789"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	for _, offset := range []int64{0, 5, 10, 4096, 1 << 20} {
		r, err := d.Reader(ctx, "/up/data", offset)
		if r != nil {
			r.Close()
		}
		require.IsType(t, storagedriver.PathNotFoundError{}, err, "offset %d", offset)
	}
	fi, err := d.Stat(ctx, "/up/data")
	require.NoError(t, err)
	var walked int64 = -1
	require.NoError(t, d.Walk(ctx, "/up", func(f storagedriver.FileInfo) error {
		if f.Path() == "/up/data" {
			walked = f.Size()
		}
		return nil
	}))
	require.EqualValues(t, 10, fi.Size())
	require.Equal(t, fi.Size(), walked, "Walk and Stat agree on an upload's size")
}

// loseAnswers wraps the emulator: the first n requests of operation op are
// applied and their answer replaced by a dropped connection.
func loseAnswers(t *testing.T, op string, n int32) (*costest.Handler, *httptest.Server) {
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	var lost atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before := h.Stats().Count(op)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if h.Stats().Count(op) > before && lost.Add(1) <= n {
			panic(http.ErrAbortHandler) // the answer is lost
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

func driverOn(t *testing.T, url string, tune func(*Parameters)) *Driver {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	p.Bucket, p.Region = costest.DefaultBucket, costest.DefaultRegion
	p.Endpoint = url
	if tune != nil {
		tune(&p)
	}
	d, err := New(context.Background(), p)
	require.NoError(t, err)
	return d
}

// TestLostInitiateLeavesNoUpload: an Initiate whose answer is lost is
// retried; the upload the first one made is aborted.
func TestLostInitiateLeavesNoUpload(t *testing.T) {
	ctx := context.Background()
	h, srv := loseAnswers(t, "InitiateMultipartUpload", 1)
	d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/lost/data", false)
	require.NoError(t, err)
	_, err = w.Write(randomBytes(t, MinChunkSize+10))
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	require.EqualValues(t, 2, h.Stats().Count("InitiateMultipartUpload"))
	require.Empty(t, uploadsOf(t, d, ""), "no upload left behind")
}

func uploadsOf(t *testing.T, d *Driver, prefix string) []string {
	res, _, err := d.Client().Object.ListUploads(context.Background(), nil)
	require.NoError(t, err)
	var ids []string
	for _, u := range res.Upload {
		if strings.HasPrefix(u.Key, prefix) {
			ids = append(ids, u.Key+" "+u.UploadID)
		}
	}
	return ids
}

// TestOverwrittenUploadIsAborted: PutContent, Move or a new Writer onto a
// path with an upload in progress aborts that upload.
func TestOverwrittenUploadIsAborted(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	overwrite := map[string]func(p string) error{
		"PutContent": func(p string) error { return d.PutContent(ctx, p, []byte("new")) },
		"Move": func(p string) error {
			require.NoError(t, d.PutContent(ctx, "/src", []byte("new")))
			return d.Move(ctx, "/src", p)
		},
		"Writer": func(p string) error {
			w, err := d.Writer(ctx, p, false)
			require.NoError(t, err)
			_, err = w.Write([]byte("new"))
			require.NoError(t, err)
			return w.Commit(ctx)
		},
	}
	for name, f := range overwrite {
		p := "/over/" + name
		w, err := d.Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = w.Write(randomBytes(t, 2*mib))
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

// TestUploadStateVersion: records carry a version; an unknown one is refused.
func TestUploadStateVersion(t *testing.T) {
	s := &uploadState{UploadID: "u", Size: 3}
	rec := s.encode([]byte("abc"))
	got, tail, err := decodeUploadState(rec)
	require.NoError(t, err)
	require.Equal(t, uploadStateVersion, got.Version)
	require.Equal(t, "abc", string(tail))
	require.True(t, isUploadRecordSize(int64(len(rec))))
	for _, header := range []string{`{"size":3,"tailSize":0}`, `{"v":99,"size":3,"tailSize":0}`} {
		_, _, err = decodeUploadState([]byte(header + "\n"))
		require.ErrorContains(t, err, "version", header)
	}
	_, _, err = decodeUploadState([]byte(`{"v":1,"size":3,"parts":[{"n":1,"etag":"e","size":3}]}` + "\n"))
	require.ErrorContains(t, err, "part 1 has no CRC64")
}

// TestDriverDoesNotFormatSecrets: no value reachable from the driver
// prints the secret key.
func TestDriverDoesNotFormatSecrets(t *testing.T) {
	srv := newServer(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	for _, v := range []any{d, internal(d), *internal(d), internal(d).params} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			require.NotContains(t, fmt.Sprintf(verb, v), srv.SecretKey, verb)
		}
	}
}

// TestEndpointForms: copy sources always name the bucket's region host;
// with acceleration only object data goes to the acceleration host.
func TestEndpointForms(t *testing.T) {
	base := func() Parameters {
		p := DefaultParameters()
		p.Bucket, p.Region = "registry-1250000000", "ap-guangzhou"
		return p
	}
	const canonical = "registry-1250000000.cos.ap-guangzhou.myqcloud.com"
	cases := map[string]struct {
		tune               func(*Parameters)
		api, bucket, fails string
	}{
		"region":                       {tune: func(p *Parameters) {}, api: canonical, bucket: canonical},
		"accelerate":                   {tune: func(p *Parameters) { p.Accelerate = true }, api: "registry-1250000000.cos.accelerate.myqcloud.com", bucket: canonical},
		"custom domain":                {tune: func(p *Parameters) { p.Endpoint = "https://cdn.example.com" }, api: "cdn.example.com", bucket: "cdn.example.com"},
		"bucket host, region derived":  {tune: func(p *Parameters) { p.Endpoint, p.Region = "https://"+canonical, "" }, api: canonical, bucket: canonical},
		"accelerate without region":    {tune: func(p *Parameters) { p.Accelerate, p.Region = true, "" }, fails: "region"},
		"custom domain without region": {tune: func(p *Parameters) { p.Endpoint, p.Region = "https://cdn.example.com", "" }, fails: "region"},
	}
	for name, c := range cases {
		p := base()
		c.tune(&p)
		_, e, err := p.validated()
		if c.fails != "" {
			require.ErrorContains(t, err, c.fails, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, c.api, e.api.Host, name)
		require.Equal(t, c.bucket, e.bucketAPI.Host, name)
		require.Equal(t, canonical, e.copySourceHost, name)
	}
}

// TestRootDirectoryDotSegments: "." and ".." segments are refused.
func TestRootDirectoryDotSegments(t *testing.T) {
	for _, root := range []string{"/registry/../escape", "..", "/a/./b", "/a/.."} {
		p := DefaultParameters()
		p.Bucket, p.Region, p.RootDirectory = "registry-1250000000", "ap-guangzhou", root
		require.ErrorContains(t, p.Validate(), "rootdirectory", root)
	}
}

// TestRangedReadIsChecked: a ranged read whose answer is not the range
// asked, or whose length is unknown, is an error, never wrong bytes.
func TestRangedReadIsChecked(t *testing.T) {
	ctx := context.Background()
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	var mode atomic.Value
	mode.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := mode.Load().(string)
		if r.Method != http.MethodGet || m == "" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		switch m {
		case "whole": // a server that ignores Range
			w.Header().Del("Content-Range")
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(200)
			_, _ = w.Write([]byte("0123456789"))
			return
		case "wrong range":
			w.Header().Set("Content-Range", "bytes 0-4/10")
		case "no length":
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body[:1]) // then the connection drops
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	d := driverOn(t, srv.URL, nil)
	require.NoError(t, d.PutContent(ctx, "/r", []byte("0123456789")))
	for _, m := range []string{"whole", "wrong range", "no length"} {
		mode.Store(m)
		r, err := d.Reader(ctx, "/r", 5)
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		require.Error(t, err, m)
	}
	mode.Store("")
	r, err := d.Reader(ctx, "/r", 5)
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "56789", string(got))
}
