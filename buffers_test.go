package cos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestBufferBudget: with a budget of one chunk, a second writer waits for
// the first to give its pieces back instead of allocating past the budget.
func TestBufferBudget(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxBufferMemory = MinChunkSize })
	pool := internal(d).buffers
	const almostPart = MinChunkSize - 1 // every piece of the budget, not yet a part

	first, err := d.Writer(ctx, "/first", false)
	require.NoError(t, err)
	_, err = first.Write(make([]byte, almostPart))
	require.NoError(t, err)
	require.Equal(t, MinChunkSize/pieceSize, pool.inUsePieces())

	second, err := d.Writer(ctx, "/second", false)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := second.Write([]byte("waits"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("second writer got a buffer past the budget (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, first.Close())
	require.NoError(t, <-done)
	require.NoError(t, second.Commit(ctx))
	require.Equal(t, 0, pool.inUsePieces(), "every piece returned")

	// A writer whose context ends while it waits gives up cleanly.
	holder, err := d.Writer(ctx, "/holder", false)
	require.NoError(t, err)
	_, err = holder.Write(make([]byte, almostPart))
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	waiter, err := d.Writer(short, "/waiter", false)
	require.NoError(t, err)
	_, err = waiter.Write([]byte("y"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, holder.Cancel(ctx))
}

// TestWriterMemoryIsBounded streams far more than the budget through
// concurrent writers and checks the budget was never exceeded; writers
// that each hold part of the budget and need more never wait for each
// other for ever.
func TestWriterMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxBufferMemory = 2 * MinChunkSize })
	pool := internal(d).buffers
	stop := make(chan struct{})
	maxInUse := make(chan int, 1)
	go func() {
		peak := 0
		for {
			select {
			case <-stop:
				maxInUse <- peak
				return
			default:
				peak = max(peak, pool.inUsePieces())
				time.Sleep(time.Millisecond)
			}
		}
	}()
	errs := make(chan error, 4)
	contents := make([][]byte, 4)
	for i := range 4 {
		contents[i] = testenv.RandomBytes(3*MinChunkSize+i, uint64(i))
		go func() {
			w, err := d.Writer(ctx, "/bounded/"+string(rune('a'+i)), false)
			for at := 0; err == nil && at < len(contents[i]); at += 300 * kib {
				_, err = w.Write(contents[i][at:min(at+300*kib, len(contents[i]))])
			}
			if err == nil {
				err = w.Commit(ctx)
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
	close(stop)
	require.LessOrEqual(t, <-maxInUse, 2*MinChunkSize/pieceSize, "pieces in use beyond the budget")
	require.Equal(t, 0, pool.inUsePieces())
	for i, want := range contents {
		got, err := d.GetContent(ctx, "/bounded/"+string(rune('a'+i)))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "content of writer %d", i)
	}
}

// TestStalledClientsDoNotBlockPushes: uploads whose clients sent a byte (or
// almost a chunk) and stopped, and reads whose clients read a byte and
// stopped, hold what they were sent and their read-ahead, not the budget:
// a push alongside them completes. (Before, every writer took a whole
// chunk at its first byte, so eight stalled uploads blocked every push.)
func TestStalledClientsDoNotBlockPushes(t *testing.T) {
	const chunks = DefaultBufferChunks // the default budget, in chunks
	for _, tc := range []struct {
		name                       string
		oneByte, almostPart, reads int
	}{
		{name: "one byte each", oneByte: chunks},
		{name: "almost a part each", oneByte: 2, almostPart: chunks - 1},
		{name: "with stalled reads", oneByte: chunks, reads: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv := testenv.StartEmulator(t, costest.Options{})
			d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxBufferMemory = chunks * MinChunkSize })
			pool := internal(d).buffers
			blob := testenv.RandomBytes(2*readAhead*MinChunkSize, 7)
			require.NoError(t, d.PutContent(ctx, "/pulled", blob))

			var stalled []storagedriver.FileWriter
			stall := func(n int) {
				w, err := d.Writer(ctx, fmt.Sprintf("/stalled/%d", len(stalled)), false)
				require.NoError(t, err)
				_, err = w.Write(make([]byte, n))
				require.NoError(t, err)
				stalled = append(stalled, w)
			}
			for range tc.almostPart {
				stall(MinChunkSize - 1)
			}
			for range tc.oneByte {
				stall(1)
			}
			var readers []io.ReadCloser
			for range tc.reads {
				r, err := d.Reader(ctx, "/pulled", 0)
				require.NoError(t, err)
				_, err = r.Read(make([]byte, 1)) // starts the read-ahead
				require.NoError(t, err)
				readers = append(readers, r)
			}
			require.Equal(t, tc.oneByte+tc.almostPart*MinChunkSize/pieceSize, pool.inUsePieces()-pool.reads,
				"stalled uploads hold the pieces of what they were sent")

			content := testenv.RandomBytes(3*MinChunkSize+kib, 8)
			w, err := d.Writer(ctx, "/pushed", false)
			require.NoError(t, err)
			for at := 0; at < len(content); at += 32 * kib {
				_, err := w.Write(content[at:min(at+32*kib, len(content))])
				require.NoError(t, err)
			}
			require.NoError(t, w.Commit(ctx))
			got, err := d.GetContent(ctx, "/pushed")
			require.NoError(t, err)
			require.True(t, bytes.Equal(content, got))

			for _, w := range stalled {
				require.NoError(t, w.Cancel(ctx))
			}
			for _, r := range readers {
				require.NoError(t, r.Close())
			}
			require.Equal(t, 0, pool.inUsePieces(), "every piece returned")
		})
	}
}
