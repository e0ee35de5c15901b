package cos

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// cosObjectLimit is the largest object COS holds: 10,000 parts of 5 GiB
// (48.8 TiB, "48.82 TB" in COS's limits).
const cosObjectLimit = defaultMaxParts * maxPartSize

// TestPartTargets: at every chunksize, the part sizes reach 98% of COS's
// object limit in 10,000 parts, never pass 5 GiB, never fall below
// chunksize, and a 60 GiB blob takes some 200 parts.
func TestPartTargets(t *testing.T) {
	for _, chunk := range []int64{MinChunkSize, 8 * mib, DefaultChunkSize, 33*mib + 5, MaxChunkSize} {
		total := maxUploadSize(chunk, defaultMaxParts)
		require.GreaterOrEqual(t, float64(total), 0.98*float64(cosObjectLimit), "chunksize %d", chunk)
		require.Greater(t, total, defaultMaxParts*chunk)
		var sum int64
		parts60 := 0
		for n := 1; n <= defaultMaxParts; n++ {
			size := partTarget(chunk, defaultMaxParts, n)
			require.GreaterOrEqual(t, size, chunk)
			require.LessOrEqual(t, size, int64(maxPartSize))
			if n > 1 {
				require.GreaterOrEqual(t, size, partTarget(chunk, defaultMaxParts, n-1), "sizes never shrink")
			}
			if sum < 60*gib {
				parts60 = n
			}
			sum += size
		}
		require.Equal(t, total, sum)
		require.LessOrEqual(t, parts60, 200, "parts of a 60 GiB blob")
		t.Logf("chunksize %d: largest blob %d bytes (%.2f%% of COS's %d), 60 GiB in %d parts, 5 GiB parts from part %d",
			chunk, total, 100*float64(total)/float64(cosObjectLimit), int64(cosObjectLimit), parts60, firstFullPart(chunk, defaultMaxParts))
	}
	// Lowered limits keep the shape: one part of chunksize, then doubling.
	require.Equal(t, []int64{5 * mib, 10 * mib, 20 * mib, 40 * mib}, []int64{
		partTarget(5*mib, 10, 1), partTarget(5*mib, 10, 2), partTarget(5*mib, 10, 3), partTarget(5*mib, 10, 4)})
}

// growthLimit is the part-count limit the growth tests lower COS's to:
// without growing parts, 10 parts of 5 MiB would stop a blob at 50 MiB.
const growthLimit = 10

// growthSize is a blob the lowered limit forces to grow parts for: parts
// of 5, 10, 20 and 40 MiB, then 25 MiB of the fifth (80 MiB).
const growthSize = 100*mib + 7

// growthParts is the most parts growthSize takes.
const growthParts = 5

// startGrowth starts an emulator and n drivers with the part-count limit
// lowered to growthLimit and chunksize 5 MiB.
func startGrowth(t *testing.T, n int) (*costest.Server, []*Driver) {
	srv := testenv.StartEmulator(t, costest.Options{MaxParts: growthLimit})
	var drivers []*Driver
	for range n {
		d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
		internal(d).maxParts = growthLimit
		drivers = append(drivers, d)
	}
	return srv, drivers
}

// checkGrown checks the blob committed at path: its content (read whole,
// checked against COS's CRC64), its part count, and that nothing was left
// beside it once the registry's upload directory dir is deleted.
func checkGrown(t *testing.T, d *Driver, dir, path string, content []byte) {
	t.Helper()
	ctx := context.Background()
	parts := partCount(t, d, path)
	require.LessOrEqual(t, parts, growthParts, "parts")
	require.Greater(t, parts, 1, "a multipart object")
	blob := "/blobs" + path
	require.NoError(t, d.Move(ctx, path, blob), "move of the grown blob")
	got, err := d.GetContent(ctx, blob)
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, got), "content")
	require.NoError(t, d.PutContent(ctx, dir+"/startedat", []byte("x"))) // as the registry writes it
	require.NoError(t, d.Delete(ctx, dir))
	require.NoError(t, d.Wait(ctx)) // an upload directory's uploads are aborted in Delete's background part
	require.Empty(t, uploadsOf(t, d, ""), "no upload left behind")
	_, err = d.List(ctx, dir)
	require.IsType(t, storagedriver.PathNotFoundError{}, err, "nothing left in %s", dir)
	require.NoError(t, d.Delete(ctx, blob))
}

// TestPartsGrowPastTheLimitOfChunksize pushes a blob that parts of
// chunksize cannot hold within the (lowered) part-count limit: in one
// PATCH, in 1 MiB chunks and in chunks of odd sizes alternating between
// two drivers (replicas). Every part but the last holds at least 1 MiB
// (the emulator refuses a Complete otherwise), the content is right and
// nothing is left behind.
func TestPartsGrowPastTheLimitOfChunksize(t *testing.T) {
	ctx := context.Background()
	srv, drivers := startGrowth(t, 2)
	content := testenv.RandomBytes(growthSize, 2701)
	require.Greater(t, int64(growthSize), int64(growthLimit*MinChunkSize), "the blob needs parts larger than chunksize")

	t.Run("one PATCH", func(t *testing.T) {
		const dir, p = "/growth/one", "/growth/one/data"
		srv.ResetStats()
		w, err := drivers[0].Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = w.Write(content)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		w, err = drivers[1].Writer(ctx, p, true)
		require.NoError(t, err)
		require.NoError(t, w.Commit(ctx))
		st := srv.Stats()
		t.Logf("one PATCH: %.3f× the blob sent, requests %v", float64(st.BytesIn)/growthSize, st.Requests)
		require.LessOrEqual(t, float64(st.BytesIn)/growthSize, 1.01, "bytes sent over the blob's size")
		checkGrown(t, drivers[0], dir, p, content)
	})
	t.Run("1 MiB chunks", func(t *testing.T) {
		const dir, p = "/growth/mib", "/growth/mib/data"
		srv.ResetStats()
		pushInChunks(t, drivers[0], p, content, mib)
		st := srv.Stats()
		t.Logf("1 MiB chunks: %.3f× the blob sent, requests %v", float64(st.BytesIn)/growthSize, st.Requests)
		require.LessOrEqual(t, float64(st.BytesIn)/growthSize, 1.1, "bytes sent over the blob's size")
		checkGrown(t, drivers[0], dir, p, content)
	})
	t.Run("alternating replicas", func(t *testing.T) {
		const dir, p = "/growth/alternating", "/growth/alternating/data"
		w, err := drivers[0].Writer(ctx, p, false)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		chunks := []int{3*mib + 17, 700 * kib, 12*mib + 5, 6 * mib}
		i := 0
		for off := 0; off < len(content); i++ {
			w, err := drivers[i%2].Writer(ctx, p, true)
			require.NoError(t, err, "resume at %d", off)
			require.EqualValues(t, off, w.Size(), "size after resume")
			end := min(off+chunks[i%len(chunks)], len(content))
			_, err = w.Write(content[off:end])
			require.NoError(t, err, "write at %d", off)
			require.NoError(t, w.Close(), "close at %d", off)
			off = end
		}
		w, err = drivers[i%2].Writer(ctx, p, true)
		require.NoError(t, err)
		require.NoError(t, w.Commit(ctx))
		checkGrown(t, drivers[1], dir, p, content)
	})
}

// TestPartsGrowAcrossACrash: a PATCH that finishes the assembly the state
// record names (and starts the next) dies before its Close; the upload
// resumes from the record on another driver, whose assembly is gone: it
// goes on from a copy of what the record lists, and the blob is right.
func TestPartsGrowAcrossACrash(t *testing.T) {
	ctx := context.Background()
	srv, drivers := startGrowth(t, 2)
	content := testenv.RandomBytes(growthSize, 2702)
	const dir, p = "/growth/crash", "/growth/crash/data"
	w, err := drivers[0].Writer(ctx, p, false)
	require.NoError(t, err)
	_, err = w.Write(content[:12*mib]) // part 1, part 2's assembly with 5 MiB, 2 MiB stored
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Len(t, uploadsOf(t, drivers[0], internal(drivers[0]).key(p)+".part2"), 1, "part 2 is being assembled")

	w, err = drivers[0].Writer(ctx, p, true)
	require.NoError(t, err)
	_, err = w.Write(content[12*mib : 42*mib]) // finishes part 2, assembles part 3 and more
	require.NoError(t, err)
	dead := w.(*writer)
	dead.uploads.Wait() // what it sent has arrived; then it is killed: no Close
	require.Greater(t, dead.nextPart, 2, "the killed writer finished part 2")

	srv.ResetStats()
	w, err = drivers[1].Writer(ctx, p, true)
	require.NoError(t, err)
	require.EqualValues(t, 12*mib, w.Size(), "the size of the last Close")
	_, err = w.Write(content[12*mib : 30*mib])
	require.NoError(t, err)
	require.NoError(t, w.Close())
	st := srv.Stats()
	require.EqualValues(t, 1, st.Count("ListParts"), "the resumed assembly was checked")
	require.EqualValues(t, 1, st.Count("HeadObject"), "and found completed")
	for off := 30 * mib; off < len(content); off += 9 * mib {
		w, err := drivers[off/mib%2].Writer(ctx, p, true)
		require.NoError(t, err)
		require.EqualValues(t, off, w.Size())
		_, err = w.Write(content[off:min(off+9*mib, len(content))])
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
	w, err = drivers[0].Writer(ctx, p, true)
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	checkGrown(t, drivers[1], dir, p, content)
}

// TestUploadRefusedPastTheLargestBlob: a write that would need more parts
// than COS allows fails with an error that says so, not at Complete.
func TestUploadRefusedPastTheLargestBlob(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{MaxParts: 2})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	internal(d).maxParts = 2 // parts of 5 and 10 MiB: 15 MiB at most
	require.EqualValues(t, 15*mib, maxUploadSize(MinChunkSize, 2))
	w, err := d.Writer(ctx, "/full/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(20*mib, 2703))
	require.ErrorContains(t, err, "cannot grow past 15728640 bytes: COS allows 2 parts")
	require.NoError(t, w.Cancel(ctx))
	require.Empty(t, uploadsOf(t, d, ""), "no upload left behind")
}

// TestRecordVersionWithAssembly: a record is written in format 2 (which the
// release before reads) unless an assembly is in progress, then in format
// 3; an assembly in a format-2 header is refused as corrupt.
func TestRecordVersionWithAssembly(t *testing.T) {
	ctx := context.Background()
	_, drivers := startGrowth(t, 1)
	d := drivers[0]
	version := func(p string) int {
		t.Helper()
		rec, _, err := internal(d).getUploadState(ctx, internal(d).key(p))
		require.NoError(t, err)
		return rec.state.Version
	}
	content := testenv.RandomBytes(12*mib, 2704)
	for _, c := range []struct {
		size, version int
	}{{2 * mib, 2}, {7 * mib, 2}, {12 * mib, 3}} { // 12 MiB: part 1, and part 2 (10 MiB) assembling
		p := fmt.Sprintf("/version/%d/data", c.size)
		w, err := d.Writer(ctx, p, false)
		require.NoError(t, err)
		_, err = w.Write(content[:c.size])
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.Equal(t, c.version, version(p), "record of %d bytes", c.size)
	}
	_, err := decodeJSONHeader([]byte(`{"v":2,"size":1,"tailSize":1,"tailCrc64":0,"assembly":{"part":2,"uploadId":"x","parts":[]}}`))
	require.ErrorContains(t, err, "an assembly in a version-2 record")
	_, err = decodeJSONHeader([]byte(`{"v":4}`))
	require.ErrorContains(t, err, "format version 4, this driver reads versions 1 to 3")
}
