package cos

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// pushInChunks writes content to path the way the registry serves a
// client that PATCHes it in chunks: a new writer per chunk, resumed from
// the state record and closed, then a last resume and Commit.
func pushInChunks(t *testing.T, d *Driver, path string, content []byte, chunk int) {
	t.Helper()
	ctx := context.Background()
	w, err := d.Writer(ctx, path, false)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	for off := 0; off < len(content); off += chunk {
		w, err := d.Writer(ctx, path, true)
		require.NoError(t, err, "resume at %d", off)
		require.EqualValues(t, off, w.Size(), "size after resume")
		_, err = w.Write(content[off:min(off+chunk, len(content))])
		require.NoError(t, err, "write at %d", off)
		require.NoError(t, w.Close(), "close at %d", off)
	}
	w, err = d.Writer(ctx, path, true)
	require.NoError(t, err)
	require.EqualValues(t, len(content), w.Size())
	require.NoError(t, w.Commit(ctx))
}

// partCount is the number of parts of the object at path, from its
// multipart ETag ("…-N"); 0 for an object of one PUT.
func partCount(t *testing.T, d *Driver, path string) int {
	t.Helper()
	resp, err := d.Client().Object.Head(context.Background(), internal(d).key(path), nil)
	require.NoError(t, err)
	etag := strings.Trim(resp.Header.Get("ETag"), `"`)
	_, n, ok := strings.Cut(etag, "-")
	if !ok {
		return 0
	}
	count, err := strconv.Atoi(n)
	require.NoError(t, err)
	return count
}

// TestPartsIndependentOfChunks: a blob pushed in chunks of any size uses
// parts of chunksize (all but the last), so 10,000 parts reach 10,000 ×
// chunksize; the content and its CRC64 are right, and the bytes sent to
// COS stay within twice the blob.
func TestPartsIndependentOfChunks(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	size := 3*MinChunkSize + 2*mib + 7 // 4 parts of 5 MiB at most
	content := testenv.RandomBytes(size, 950)
	wantParts := (size + MinChunkSize - 1) / MinChunkSize
	for _, chunk := range []int{64 * kib, 256 * kib, mib, mib + 12345, 3 * mib, 7 * mib, size} {
		t.Run(fmt.Sprintf("chunk %d", chunk), func(t *testing.T) {
			p := fmt.Sprintf("/chunks/%d", chunk)
			srv.ResetStats()
			pushInChunks(t, d, p, content, chunk)
			st := srv.Stats()
			got, err := d.GetContent(ctx, p) // checked against COS's CRC64 as it is read
			require.NoError(t, err)
			require.True(t, bytes.Equal(content, got), "content")
			parts := partCount(t, d, p)
			require.LessOrEqual(t, parts, wantParts, "parts of a %d-byte blob in chunks of %d", size, chunk)
			ratio := float64(st.BytesIn) / float64(size)
			t.Logf("chunk %d: %d parts, %.3f× the blob sent, requests %v", chunk, parts, ratio, st.Requests)
			require.LessOrEqual(t, ratio, 2.0, "bytes sent to COS over the blob's size")
			require.Empty(t, uploadsOf(t, d, internal(d).key(p)), "no upload left behind")
		})
	}
}
