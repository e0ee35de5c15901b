package cos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestReaderResumesDroppedConnections: most GETs are cut mid-body, yet
// the pull completes, each re-open starting where the last one broke.
func TestReaderResumesDroppedConnections(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{Seed: 3})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 30 })
	content := testenv.RandomBytes(4*mib+17, 105)
	require.NoError(t, d.PutContent(ctx, "/blob", content))

	for _, offset := range []int64{0, 1234567} {
		srv.SetFaults(costest.Faults{DropRate: 0.8})
		srv.ResetStats()
		r, err := d.Reader(ctx, "/blob", offset)
		require.NoError(t, err)
		got, err := io.ReadAll(r)
		srv.SetFaults(costest.Faults{})
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.True(t, bytes.Equal(content[offset:], got), "content from offset %d", offset)
		require.Greater(t, srv.Stats().Count("GetObject"), int64(1), "the stream was re-opened")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
func (failingReader) Close() error             { return nil }

// TestReaderRefusesAChangedObject: a resume is pinned to the object's
// ETag, so an overwrite in between is an error, never mixed content.
func TestReaderRefusesAChangedObject(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	require.NoError(t, d.PutContent(ctx, "/blob", bytes.Repeat([]byte("a"), 1000)))
	r, err := d.Reader(ctx, "/blob", 0)
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	require.NoError(t, d.PutContent(ctx, "/blob", bytes.Repeat([]byte("b"), 1000)))
	rr := r.(*resumingReader)
	rr.body.Close()
	rr.body = failingReader{}
	_, err = io.ReadAll(r)
	require.ErrorContains(t, err, "changed while it was being read")
}

// TestReaderDetectsCorruption: a full read is checked against COS's CRC64.
func TestReaderDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	require.NoError(t, d.PutContent(ctx, "/blob", []byte("content")))
	r, err := d.Reader(ctx, "/blob", 0)
	require.NoError(t, err)
	r.(*resumingReader).wantCRC = "12345"
	_, err = io.ReadAll(r)
	require.ErrorContains(t, err, "corrupt")
}

// TestUploadInProgressReadsAsNotFound: a reader of an upload in progress
// gets PathNotFoundError at every offset, and Walk reports the written
// size as Stat does.
func TestUploadInProgressReadsAsNotFound(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
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
