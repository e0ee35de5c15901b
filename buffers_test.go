package cos

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestBufferBudget: with a budget of one chunk, a second writer waits for
// the first to give its buffer back instead of allocating past the budget.
func TestBufferBudget(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize; p.MaxBufferMemory = MinChunkSize })
	pool := internal(d).buffers

	first, err := d.Writer(ctx, "/first", false)
	require.NoError(t, err)
	_, err = first.Write([]byte("holds the only buffer"))
	require.NoError(t, err)
	require.Equal(t, 1, len(pool.tokens))

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
	require.Equal(t, 0, len(pool.tokens), "every buffer returned")

	// A writer whose context ends while it waits gives up cleanly.
	holder, err := d.Writer(ctx, "/holder", false)
	require.NoError(t, err)
	_, err = holder.Write([]byte("x"))
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
// concurrent writers and checks the budget was never exceeded.
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
				peak = max(peak, len(pool.tokens))
				time.Sleep(time.Millisecond)
			}
		}
	}()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			w, err := d.Writer(ctx, "/bounded/"+string(rune('a'+i)), false)
			if err == nil {
				for range 3 {
					if _, err = w.Write(make([]byte, MinChunkSize)); err != nil {
						break
					}
				}
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
	require.LessOrEqual(t, <-maxInUse, 2, "buffers in use beyond the budget")
	require.Equal(t, 0, len(pool.tokens))
}
