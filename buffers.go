package cos

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// bufferPool hands out chunk buffers from one driver-wide budget: a writer
// waits for a buffer rather than allocate past it, so the memory of all
// uploads together is bounded by maxbuffermemory. Buffers are allocated
// outside the Go heap where the system allows (see allocBuffer), so they
// neither count toward nor inflate the garbage collector's heap goal; they
// are kept for reuse, so up to maxbuffermemory stays resident after a burst.
type bufferPool struct {
	size   int
	tokens chan struct{}
	inUse  prometheus.Gauge // bytes handed out
	mu     sync.Mutex
	free   [][]byte
	reads  int // buffers held by read-ahead (getForRead)
}

func newBufferPool(size, count int, inUse prometheus.Gauge) *bufferPool {
	return &bufferPool{size: size, tokens: make(chan struct{}, count), inUse: inUse}
}

// get waits for room in the budget and returns an empty buffer of
// capacity size.
func (p *bufferPool) get(ctx context.Context) ([]byte, error) {
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.inUse.Add(float64(p.size))
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.take(), nil
}

// getForRead returns a buffer for read-ahead at once, or false. Read-ahead
// never waits for memory (a reader without a buffer streams instead), and
// holds at most half the budget, so pulls, fast or stalled, leave writers
// the other half and cannot keep pushes from making progress.
func (p *bufferPool) getForRead() ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reads >= cap(p.tokens)/2 {
		return nil, false
	}
	select {
	case p.tokens <- struct{}{}:
	default:
		return nil, false
	}
	p.reads++
	p.inUse.Add(float64(p.size))
	return p.take(), true
}

// putRead returns a buffer obtained from getForRead.
func (p *bufferPool) putRead(b []byte) {
	p.mu.Lock()
	p.reads--
	p.mu.Unlock()
	p.put(b)
}

// take is a free buffer, or a new one; p.mu is held.
func (p *bufferPool) take() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:0]
	}
	return allocBuffer(p.size)
}

// put returns a buffer obtained from get.
func (p *bufferPool) put(b []byte) {
	p.mu.Lock()
	p.free = append(p.free, b[:0])
	p.mu.Unlock()
	p.inUse.Sub(float64(p.size))
	<-p.tokens
}
