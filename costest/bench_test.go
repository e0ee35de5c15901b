package costest

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// patternReader yields n bytes by repeating a random 1 MiB block, so the
// client side costs almost nothing.
type patternReader struct {
	block []byte
	left  int64
	off   int
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{block: randomBytes(1<<20, 42), left: n}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	k := copy(p, r.block[r.off:])
	k = int(min(int64(k), r.left))
	r.off = (r.off + k) % len(r.block)
	r.left -= int64(k)
	return k, nil
}

// heapSampler records the peak heap in use while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	s := &heapSampler{stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > s.peak.Load() {
				s.peak.Store(m.HeapInuse)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *heapSampler) peakMiB() float64 {
	close(s.stop)
	s.wg.Wait()
	return float64(s.peak.Load()) / (1 << 20)
}

// putGet writes size bytes to key in one PUT and reads them back. The
// client's own CRC check is off so the benchmark measures the emulator.
func putGet(b *testing.B, c *cos.Client, key string, size int64) {
	ctx := context.Background()
	_, err := c.Object.Put(ctx, key, newPatternReader(size), &cos.ObjectPutOptions{
		ObjectPutHeaderOptions: &cos.ObjectPutHeaderOptions{ContentLength: size},
	})
	if err != nil {
		b.Fatalf("Put: %v", err)
	}
	resp, err := c.Object.Get(ctx, key, nil)
	if err != nil {
		b.Fatalf("Get: %v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		b.Fatalf("Get: %d bytes, %v", n, err)
	}
}

func benchPutGet(b *testing.B, dir string, size int64) {
	srv := startServer(b, Options{Dir: dir})
	c := newClient(b, srv)
	c.Conf.EnableCRC = false
	b.SetBytes(2 * size) // bytes written plus bytes read
	sampler := startHeapSampler()
	b.ResetTimer()
	for b.Loop() {
		putGet(b, c, "bench/object", size)
	}
	b.StopTimer()
	b.ReportMetric(sampler.peakMiB(), "peak-heap-MiB")
}

// BenchmarkPutGet1GiB writes and reads a 1 GiB object through the SDK.
func BenchmarkPutGet1GiB(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchPutGet(b, "", 1<<30) })
	b.Run("disk", func(b *testing.B) { benchPutGet(b, b.TempDir(), 1<<30) })
}

// BenchmarkDiskHeapBySize writes and reads disk objects of growing size:
// peak-heap-MiB stays flat, because bodies stream through fixed buffers.
func BenchmarkDiskHeapBySize(b *testing.B) {
	for _, s := range []struct {
		name string
		size int64
	}{{"256MiB", 256 << 20}, {"2GiB", 2 << 30}} {
		b.Run(s.name, func(b *testing.B) { benchPutGet(b, b.TempDir(), s.size) })
	}
}
