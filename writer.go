package cos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Writer returns a FileWriter for path. With append, it resumes the upload
// that an earlier writer closed: one GET of its state record, nothing else.
func (d *driver) Writer(ctx context.Context, path string, append bool) (storagedriver.FileWriter, error) {
	key := d.key(path)
	w := &writer{d: d, ctx: ctx, key: key, path: path, partSize: int(d.params.ChunkSize), parts: map[int]uploadedPart{}, dirty: true}
	if !append {
		return w, nil
	}
	data, head, err := d.getUploadState(ctx, key)
	if err != nil {
		if isNotFound(err) {
			// Nothing to resume: an empty upload, as the filesystem driver
			// opens. The registry then answers the stale upload with 416
			// RANGE_INVALID (its offset is not 0) and the client starts
			// again; PathNotFound here would be a 500 on every retry, as
			// for an upload the s3-aws driver left in the bucket.
			return w, nil
		}
		return nil, err
	}
	if head.uploadSize < 0 {
		// Committed content: only an empty object can be appended to.
		if head.size != 0 {
			return nil, fmt.Errorf("cos: cannot append to %s: it holds %d bytes of committed content", path, head.size)
		}
		return w, nil
	}
	state, tail, err := decodeUploadState(data)
	if err != nil {
		return nil, err
	}
	w.uploadID, w.size = state.UploadID, state.Size
	for _, p := range state.Parts {
		w.parts[p.Number] = p
		w.nextPart = max(w.nextPart, p.Number)
	}
	w.tail = tail
	w.dirty = false
	return w, nil
}

// writer uploads a file as one PUT when it is small, else as a multipart
// upload whose full chunks go up in the background while the next fills.
type writer struct {
	d    *driver
	ctx  context.Context
	key  string
	path string

	partSize int    // size of every part but the last: the driver's chunksize
	buf      []byte // part being filled (from the driver's buffer pool)
	tail     []byte // resumed tail, until a buffer takes it over

	uploadID string
	nextPart int // number of the last part started
	size     int64
	dirty    bool // state differs from the stored record

	uploads sync.WaitGroup
	mu      sync.Mutex // guards parts and err
	parts   map[int]uploadedPart
	err     error

	closed, committed, cancelled bool
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if err := w.failure(); err != nil {
			return written, err
		}
		if w.buf == nil {
			buf, err := w.d.buffers.get(w.ctx)
			if err != nil {
				return written, err
			}
			w.buf = append(buf, w.tail...)
			w.tail = nil
		}
		n := copy(w.buf[len(w.buf):w.partSize], p)
		w.buf = w.buf[:len(w.buf)+n]
		w.size += int64(n)
		w.dirty = true
		written += n
		p = p[n:]
		if len(w.buf) == w.partSize {
			if err := w.startPart(w.buf, true); err != nil {
				return written, err
			}
			w.buf = nil
		}
	}
	return written, nil
}

func (w *writer) usable() error {
	switch {
	case w.committed:
		return fmt.Errorf("cos: writer for %s already committed", w.path)
	case w.cancelled:
		return fmt.Errorf("cos: writer for %s already cancelled", w.path)
	case w.closed:
		return fmt.Errorf("cos: writer for %s already closed", w.path)
	}
	return nil
}

func (w *writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// startPart uploads data as the next part. With background, the upload
// runs concurrently and gives the buffer back to the pool when done.
func (w *writer) startPart(data []byte, background bool) error {
	if w.uploadID == "" {
		if err := w.initiate(); err != nil {
			return err
		}
	}
	w.nextPart++
	number := w.nextPart
	upload := func() {
		err := w.uploadPart(number, data)
		if background {
			w.d.buffers.put(data)
		}
		if err != nil {
			w.fail(err)
		}
	}
	if !background {
		upload()
		return w.failure()
	}
	w.uploads.Add(1)
	go func() {
		defer w.uploads.Done()
		upload()
	}()
	return nil
}

func (w *writer) initiate() error {
	uploadID, err := w.d.initiate(w.ctx, w.key)
	w.uploadID = uploadID
	return err
}

func (w *writer) uploadPart(number int, data []byte) error {
	w.d.metrics.partsInFlight.Inc()
	defer w.d.metrics.partsInFlight.Dec()
	return w.d.do(w.ctx, "UploadPart", w.key, func(ctx context.Context) (*cossdk.Response, error) {
		// The SDK checks the part's CRC64 against COS's answer.
		resp, err := w.d.client.Object.UploadPart(ctx, w.key, w.uploadID, number, bytes.NewReader(data), nil)
		if err != nil {
			return resp, err
		}
		w.d.metrics.bytesSent.Add(float64(len(data)))
		crc, ok := parseCRC(resp.Header.Get("x-cos-hash-crc64ecma"))
		if !ok {
			// The SDK refuses a part answer without a CRC; be as strict.
			return resp, fmt.Errorf("cos: part %d of %s: COS sent no CRC64", number, w.path)
		}
		w.mu.Lock()
		w.parts[number] = uploadedPart{Number: number, ETag: resp.Header.Get("ETag"), Size: int64(len(data)), CRC64: crc}
		w.mu.Unlock()
		return resp, nil
	})
}

// settle waits for the background parts and reports their first failure.
func (w *writer) settle() error {
	w.uploads.Wait()
	return w.failure()
}

// pending is the data not yet in a part: the buffer, or the resumed tail.
func (w *writer) pending() []byte {
	if w.buf != nil {
		return w.buf
	}
	return w.tail
}

func (w *writer) releaseBuffer() {
	if w.buf != nil {
		w.d.buffers.put(w.buf)
		w.buf = nil
	}
}

func (w *writer) Size() int64 { return w.size }

// Close persists what was written so that Writer(path, true) can resume it:
// data of at least 1 MiB goes up as a part, the rest is kept in the state
// record. A writer that wrote nothing since it resumed sends nothing.
func (w *writer) Close() error {
	if w.closed || w.committed || w.cancelled {
		return nil
	}
	w.closed = true
	defer w.releaseBuffer()
	if err := w.settle(); err != nil {
		return err
	}
	if !w.dirty {
		return nil
	}
	pending := w.pending()
	if len(pending) >= minPartSize {
		if err := w.startPart(pending, false); err != nil {
			return err
		}
		pending = nil
	}
	state := &uploadState{UploadID: w.uploadID, Size: w.size, Parts: w.sortedParts()}
	meta := http.Header{}
	meta.Set(uploadStateMeta, strconv.FormatInt(w.size, 10))
	if err := w.d.putObject(w.ctx, w.key, state.encode(pending), meta); err != nil {
		return err
	}
	w.dirty = false
	return nil
}

// Commit makes the content readable at the path: one PUT when no part was
// uploaded, else the last part and Complete. The result is checked
// against the CRC64 of everything written.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.usable(); err != nil {
		return err
	}
	defer w.releaseBuffer()
	if err := w.settle(); err != nil {
		return err
	}
	pending := w.pending()
	if w.uploadID == "" {
		if err := w.d.putObject(ctx, w.key, pending, nil); err != nil {
			return err
		}
		w.committed = true
		return nil
	}
	if len(pending) > 0 {
		if err := w.startPart(pending, false); err != nil {
			return err
		}
	}
	if err := w.complete(ctx); err != nil {
		return err
	}
	w.committed = true
	return nil
}

// sortedParts returns the uploaded parts in part-number order.
func (w *writer) sortedParts() []uploadedPart {
	w.mu.Lock()
	defer w.mu.Unlock()
	parts := make([]uploadedPart, 0, len(w.parts))
	for _, p := range w.parts {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts
}

func (w *writer) complete(ctx context.Context) error {
	parts := w.sortedParts()
	list := make([]cossdk.Object, len(parts))
	var crc uint64
	for i, p := range parts {
		list[i] = cossdk.Object{PartNumber: p.Number, ETag: p.ETag}
		crc = crcCombine(crc, p.CRC64, p.Size)
	}
	return w.d.complete(ctx, w.key, w.uploadID, list, completion{size: w.size, crc64: formatCRC(crc), describe: w.path + " after upload"})
}

// Cancel aborts the multipart upload and removes the state record.
func (w *writer) Cancel(ctx context.Context) error {
	if w.committed {
		return fmt.Errorf("cos: writer for %s already committed", w.path)
	}
	w.cancelled = true
	defer w.releaseBuffer()
	w.uploads.Wait()
	if w.uploadID != "" {
		if err := w.d.abort(ctx, w.key, w.uploadID); err != nil {
			return err
		}
	}
	return w.d.deleteObject(ctx, w.key)
}
