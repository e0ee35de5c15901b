package cos

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// pieceSize is the unit of the buffer budget. A writer takes memory a piece
// at a time, as its client's data arrives, so an upload whose client sent a
// byte and stalled holds one piece, not a whole chunk; a part is the pieces
// that hold it. It is COS's smallest part, so a writer's full pieces can
// always go up as a part of their own (see errBudgetFull).
const pieceSize = minPartSize

// errBudgetFull is get's answer to a caller that holds pieces when none is
// free and no part upload in flight will give one back: waiting could then
// last for ever (every piece held by writers waiting for more, or by
// clients that stopped sending), so the caller sends what it holds instead.
var errBudgetFull = errors.New("cos: buffer budget full")

// bufferPool hands out pieces from one driver-wide budget: a writer waits
// for a piece rather than allocate past it, so the memory of all uploads
// and reads together is bounded by maxbuffermemory. Pieces are allocated
// outside the Go heap where the system allows (see allocBuffer), so they
// neither count toward nor inflate the garbage collector's heap goal; they
// are kept for reuse, so up to maxbuffermemory stays resident after a burst.
type bufferPool struct {
	budget int              // in pieces
	inUse  prometheus.Gauge // bytes handed out

	mu       sync.Mutex
	used     int // pieces handed out
	sending  int // of those, pieces of parts being uploaded: they come back
	reads    int // of those, pieces held by read-ahead (getForRead)
	free     [][]byte
	returned chan struct{} // closed (and replaced) when pieces come back
}

func newBufferPool(budget int64, inUse prometheus.Gauge) *bufferPool {
	return &bufferPool{budget: int(budget / pieceSize), inUse: inUse, returned: make(chan struct{})}
}

// get returns an empty piece, waiting while the budget is used up. A
// caller that holds pieces of its own (holding) gets errBudgetFull
// instead of a wait that nothing in flight would end.
func (p *bufferPool) get(ctx context.Context, holding bool) ([]byte, error) {
	for {
		p.mu.Lock()
		if p.used < p.budget {
			piece := p.take(1)[0]
			p.mu.Unlock()
			return piece, nil
		}
		if holding && p.sending == 0 {
			p.mu.Unlock()
			return nil, errBudgetFull
		}
		returned := p.returned
		p.mu.Unlock()
		select {
		case <-returned:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// getForRead returns n pieces for read-ahead at once, or false. Read-ahead
// never waits for memory (a reader without a buffer streams instead), and
// holds at most half the budget, so pulls, fast or stalled, leave writers
// the other half and cannot keep pushes from making progress.
func (p *bufferPool) getForRead(n int) ([][]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reads+n > p.budget/2 || p.used+n > p.budget {
		return nil, false
	}
	p.reads += n
	return p.take(n), true
}

// take hands out n free pieces, or new ones; p.mu is held.
func (p *bufferPool) take(n int) [][]byte {
	pieces := make([][]byte, n)
	for i := range pieces {
		if k := len(p.free); k > 0 {
			pieces[i] = p.free[k-1][:0]
			p.free = p.free[:k-1]
		} else {
			pieces[i] = allocBuffer(pieceSize)
		}
	}
	p.used += n
	p.inUse.Add(float64(n * pieceSize))
	return pieces
}

// send marks pieces as handed to a part upload, which gives them back
// (put with sent) when it ends.
func (p *bufferPool) send(pieces [][]byte) {
	p.mu.Lock()
	p.sending += len(pieces)
	p.mu.Unlock()
}

// put gives back pieces obtained from get; sent says they were marked by
// send.
func (p *bufferPool) put(pieces [][]byte, sent bool) {
	if len(pieces) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if sent {
		p.sending -= len(pieces)
	}
	p.release(pieces)
}

// putRead gives back pieces obtained from getForRead.
func (p *bufferPool) putRead(pieces [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads -= len(pieces)
	p.release(pieces)
}

// release returns pieces to the free list and wakes the waiters; p.mu is
// held.
func (p *bufferPool) release(pieces [][]byte) {
	for _, piece := range pieces {
		p.free = append(p.free, piece[:0])
	}
	p.used -= len(pieces)
	p.inUse.Sub(float64(len(pieces) * pieceSize))
	close(p.returned)
	p.returned = make(chan struct{})
}

// inUsePieces is how many pieces are handed out.
func (p *bufferPool) inUsePieces() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// prefix is the first n bytes of b, which holds pieces all full but the
// last.
func (b body) prefix(n int) body {
	var out body
	for _, s := range b {
		if n == 0 {
			break
		}
		k := min(n, len(s))
		out = append(out, s[:k])
		n -= k
	}
	return out
}

// dropFront removes the first n bytes of b, pieces all full but the last,
// moving the rest to the front of the same pieces; it returns what is
// left and the pieces no longer needed.
func (b body) dropFront(n int) (rest body, spare [][]byte) {
	total := b.size()
	at := func(pos int) []byte { // the piece at pos, from pos to its end
		piece := b[pos/pieceSize]
		return piece[pos%pieceSize : cap(piece)]
	}
	left := total - n
	for dst, src := 0, n; src < total; {
		k := copy(at(dst), at(src)[:min(pieceSize-src%pieceSize, total-src)])
		dst, src = dst+k, src+k
	}
	keep := (left + pieceSize - 1) / pieceSize
	for i := range keep {
		b[i] = b[i][:min(pieceSize, left-i*pieceSize)]
	}
	return b[:keep], b[keep:]
}
