package cos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

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
