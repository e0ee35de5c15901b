package cos

import (
	"bytes"
	"context"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestCRCOfIsCRC64: the four-stream CRC equals hash/crc64's at every
// length around its thresholds and alignments.
func TestCRCOfIsCRC64(t *testing.T) {
	data := testenv.RandomBytes(1*mib+33, 120)
	for _, n := range []int{0, 1, 7, 8, 9, 16*kib - 1, 16 * kib, 16*kib + 1, 16*kib + 31, 64*kib + 5, 1 * mib, 1*mib + 33} {
		for _, from := range []int{0, 3} {
			b := data[from : from+min(n, len(data)-from)]
			require.Equal(t, crc64.Checksum(b, crcTable), crcOf(b), "CRC64 of %d bytes at offset %d", len(b), from)
		}
	}
}

// corruptingBody flips a bit of the first byte read through it.
type corruptingBody struct {
	io.ReadCloser
	done bool
}

func (b *corruptingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.done {
		p[0] ^= 1
		b.done = true
	}
	return n, err
}

// TestWritesAreCheckedAgainstCOSCRC: a PUT or part whose bytes are damaged
// on the way is caught by COS's CRC64 in the answer and sent again; with
// no retries left it is an error, never a silent success; and an answer
// without a CRC64 is refused.
func TestWritesAreCheckedAgainstCOSCRC(t *testing.T) {
	ctx := context.Background()
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	var damage atomic.Int64 // request bodies still to damage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.ContentLength > 0 && damage.Add(-1) >= 0 {
			r.Body = &corruptingBody{ReadCloser: r.Body}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	content := testenv.RandomBytes(2*MinChunkSize+5, 121)

	damage.Store(1)
	require.NoError(t, d.PutContent(ctx, "/put", content[:1000]))
	damage.Store(2)
	w, err := d.Writer(ctx, "/parts", false)
	require.NoError(t, err)
	_, err = w.Write(content)
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	require.NoError(t, w.Close())
	require.LessOrEqual(t, damage.Load(), int64(0), "the bodies were damaged")
	for path, want := range map[string][]byte{"/put": content[:1000], "/parts": content} {
		got, err := d.GetContent(ctx, path)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "content of %s", path)
	}

	strict := driverOn(t, srv.URL, func(p *Parameters) { p.MaxRetries = 0 })
	damage.Store(1)
	require.ErrorContains(t, strict.PutContent(ctx, "/put", content[:1000]), "COS computed CRC64")
	h.SetMisbehavior(costest.Misbehavior{OmitCRC64: true})
	require.ErrorContains(t, strict.PutContent(ctx, "/put", content[:1000]), "COS sent no CRC64")
}
