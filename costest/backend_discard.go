package costest

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// discardBackend keeps blobs up to keep bytes in memory and of larger ones
// only their size: the emulator's index holds the checksums of every blob
// it received (segments), so objects, parts, copies and Completes of
// discarded blobs still get the right CRC64, MD5 and ETags. Only what
// needs the bytes fails: a read of them, or a copy whose range cuts a
// discarded blob (its checksum would need them).
type discardBackend struct {
	*memoryBackend
	keep int64

	mu        sync.Mutex
	discarded map[string]int64 // id -> size
	next      int64
}

func newDiscardBackend(keep int64) *discardBackend {
	return &discardBackend{memoryBackend: newMemoryBackend(), keep: keep, discarded: map[string]int64{}}
}

// discardWriter holds a blob in memory until it grows past keep, then
// drops it and counts its bytes.
type discardWriter struct {
	b     *discardBackend
	inner blobWriter
	size  int64
}

func (b *discardBackend) CreateBlob() (blobWriter, error) {
	inner, err := b.memoryBackend.CreateBlob()
	if err != nil {
		return nil, err
	}
	return &discardWriter{b: b, inner: inner}, nil
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.size += int64(len(p))
	if w.inner == nil {
		return len(p), nil
	}
	if w.size > w.b.keep {
		w.inner.Abort()
		w.inner = nil
		return len(p), nil
	}
	return w.inner.Write(p)
}

func (w *discardWriter) Commit() (string, error) {
	if w.inner != nil {
		return w.inner.Commit()
	}
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.b.next++
	id := "d" + strconv.FormatInt(w.b.next, 10)
	w.b.discarded[id] = w.size
	return id, nil
}

func (w *discardWriter) Abort() {
	if w.inner != nil {
		w.inner.Abort()
	}
}

func (b *discardBackend) OpenBlob(id string) (blobReader, error) {
	b.mu.Lock()
	size, gone := b.discarded[id]
	b.mu.Unlock()
	if gone {
		return nil, errDiscarded(size)
	}
	return b.memoryBackend.OpenBlob(id)
}

func (b *discardBackend) RemoveBlob(id string) error {
	b.mu.Lock()
	_, gone := b.discarded[id]
	delete(b.discarded, id)
	b.mu.Unlock()
	if gone {
		return nil
	}
	return b.memoryBackend.RemoveBlob(id)
}

// isDiscarded says whether the bytes of blob id were dropped.
func (b *discardBackend) isDiscarded(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, gone := b.discarded[id]
	return gone
}

// errDiscarded answers a request that needs size bytes the emulator
// dropped.
// COS never answers it: it is the emulator's own, a 400 because clients
// send a 5xx again and again, and sending this again cannot help.
func errDiscarded(size int64) *cosError {
	return newError(http.StatusBadRequest, "DiscardedContent",
		fmt.Sprintf("costest: %d bytes of this range were discarded: cos-emulator -discard keeps only the sizes and checksums of blobs over %d bytes", size, DiscardThreshold))
}

// checkReadable fails a read of n bytes from off of segs that touches a
// discarded blob, before any of the answer is sent.
func (h *Handler) checkReadable(segs []segment, off, n int64) error {
	b, ok := h.backend.(*discardBackend)
	if !ok {
		return nil
	}
	for _, sg := range sliceSegments(segs, off, n) {
		if b.isDiscarded(sg.Blob) {
			return errDiscarded(sg.Size)
		}
	}
	return nil
}
