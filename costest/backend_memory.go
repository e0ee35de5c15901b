package costest

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
)

// memoryChunkSize is the allocation unit of memory blobs: a blob is a list of
// chunks, so writing a large object never re-copies it the way a growing
// slice would.
const memoryChunkSize = 1 << 20

// memoryBackend keeps blobs in memory; nothing survives Close.
type memoryBackend struct {
	mu     sync.Mutex
	blobs  map[string]*memoryBlob
	nextID atomic.Int64
}

func newMemoryBackend() *memoryBackend {
	return &memoryBackend{blobs: map[string]*memoryBlob{}}
}

type memoryBlob struct {
	chunks [][]byte
	size   int64
}

type memoryBlobWriter struct {
	b    *memoryBackend
	blob *memoryBlob
}

func (w *memoryBlobWriter) Write(p []byte) (int, error) {
	b := w.blob
	n := len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(b.chunks[len(b.chunks)-1]) == memoryChunkSize {
			b.chunks = append(b.chunks, make([]byte, 0, memoryChunkSize))
		}
		last := &b.chunks[len(b.chunks)-1]
		k := min(len(p), memoryChunkSize-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
		b.size += int64(k)
	}
	return n, nil
}

func (w *memoryBlobWriter) Commit() (string, error) {
	id := "m" + strconv.FormatInt(w.b.nextID.Add(1), 10)
	w.b.mu.Lock()
	w.b.blobs[id] = w.blob
	w.b.mu.Unlock()
	w.blob = nil
	return id, nil
}

func (w *memoryBlobWriter) Abort() { w.blob = nil }

func (b *memoryBackend) CreateBlob() (blobWriter, error) {
	return &memoryBlobWriter{b: b, blob: &memoryBlob{}}, nil
}

func (b *memoryBackend) OpenBlob(id string) (blobReader, error) {
	b.mu.Lock()
	blob, ok := b.blobs[id]
	b.mu.Unlock()
	if !ok {
		return nil, io.ErrUnexpectedEOF
	}
	return blob, nil
}

func (blob *memoryBlob) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		if off >= blob.size {
			return n, io.EOF
		}
		chunk := blob.chunks[off/memoryChunkSize]
		k := copy(p, chunk[off%memoryChunkSize:])
		n += k
		p = p[k:]
		off += int64(k)
	}
	return n, nil
}

func (blob *memoryBlob) Close() error { return nil }

func (b *memoryBackend) RemoveBlob(id string) error {
	b.mu.Lock()
	delete(b.blobs, id)
	b.mu.Unlock()
	return nil
}

func (b *memoryBackend) Close() error {
	b.mu.Lock()
	b.blobs = map[string]*memoryBlob{}
	b.mu.Unlock()
	return nil
}

// writeRange writes a range straight from the chunks, without copying.
func (blob *memoryBlob) writeRange(w io.Writer, off, n int64) error {
	for n > 0 {
		chunk := blob.chunks[off/memoryChunkSize][off%memoryChunkSize:]
		k := min(int64(len(chunk)), n)
		if _, err := w.Write(chunk[:k]); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}
