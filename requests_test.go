package cos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestRequestCounts pins what common operations cost in COS requests.
func TestRequestCounts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
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
		_, err = w.Write(testenv.RandomBytes(3*mib, 106))
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
				require.NoError(t, in.putObject(ctx, in.key(fmt.Sprintf("%s/t%02d/index/sha256/%03d/link", tags, i, j)), nil))
			}
			require.NoError(t, in.putObject(ctx, in.key(fmt.Sprintf("%s/t%02d/current/link", tags, i)), nil))
		}
		srv.ResetStats()
		got, err := walked(t, d, tags, func(storagedriver.FileInfo) error { return storagedriver.ErrSkipDir })
		require.NoError(t, err)
		require.Len(t, got, 30)
		// One flat page to learn the tree is big, then one delimiter page.
		require.LessOrEqual(t, srv.Stats().Count("ListObjects"), int64(2), "listing requests")
	})
}

// TestFaults: with 5xx, SlowDown and dropped connections at a steady rate,
// writes and reads still come back byte-identical.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{Seed: 7})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxRetries = 10 })
	content := testenv.RandomBytes(3*MinChunkSize+5, 107)
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
