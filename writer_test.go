package cos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestResumeAcrossDriversWithListLag is the failure the s3 driver has in
// the field: two registry replicas alternate on one upload while listings
// lag. Resume reads the state by key, so it never notices the lag.
func TestResumeAcrossDriversWithListLag(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{Faults: costest.Faults{ListLag: 5 * time.Second}})
	drivers := []*Driver{newTestDriver(t, srv, nil), newTestDriver(t, srv, nil)}
	for _, chunk := range []int{300 * kib, 3 * mib, 7*mib + 11} {
		t.Run(fmt.Sprintf("chunk %d", chunk), func(t *testing.T) {
			p := fmt.Sprintf("/uploads/%d/data", chunk)
			var all []byte
			w, err := drivers[0].Writer(ctx, p, false)
			require.NoError(t, err)
			require.NoError(t, w.Close())
			for i := range 4 {
				w, err := drivers[i%2].Writer(ctx, p, true)
				require.NoError(t, err, "resume %d", i)
				require.EqualValues(t, len(all), w.Size(), "size after resume %d", i)
				data := testenv.RandomBytes(chunk, uint64(chunk*10+i)) // distinct per write, so a lost or repeated write shows
				_, err = w.Write(data)
				require.NoError(t, err)
				all = append(all, data...)
				require.NoError(t, w.Close())
			}
			w, err = drivers[1].Writer(ctx, p, true)
			require.NoError(t, err)
			require.NoError(t, w.Commit(ctx))
			got, err := drivers[0].GetContent(ctx, p)
			require.NoError(t, err)
			require.True(t, bytes.Equal(all, got), "content after alternating resumes")
		})
	}
}

// TestUploadStateIsNotContent: an upload in progress is invisible to reads
// and looks like a partly written file to Stat.
func TestUploadStateIsNotContent(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	w, err := d.Writer(ctx, "/partial", false)
	require.NoError(t, err)
	_, err = w.Write([]byte("0123456789"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = d.GetContent(ctx, "/partial")
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
	_, err = d.Reader(ctx, "/partial", 5)
	require.IsType(t, storagedriver.PathNotFoundError{}, err)
	fi, err := d.Stat(ctx, "/partial")
	require.NoError(t, err)
	require.EqualValues(t, 10, fi.Size())
	require.False(t, fi.IsDir())
	require.Error(t, d.Move(ctx, "/partial", "/elsewhere"), "an upload in progress cannot be moved")
}

// TestCRCMismatchIsReported corrupts the CRC64 COS reports on Complete.
func TestCRCMismatchIsReported(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/blob", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(MinChunkSize+10, 111))
	require.NoError(t, err)
	// Pretend COS acknowledged a part with another CRC64 than the one it
	// computes for the object: Complete must not be taken as done.
	iw := w.(*writer)
	require.NoError(t, iw.awaitParts())
	part := iw.parts[1]
	part.CRC64 ^= 1
	iw.parts[1] = part
	err = w.Commit(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "CRC64")
}

// TestResumeSurvivesDroppedConnections: reading the upload-state record is
// retried when the connection drops mid-record, so a PATCH does not fail.
func TestResumeSurvivesDroppedConnections(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{Seed: 11})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 30 })
	w, err := d.Writer(ctx, "/upload", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(700*kib, 112))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	srv.SetFaults(costest.Faults{DropRate: 0.5})
	for i := range 5 {
		w, err := d.Writer(ctx, "/upload", true)
		require.NoError(t, err, "resume %d", i)
		require.EqualValues(t, 700*kib, w.Size())
	}
	srv.SetFaults(costest.Faults{})
	require.Positive(t, srv.Stats().Faults["drop"], "connections were dropped")
}

// TestAppendToCommittedContent: a commit the registry retries on another
// replica, after the first attempt completed the upload and died before
// the move, resumes a writer on committed content. It holds that content,
// and its Commit with nothing more written keeps it; bytes written to it
// are refused, naming the path.
func TestAppendToCommittedContent(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	content := testenv.RandomBytes(3000, 77)
	require.NoError(t, d.PutContent(ctx, "/blob/data", content))

	w, err := d.Writer(ctx, "/blob/data", true)
	require.NoError(t, err)
	require.EqualValues(t, len(content), w.Size(), "the writer holds the committed content")
	require.NoError(t, w.Close())
	w, err = d.Writer(ctx, "/blob/data", true)
	require.NoError(t, err)
	srv.ResetStats()
	require.NoError(t, w.Commit(ctx))
	require.Zero(t, srv.Stats().Total(), "a commit with nothing written sends nothing")
	got, err := d.GetContent(ctx, "/blob/data")
	require.NoError(t, err)
	require.Equal(t, content, got)

	w, err = d.Writer(ctx, "/blob/data", true)
	require.NoError(t, err)
	_, err = w.Write([]byte("more"))
	require.ErrorContains(t, err, "/blob/data")
	require.NoError(t, w.Cancel(ctx))
}

// TestFailedCallsKeepSizeAndRecordInStep: after a Commit or Close that
// failed, the writer's Size, the record it leaves and what a resume reports
// agree (a Close after a failed Commit used to store a record without the
// buffered bytes and return nil, while Size still counted them; the
// registry hands Size to the client as its next offset after a failed
// Close), and the upload goes on from there to the right content.
func TestFailedCallsKeepSizeAndRecordInStep(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxRetries = 0 })
	for _, tc := range []struct {
		name    string
		resumed int // bytes written and closed before
		written int // bytes written by the writer whose call fails
		deny    string
		commit  bool // the failing call is Commit (else Close)
	}{
		{name: "commit of one PUT", written: 10, deny: "PutObject", commit: true},
		{name: "commit's last part", written: MinChunkSize + mib/2, deny: "UploadPart", commit: true},
		{name: "commit's complete", written: MinChunkSize + mib/2, deny: "CompleteMultipartUpload", commit: true},
		{name: "commit onto a stored tail", resumed: 2 * mib, written: mib / 2, deny: "CompleteMultipartUpload", commit: true},
		{name: "close's record", resumed: 100, written: 10, deny: "PutObject"},
		{name: "close growing a stored tail", resumed: 2 * mib, written: mib / 2, deny: "UploadPartCopy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := "/failed/" + strings.NewReplacer(" ", "-", "'", "").Replace(tc.name)
			content := testenv.RandomBytes(tc.resumed+tc.written+MinChunkSize, 33)
			w, err := d.Writer(ctx, p, false)
			require.NoError(t, err)
			_, err = w.Write(content[:tc.resumed])
			require.NoError(t, err)
			require.NoError(t, w.Close())
			w, err = d.Writer(ctx, p, true)
			require.NoError(t, err)
			_, err = w.Write(content[tc.resumed : tc.resumed+tc.written])
			require.NoError(t, err)

			srv.SetMisbehavior(costest.Misbehavior{Deny: []string{tc.deny}})
			if tc.commit {
				require.Error(t, w.Commit(ctx), "commit with %s denied", tc.deny)
				srv.SetMisbehavior(costest.Misbehavior{})
				if err := w.Close(); err == nil {
					require.EqualValues(t, tc.resumed+tc.written, w.Size(), "a Close that succeeds stores every byte written")
				}
			} else {
				require.Error(t, w.Close(), "close with %s denied", tc.deny)
				srv.SetMisbehavior(costest.Misbehavior{})
			}
			resumed, err := d.Writer(ctx, p, true)
			require.NoError(t, err)
			require.Equal(t, resumed.Size(), w.Size(), "the failed writer's Size and what a resume finds")

			off := int(resumed.Size())
			_, err = resumed.Write(content[off:])
			require.NoError(t, err)
			require.NoError(t, resumed.Commit(ctx))
			got, err := d.GetContent(ctx, p)
			require.NoError(t, err)
			require.True(t, bytes.Equal(content, got), "content")
		})
	}
}
