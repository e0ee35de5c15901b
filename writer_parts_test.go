package cos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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

// TestUploadRequestCounts pins what a resume and a Close cost: one GET;
// one PUT while the tail is in memory; four requests to grow a tail stored
// at COS; one more (the part copy) when a part is cut from it.
func TestUploadRequestCounts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	const p = "/counts/data"
	w, err := d.Writer(ctx, p, false)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	step := func(name string, data int, want map[string]int64) {
		t.Helper()
		srv.ResetStats()
		w, err := d.Writer(ctx, p, true)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"GetObject": 1}, srv.Stats().Requests, "%s: resume", name)
		srv.ResetStats()
		_, err = w.Write(testenv.RandomBytes(data, uint64(w.Size())))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.Equal(t, want, srv.Stats().Requests, "%s: close", name)
	}
	grow := map[string]int64{"InitiateMultipartUpload": 1, "UploadPartCopy": 1, "UploadPart": 1, "CompleteMultipartUpload": 1}
	step("tail in memory", 512*kib, map[string]int64{"PutObject": 1})
	step("tail in memory reaching 1 MiB", 512*kib, map[string]int64{"PutObject": 1}) // 1 MiB: stored from now on
	step("stored tail", 3*mib, grow)                                                 // 4 MiB
	step("stored tail reaching chunksize", 2*mib, grow)                              // 6 MiB: cut at 6 MiB
	step("stored tail after the cut", 512*kib, grow)                                 // 512 KiB after the cut
	step("1 MiB after the cut", 512*kib, grow)                                       // ripe: the next Close cuts
	// Part 1 = the 6 MiB up to the cut, the first part: the real upload
	// starts here. 1.5 MiB stay stored.
	cutThenGrow := map[string]int64{"InitiateMultipartUpload": 2, "UploadPartCopy": 2, "UploadPart": 1, "CompleteMultipartUpload": 1}
	step("cut, then grow", 512*kib, cutThenGrow)
	srv.ResetStats()
	w, err = d.Writer(ctx, p, true)
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	require.Equal(t, map[string]int64{"GetObject": 1, "UploadPartCopy": 1, "CompleteMultipartUpload": 1}, srv.Stats().Requests, "commit")
	require.Equal(t, 2, partCount(t, d, p))
}

// TestResumeVersion1Record: an upload whose state record a version-1
// driver wrote (header first, then the tail) resumes and commits.
func TestResumeVersion1Record(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	in := internal(d)
	const p = "/v1/data"
	key := in.key(p)
	first := testenv.RandomBytes(2*mib, 960) // a part, as version 1 made one per Close
	tail := []byte("tail bytes")
	uploadID, err := in.initiate(ctx, key, nil)
	require.NoError(t, err)
	part, err := in.uploadPart(ctx, key, uploadID, 1, first)
	require.NoError(t, err)
	header, err := json.Marshal(map[string]any{"v": 1, "uploadId": uploadID, "size": len(first) + len(tail), "tailSize": len(tail),
		"parts": []uploadedPart{part}})
	require.NoError(t, err)
	record := append(append(header, '\n'), tail...)
	meta := http.Header{}
	meta.Set(uploadStateMeta, strconv.Itoa(len(first)+len(tail)))
	require.NoError(t, in.putObject(ctx, key, meta, record))

	w, err := d.Writer(ctx, p, true)
	require.NoError(t, err)
	require.EqualValues(t, len(first)+len(tail), w.Size())
	more := testenv.RandomBytes(3*mib, 961)
	_, err = w.Write(more)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	w, err = d.Writer(ctx, p, true)
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	got, err := d.GetContent(ctx, p)
	require.NoError(t, err)
	require.True(t, bytes.Equal(slices.Concat(first, tail, more), got), "content")
}

// TestUploadSurvivesFailuresBetweenSteps: requests fail at random between
// (and inside) the steps of a Close, with no retries, and the answers of
// applied requests are lost: every resume finds a record whose size and
// content agree, and the committed blob is right.
func TestUploadSurvivesFailuresBetweenSteps(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{Seed: 970})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxRetries = 0 })
	content := testenv.RandomBytes(3*MinChunkSize+123, 971)
	for _, chunk := range []int{300 * kib, 1536 * kib, 6 * mib} {
		t.Run(fmt.Sprintf("chunk %d", chunk), func(t *testing.T) {
			p := fmt.Sprintf("/failing/%d", chunk)
			w, err := d.Writer(ctx, p, false)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			srv.SetFaults(costest.Faults{ErrorRate: 0.15, DropRate: 0.1, CompleteErrorRate: 0.2})
			failures := 0
			for range 200 {
				w, err := d.Writer(ctx, p, true)
				if err != nil {
					failures++
					continue
				}
				off := int(w.Size())
				require.LessOrEqual(t, off, len(content), "size after resume")
				if off == len(content) {
					require.NoError(t, w.Close())
					break
				}
				_, werr := w.Write(content[off:min(off+chunk, len(content))])
				if cerr := w.Close(); werr != nil || cerr != nil {
					failures++
				}
			}
			srv.SetFaults(costest.Faults{})
			require.Positive(t, failures, "requests failed")
			w, err = d.Writer(ctx, p, true)
			require.NoError(t, err)
			off := int(w.Size())
			_, err = w.Write(content[off:])
			require.NoError(t, err)
			require.NoError(t, w.Commit(ctx))
			got, err := d.GetContent(ctx, p)
			require.NoError(t, err)
			require.True(t, bytes.Equal(content, got), "content after %d failures", failures)
			require.LessOrEqual(t, partCount(t, d, p), 4, "parts")
		})
	}
}

// TestLostAnswersWhileTheTailGrows: the Initiate, part copy and Complete
// of a tail growing at COS are applied but their answers lost; the retries
// find what was done (a Complete by HEAD), the real upload is not taken
// for an orphan of the retried Initiate, and nothing is left behind.
func TestLostAnswersWhileTheTailGrows(t *testing.T) {
	ctx := context.Background()
	for _, op := range []string{"InitiateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload"} {
		t.Run(op, func(t *testing.T) {
			h, srv := loseAnswersOf(t, op, func(i int32) bool { return i == 2 })
			d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })
			content := testenv.RandomBytes(2*MinChunkSize+mib+5, 980)
			pushInChunks(t, d, "/lost/tail", content, 6*mib) // a real upload first, then stored tails
			got, err := d.GetContent(ctx, "/lost/tail")
			require.NoError(t, err)
			require.True(t, bytes.Equal(content, got), "content")
			require.GreaterOrEqual(t, h.Stats().Count(op), int64(3), "an answer was lost and the request sent again")
			require.Empty(t, uploadsOf(t, d, ""), "no upload left behind")
		})
	}
}

// TestWriteWithoutCloseKeepsTheRecordSize: a write that turns a stored tail
// into parts rewrites the record, but a process killed before its Close
// leaves the size of the last Close, the offset the registry's upload
// state holds; the upload then goes on from there.
func TestWriteWithoutCloseKeepsTheRecordSize(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	const p = "/killed/data"
	content := testenv.RandomBytes(3*MinChunkSize, 990)
	w, err := d.Writer(ctx, p, false)
	require.NoError(t, err)
	_, err = w.Write(content[:2*mib]) // a stored tail
	require.NoError(t, err)
	require.NoError(t, w.Close())
	w, err = d.Writer(ctx, p, true)
	require.NoError(t, err)
	srv.ResetStats()
	_, err = w.Write(content[2*mib : 2*mib+MinChunkSize]) // drains the tail into a part
	require.NoError(t, err)
	require.EqualValues(t, 1, srv.Stats().Count("CompleteMultipartUpload"), "the record was rewritten")
	// The process dies here: no Close.
	w, err = d.Writer(ctx, p, true)
	require.NoError(t, err)
	require.EqualValues(t, 2*mib, w.Size(), "size after the killed write")
	_, err = w.Write(content[2*mib:])
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	got, err := d.GetContent(ctx, p)
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, got), "content")
}
