package cos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
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
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 30; p.ChunkSize = MinChunkSize })
	// One range, streamed; then ranges fetched ahead, whose drops are
	// resumed in the background.
	for _, size := range []int{4*mib + 17, 3*MinChunkSize + 17} {
		content := testenv.RandomBytes(size, 105)
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
			require.True(t, bytes.Equal(content[offset:], got), "content of %d bytes from offset %d", size, offset)
			ranges := (int64(size) - offset + MinChunkSize - 1) / MinChunkSize
			require.Greater(t, srv.Stats().Count("GetObject"), ranges, "the ranges were re-opened")
		}
	}
}

// TestReaderRequestCounts: a read that fits one chunk is one GET, whose
// answer also tells the size, version and CRC (no HEAD); a larger read is
// one GET per chunk from the offset.
func TestReaderRequestCounts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	const chunk = MinChunkSize
	objects := map[string][]byte{
		"/empty": nil,
		"/small": testenv.RandomBytes(chunk, 110),
		"/large": testenv.RandomBytes(5*chunk+17, 111),
	}
	for path, content := range objects {
		require.NoError(t, d.PutContent(ctx, path, content))
	}
	for _, tc := range []struct {
		name, path string
		offset     int64
		requests   int64
	}{
		{"empty object", "/empty", 0, 1},
		{"one chunk from 0", "/small", 0, 1},
		{"one chunk from inside", "/small", 1000, 1},
		{"past the end: GET, then HEAD for an upload in progress", "/small", chunk + 5, 2},
		{"six chunks from 0", "/large", 0, 6},
		{"five chunks from inside the first", "/large", 20, 5},
		{"the last chunk", "/large", 5 * chunk, 1},
		{"one chunk to the end", "/large", 4*chunk + 17, 1},
		{"one chunk and a byte to the end", "/large", 4*chunk + 16, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetStats()
			r, err := d.Reader(ctx, tc.path, tc.offset)
			require.NoError(t, err)
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			content := objects[tc.path]
			want := content[min(tc.offset, int64(len(content))):]
			require.True(t, bytes.Equal(want, got), "%d bytes read, want %d", len(got), len(want))
			st := srv.Stats()
			require.Equal(t, tc.requests, st.Total(), "requests: %v", st.Requests)
		})
	}
}

// TestReaderDeliversEveryByteInOrder: reads from random offsets, in reads
// of random sizes, across chunks fetched ahead, return the object's bytes.
func TestReaderDeliversEveryByteInOrder(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	content := testenv.RandomBytes(7*MinChunkSize/2, 112)
	require.NoError(t, d.PutContent(ctx, "/blob", content))
	rng := rand.New(rand.NewPCG(1, 2))
	offsets := []int64{0, 1, MinChunkSize - 1, MinChunkSize, 3 * MinChunkSize, int64(len(content)) - 1}
	for range 6 {
		offsets = append(offsets, rng.Int64N(int64(len(content))))
	}
	for _, offset := range offsets {
		r, err := d.Reader(ctx, "/blob", offset)
		require.NoError(t, err)
		var got []byte
		buf := make([]byte, 1<<20)
		for {
			n, err := r.Read(buf[:1+rng.IntN(len(buf))])
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "offset %d", offset)
		}
		require.NoError(t, r.Close())
		require.True(t, bytes.Equal(content[offset:], got), "content from offset %d", offset)
	}
}

// TestReaderRefusesAVersionChangedMidRead: the ranges fetched after an
// overwrite are pinned to the version the first GET saw, so the read
// fails, having delivered only bytes of that version.
func TestReaderRefusesAVersionChangedMidRead(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	// More ranges than are fetched ahead, so some start after the overwrite.
	old := testenv.RandomBytes((readAhead+3)*MinChunkSize, 113)
	require.NoError(t, d.PutContent(ctx, "/blob", old))
	r, err := d.Reader(ctx, "/blob", 0)
	require.NoError(t, err)
	got := make([]byte, 10)
	_, err = io.ReadFull(r, got)
	require.NoError(t, err)
	require.NoError(t, d.PutContent(ctx, "/blob", testenv.RandomBytes(len(old), 114)))
	rest, err := io.ReadAll(r)
	require.ErrorContains(t, err, "changed while it was being read")
	require.NoError(t, r.Close())
	got = append(got, rest...)
	require.True(t, bytes.Equal(old[:len(got)], got), "the %d bytes delivered are the old version's", len(got))
}

// corruptingWriter flips a bit of the first byte it writes.
type corruptingWriter struct {
	http.ResponseWriter
	done bool
}

func (w *corruptingWriter) Write(p []byte) (int, error) {
	if !w.done && len(p) > 0 {
		w.done = true
		p = append([]byte{p[0] ^ 1}, p[1:]...)
	}
	return w.ResponseWriter.Write(p)
}

// TestReaderDetectsACorruptRange: a full read is checked against the
// object's CRC64 end to end, also when a range fetched ahead is corrupt.
func TestReaderDetectsACorruptRange(t *testing.T) {
	ctx := context.Background()
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	corrupt := fmt.Sprintf("bytes=%d-", 2*MinChunkSize)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.Header.Get("Range"), corrupt) {
			w = &corruptingWriter{ResponseWriter: w}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	content := testenv.RandomBytes(4*MinChunkSize, 115)
	require.NoError(t, d.PutContent(ctx, "/blob", content))
	r, err := d.Reader(ctx, "/blob", 0)
	require.NoError(t, err)
	_, err = io.ReadAll(r)
	require.ErrorContains(t, err, "corrupt")
	require.NoError(t, r.Close())
}

// TestReaderMemoryIsBounded: read-ahead holds at most readAhead buffers
// and half the budget, however slowly the caller reads; Close gives them
// back; and with the budget held by writers a read streams every range
// instead of waiting.
func TestReaderMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	const budget = 2*readAhead - 2 // chunks: reads may hold readAhead-1
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxBufferMemory = budget * MinChunkSize })
	pool := internal(d).buffers
	content := testenv.RandomBytes(2*readAhead*MinChunkSize, 116)
	require.NoError(t, d.PutContent(ctx, "/blob", content))

	r, err := d.Reader(ctx, "/blob", 0)
	require.NoError(t, err)
	buf := make([]byte, 256*kib)
	held := 0
	for read := 0; read < len(content)/2; {
		n, err := r.Read(buf)
		require.NoError(t, err)
		read += n
		held = max(held, pool.inUsePieces())
		require.LessOrEqual(t, pool.inUsePieces(), budget*MinChunkSize/pieceSize/2, "pieces held after %d bytes", read)
	}
	require.Positive(t, held, "ranges were fetched ahead")
	require.NoError(t, r.Close())
	require.Equal(t, 0, pool.inUsePieces(), "Close gave every buffer back")
	require.Equal(t, 0, pool.reads)

	// Writers hold the whole budget: the read streams, one GET per range.
	var taken [][]byte
	for range budget * MinChunkSize / pieceSize {
		b, err := pool.get(ctx, false)
		require.NoError(t, err)
		taken = append(taken, b)
	}
	srv.ResetStats()
	got, err := d.GetContent(ctx, "/blob")
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, got), "content read with no buffer free")
	require.EqualValues(t, 2*readAhead, srv.Stats().Count("GetObject"))
	pool.put(taken, false)
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

// TestCheckRange: one Content-Range check for both ranged GETs, a read's
// [start, end) and a resume's suffix: the answer must be the range asked,
// and a 200 only when the range asks for the whole object.
func TestCheckRange(t *testing.T) {
	answer := func(status int, length int64, cr string) *http.Response {
		h := http.Header{}
		if cr != "" {
			h.Set("Content-Range", cr)
		}
		return &http.Response{StatusCode: status, ContentLength: length, Header: h}
	}
	for _, tc := range []struct {
		name        string
		r           byteRange
		resp        *http.Response
		first, size int64 // when ok
		ok          bool
	}{
		{"range", byteRange{start: 2, end: 5}, answer(206, 3, "bytes 2-4/10"), 2, 10, true},
		{"range past the end", byteRange{start: 8, end: 20}, answer(206, 2, "bytes 8-9/10"), 8, 10, true},
		{"range, other bytes", byteRange{start: 2, end: 5}, answer(206, 3, "bytes 3-5/10"), 0, 0, false},
		{"range, short body", byteRange{start: 2, end: 5}, answer(206, 2, "bytes 2-4/10"), 0, 0, false},
		{"range from 0 as a 200", byteRange{start: 0, end: 20}, answer(200, 10, ""), 0, 10, true},
		{"range ignored", byteRange{start: 0, end: 5}, answer(200, 10, ""), 0, 0, false},
		{"suffix", byteRange{suffix: 4}, answer(206, 4, "bytes 6-9/10"), 6, 10, true},
		{"long suffix", byteRange{suffix: 40}, answer(206, 10, "bytes 0-9/10"), 0, 10, true},
		{"long suffix as a 200", byteRange{suffix: 40}, answer(200, 10, ""), 0, 10, true},
		{"suffix ignored", byteRange{suffix: 4}, answer(200, 10, ""), 0, 0, false},
		{"suffix, other bytes", byteRange{suffix: 4}, answer(206, 4, "bytes 5-8/10"), 0, 0, false},
		{"no length", byteRange{suffix: 4}, answer(206, -1, "bytes 6-9/10"), 0, 0, false},
		{"no Content-Range", byteRange{suffix: 4}, answer(206, 4, ""), 0, 0, false},
	} {
		first, size, err := checkRange(tc.resp, tc.r)
		if !tc.ok {
			require.Error(t, err, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Equal(t, []int64{tc.first, tc.size}, []int64{first, size}, tc.name)
	}
}
