package cos

import (
	"context"
	"fmt"
	"hash/crc64"
	"slices"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Writer returns a FileWriter for path. With append, it resumes the upload
// that an earlier writer closed: one GET of (the end of) its state record,
// nothing else.
func (d *driver) Writer(ctx context.Context, path string, append bool) (storagedriver.FileWriter, error) {
	key := d.key(path)
	w := &writer{d: d, ctx: ctx, key: key, path: path, partSize: int(d.params.ChunkSize), parts: map[int]uploadedPart{}, dirty: true}
	if !append {
		return w, nil
	}
	rec, head, err := d.getUploadState(ctx, key)
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
		// Committed content. The registry resumes it when a commit is
		// retried after the first attempt completed the upload but died
		// before the move (another replica takes the retry): the writer
		// holds that content, and a Commit with nothing more written
		// leaves it as it is. Appending bytes to it is refused (Write).
		w.size, w.persisted, w.dirty, w.holdsContent = head.size, head.size, false, head.size > 0
		return w, nil
	}
	state := rec.state
	sum := state.TailSize
	for _, p := range state.Parts {
		w.parts[p.Number] = p
		w.nextPart = max(w.nextPart, p.Number)
		sum += p.Size
	}
	if a := state.Assembly; a != nil {
		if a.Part != w.nextPart+1 || len(a.Parts) == 0 {
			return nil, fmt.Errorf("cos: upload state record of %s is corrupt: an assembly of part %d with %d parts after part %d", path, a.Part, len(a.Parts), w.nextPart)
		}
		w.asm = &assembly{part: a.Part, uploadID: a.UploadID, parts: map[int]uploadedPart{}}
		for _, p := range a.Parts {
			w.asm.parts[p.Number] = p
			w.asm.next = max(w.asm.next, p.Number)
			w.asm.size += p.Size
		}
		sum += w.asm.size
		w.recordAssembly = a.UploadID
	}
	if sum != state.Size || head.uploadSize != state.Size {
		return nil, fmt.Errorf("cos: upload state record of %s is corrupt: %d bytes written, its parts and tail hold %d", path, state.Size, sum)
	}
	w.uploadID, w.size, w.persisted, w.record = state.UploadID, state.Size, state.Size, rec.etag
	if rec.tail != nil {
		w.tail = rec.tail
	} else {
		w.stored = storedTail{size: state.TailSize, crc: *state.TailCRC64}
		w.cut = tailCut{size: state.Cut, crc: state.CutCRC64}
	}
	w.dirty = false
	return w, nil
}

// writer uploads a file as one PUT when it is small, else as a multipart
// upload whose full chunks go up in the background while the next fills.
//
// Between a Close and the next resume, the data after the last part (the
// tail) waits at COS in the state record, never as a part of its own, so
// parts do not follow the registry's PATCH boundaries: every part but the
// last holds at least partSize bytes whatever the clients' chunk size, and
// parts grow past it as the blob grows (partsizes.go).
//
// A tail below 1 MiB comes back with the resume and is sent again with the
// next data (COS allows no part below 1 MiB but the last, so it cannot be
// copied). A tail of 1 MiB or more (stored) stays at COS: a Close adds the
// new data to it on the server (extendRecord: a multipart upload at the
// record's key of a copy of the old tail, then the new data and header).
// When a stored tail first reaches partSize, its length is noted (the cut);
// once 1 MiB more has come after the cut, the tail up to the cut becomes
// the next part by Upload Part - Copy and the rest stays stored, so a tail
// never falls back below 1 MiB and small chunks do not send the first MiB
// of every part again. A write that fills a whole buffer while a tail is
// stored turns tail and buffer into parts at once (drain) and goes on with
// parts uploaded in the background.
type writer struct {
	d    *driver
	ctx  context.Context
	key  string
	path string

	partSize int    // size of every part but the last: the driver's chunksize
	buf      body   // part being filled, in pieces of the driver's budget
	bufSize  int    // bytes in buf
	tail     []byte // resumed tail, until a buffer takes it over

	stored storedTail // the tail at COS, in the record, when it is not in memory
	cut    tailCut    // where the next part out of the stored tail ends
	record string     // ETag of the record at key, which copies of stored are pinned to

	uploadID string
	nextPart int // number of the last part started

	// asm assembles the next part when it is to be larger than a buffer
	// (partsizes.go); recordAssembly is the upload ID of the assembly the
	// record at COS names, and assembled the assemblies finished since
	// that record, deleted once a record no longer names them.
	asm            *assembly
	recordAssembly string
	assembled      []string

	size      int64
	persisted int64 // size the stored record says (or the committed content)
	dirty     bool  // state differs from the stored record

	uploads sync.WaitGroup
	mu      sync.Mutex // guards parts and err
	parts   map[int]uploadedPart
	// err is the first failure. From then on only Cancel works: a failed
	// call may have sent part of what it had (a part, a record), so the
	// writer's state is no longer what COS holds, and Size reports what
	// the stored record says, as a resume would.
	err error

	closed, committed, cancelled bool
	holdsContent                 bool // resumed on committed content (size bytes)
}

// storedTail is the tail kept at COS: size bytes of the record from offset
// (0 but after a part was cut from its start), and their CRC64.
type storedTail struct {
	offset, size int64
	crc          uint64
}

// tailCut is the first size bytes of the stored tail, at least partSize,
// and their CRC64; size 0 is no cut.
type tailCut struct {
	size int64
	crc  uint64
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if w.holdsContent && len(p) > 0 {
		return 0, fmt.Errorf("cos: cannot append to %s: it holds %d bytes of committed content", w.path, w.size)
	}
	written, err := w.write(p)
	if err != nil {
		w.fail(err)
	}
	return written, err
}

func (w *writer) write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := w.failure(); err != nil {
			return written, err
		}
		last := len(w.buf) - 1
		if last < 0 || len(w.buf[last]) == cap(w.buf[last]) {
			if err := w.grow(); err != nil {
				return written, err
			}
			continue
		}
		piece := w.buf[last]
		n := copy(piece[len(piece):min(cap(piece), len(piece)+w.partSize-w.bufSize)], p)
		w.buf[last] = piece[:len(piece)+n]
		w.bufSize += n
		w.size += int64(n)
		w.dirty = true
		written += n
		p = p[n:]
		if w.bufSize < w.partSize {
			continue
		}
		if w.stored.size > 0 {
			if err := w.drain(); err != nil {
				return written, err
			}
			continue
		}
		if err := w.sendBuffer(); err != nil {
			return written, err
		}
	}
	return written, nil
}

// grow adds a piece of the budget to the buffer. Pieces are taken as data
// arrives, so an upload whose client stalls holds no more than it was
// sent. When none is free and no part in flight will give one back, the
// buffer (whole pieces, at least 1 MiB) goes up as a part shorter than
// partSize rather than wait: the writers holding the budget may all be
// waiting for more, or fed by clients that stopped sending.
func (w *writer) grow() error {
	piece, err := w.d.buffers.get(w.ctx, w.bufSize > 0)
	if err == errBudgetFull {
		if w.stored.size > 0 {
			// The stored tail comes first: it becomes a part of its own
			// (at least 1 MiB), whole.
			if err := w.copyStored(w.ctx, w.stored.size, w.stored.crc, false); err != nil {
				return err
			}
			w.stored, w.cut = storedTail{}, tailCut{}
		}
		return w.sendBuffer()
	}
	if err != nil {
		return err
	}
	if w.tail != nil {
		piece = append(piece, w.tail...) // a resumed tail is below 1 MiB
		w.bufSize, w.tail = len(piece), nil
	}
	w.buf = append(w.buf, piece)
	return nil
}

// sendBuffer uploads the buffer as the next part, in the background.
func (w *writer) sendBuffer() error {
	if err := w.startPart(w.buf, true); err != nil {
		return err
	}
	w.buf, w.bufSize = nil, 0
	w.dirty = true
	return nil
}

// drain turns the stored tail and the start of the full buffer into parts
// of at least partSize, so that the rest of a large write goes up as parts
// in the background rather than through the record.
func (w *writer) drain() error {
	rest := w.stored.size - w.cut.size // the stored tail after the cut
	if k := w.partSize - int(rest); k > 0 {
		if err := w.extendRecord(w.ctx, w.buf.prefix(k), false); err != nil {
			return err
		}
		var spare [][]byte
		w.buf, spare = w.buf.dropFront(k)
		w.bufSize -= k
		w.d.buffers.put(spare, false)
	}
	if err := w.cutPart(); err != nil {
		return err
	}
	if w.stored.size > 0 {
		if err := w.copyStored(w.ctx, w.stored.size, w.stored.crc, false); err != nil {
			return err
		}
		w.stored = storedTail{}
	}
	w.dirty = true
	return nil
}

// cutPart makes the stored tail up to the cut the next part.
func (w *writer) cutPart() error {
	if w.cut.size == 0 {
		return nil
	}
	if err := w.copyStored(w.ctx, w.cut.size, w.cut.crc, false); err != nil {
		return err
	}
	rest := w.stored.size - w.cut.size
	w.stored = storedTail{offset: w.stored.offset + w.cut.size, size: rest, crc: crcSuffix(w.stored.crc, w.cut.crc, rest)}
	w.cut = tailCut{}
	w.dirty = true
	return nil
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
// runs concurrently and gives the pieces back to the pool when done.
func (w *writer) startPart(data body, background bool) error {
	s, err := w.nextSink(int64(data.size()), !background)
	if err != nil {
		return err
	}
	upload := func() {
		w.d.metrics.partsInFlight.Inc()
		part, err := w.d.uploadPart(w.ctx, s.key, s.uploadID, s.number, data...)
		w.d.metrics.partsInFlight.Dec()
		if background {
			w.d.buffers.put(data, true)
		}
		if err != nil {
			w.fail(err)
			return
		}
		w.add(s, part)
	}
	if !background {
		upload()
		if err := w.failure(); err != nil {
			return err
		}
		return w.ripen(s)
	}
	w.d.buffers.send(data)
	w.uploads.Add(1)
	go func() {
		defer w.uploads.Done()
		upload()
	}()
	// The data is the upload's now: a failure to finish the assembly
	// fails the writer (as a failed part does) rather than hand the data
	// back to a caller that would release it again.
	if err := w.ripen(s); err != nil {
		w.fail(err)
	}
	return nil
}

func (w *writer) addPart(p uploadedPart) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parts[p.Number] = p
}

func (w *writer) initiate() error {
	uploadID, err := w.d.initiate(w.ctx, w.key, nil)
	w.uploadID = uploadID
	return err
}

// uploadPart uploads the concatenation of data as part number of upload
// uploadID at key.
func (d *driver) uploadPart(ctx context.Context, key, uploadID string, number int, data ...[]byte) (uploadedPart, error) {
	var part uploadedPart
	b := body(data)
	size, crc := b.size(), b.crc()
	err := d.do(ctx, "UploadPart", key, func(ctx context.Context) (*cossdk.Response, error) {
		resp, err := d.client.Object.UploadPart(ctx, key, uploadID, number, b.reader(),
			&cossdk.ObjectUploadPartOptions{ContentLength: int64(size)})
		if err != nil {
			return resp, err
		}
		d.metrics.bytesSent.Add(float64(size))
		if err := checkWriteCRC(resp, crc, fmt.Sprintf("part %d of %s", number, key)); err != nil {
			return resp, err
		}
		part = uploadedPart{Number: number, ETag: resp.Header.Get("ETag"), Size: int64(size), CRC64: crc}
		return resp, nil
	})
	return part, err
}

// copyStored makes the next part of the upload a copy of the first n bytes
// of the stored tail, whose CRC64 is crc.
func (w *writer) copyStored(ctx context.Context, n int64, crc uint64, last bool) error {
	s, err := w.nextSink(n, last)
	if err != nil {
		return err
	}
	etag, err := w.d.copyPart(ctx, partCopy{dst: s.key, uploadID: s.uploadID, number: s.number, src: w.key, first: w.stored.offset, n: n, ifMatch: w.record, wantCRC: formatCRC(crc)})
	if err != nil {
		return err
	}
	w.add(s, uploadedPart{Number: s.number, ETag: etag, Size: n, CRC64: crc})
	return w.ripen(s)
}

// state is the header of a record of the parts uploaded and a tail of
// tailSize bytes with this cut. Its size is what the record holds, which
// is less than written while a write goes on past it (drain).
func (w *writer) state(tailSize int64, cut tailCut) *uploadState {
	s := &uploadState{UploadID: w.uploadID, Size: tailSize, Parts: w.sortedParts(), Assembly: w.assemblyState(), Cut: cut.size, CutCRC64: cut.crc}
	for _, p := range s.Parts {
		s.Size += p.Size
	}
	if s.Assembly != nil {
		for _, p := range s.Assembly.Parts {
			s.Size += p.Size
		}
	}
	return s
}

// putRecord stores a record whose tail is data, in one PUT.
func (w *writer) putRecord(ctx context.Context, data body) error {
	size := int64(data.size())
	state := w.state(size, tailCut{})
	header := state.headerBlock(size, 0, data.crc())
	if err := w.d.putObject(ctx, w.key, state.recordMeta(header, 0), append(slices.Clone(data), header)...); err != nil {
		return err
	}
	w.record, w.stored, w.cut = "", storedTail{}, tailCut{}
	w.recorded(ctx)
	return nil
}

// extendRecord replaces the record with one whose tail is the stored tail
// followed by data, without sending the stored tail again: a multipart
// upload at the record's own key, of a copy of the stored tail (pinned to
// the record's ETag) and of data with the new header, completed only if
// COS's CRC64 of the whole is right. Until Complete the old record stays
// what a resume reads; a failed attempt is aborted.
//
// A Close advances the record: its header then says data was written. In
// the middle of a write or a commit (advance false), data is spare: the
// header still says what the last Close said, so a process that dies
// before the next Close leaves the size the registry expects.
func (w *writer) extendRecord(ctx context.Context, data body, advance bool) error {
	if w.stored.size < minPartSize {
		return fmt.Errorf("cos: internal error: a stored tail of %d bytes cannot be copied as a part", w.stored.size)
	}
	dataSize := int64(data.size())
	tailSize := w.stored.size + dataSize
	tailCRC := crcCombine(w.stored.crc, data.crc(), dataSize)
	cut := w.cut
	if cut.size == 0 && tailSize >= int64(w.partSize) {
		cut = tailCut{size: tailSize, crc: tailCRC}
	}
	var state *uploadState
	var header []byte
	spare := int64(0)
	if advance {
		state = w.state(tailSize, cut)
		header = state.headerBlock(tailSize, 0, tailCRC)
	} else {
		spare = dataSize
		state = w.state(w.stored.size, w.cut)
		header = state.headerBlock(w.stored.size, spare, w.stored.crc)
	}
	want := completion{
		size:     tailSize + int64(len(header)),
		crc64:    formatCRC(crcCombine(tailCRC, crc64.Checksum(header, crcTable), int64(len(header)))),
		record:   true,
		describe: "upload state record of " + w.path,
	}
	uploadID, err := w.d.initiate(ctx, w.key, state.recordMeta(header, spare), w.uploadID)
	if err != nil {
		return err
	}
	etag, err := w.completeRecord(ctx, uploadID, data, header, want)
	if err != nil {
		_ = w.d.abort(context.WithoutCancel(ctx), w.key, uploadID)
		return err
	}
	w.record, w.stored, w.cut = etag, storedTail{size: tailSize, crc: tailCRC}, cut
	w.dirty = !advance
	w.recorded(ctx)
	return nil
}

func (w *writer) completeRecord(ctx context.Context, uploadID string, data body, header []byte, want completion) (string, error) {
	copied, err := w.d.copyPart(ctx, partCopy{dst: w.key, uploadID: uploadID, number: 1, src: w.key, first: w.stored.offset, n: w.stored.size, ifMatch: w.record, wantCRC: formatCRC(w.stored.crc)})
	if err != nil {
		return "", err
	}
	last, err := w.d.uploadPart(ctx, w.key, uploadID, 2, append(slices.Clone(data), header)...)
	if err != nil {
		return "", err
	}
	parts := []cossdk.Object{{PartNumber: 1, ETag: copied}, {PartNumber: 2, ETag: last.ETag}}
	return w.d.complete(ctx, w.key, uploadID, parts, want)
}

// awaitParts waits for the parts uploading in the background and reports
// their first failure.
func (w *writer) awaitParts() error {
	w.uploads.Wait()
	return w.failure()
}

// pending is the data not yet in a part or at COS: the buffer, or the
// resumed tail.
func (w *writer) pending() body {
	if w.buf != nil {
		return w.buf
	}
	if w.tail != nil {
		return body{w.tail}
	}
	return nil
}

func (w *writer) releaseBuffer() {
	w.d.buffers.put(w.buf, false)
	w.buf, w.bufSize = nil, 0
}

// Size is the bytes written; after a failure, what the stored record says
// (the registry hands it to the client as the offset to go on from).
func (w *writer) Size() int64 {
	if w.failure() != nil {
		return w.persisted
	}
	return w.size
}

// Close persists what was written so that Writer(path, true) can resume it,
// in the state record: one PUT of the data in memory and the header when no
// tail is stored at COS, else the stored tail grows on the server (four
// requests, the new data sent once). A writer that wrote nothing since it
// resumed sends nothing.
func (w *writer) Close() error {
	if w.closed || w.committed || w.cancelled {
		return nil
	}
	w.closed = true
	defer w.releaseBuffer()
	if err := w.close(); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

func (w *writer) close() error {
	if err := w.awaitParts(); err != nil {
		return err
	}
	if !w.dirty {
		return nil
	}
	pending := w.pending()
	var err error
	if w.stored.size > 0 {
		if w.cut.size > 0 && w.stored.size-w.cut.size >= minPartSize {
			if err := w.cutPart(); err != nil {
				return err
			}
		}
		err = w.extendRecord(w.ctx, pending, true)
	} else {
		err = w.putRecord(w.ctx, pending)
	}
	if err != nil {
		return err
	}
	w.dirty, w.persisted = false, w.size
	return nil
}

// Commit makes the content readable at the path: one PUT when no part was
// uploaded and no tail is stored, else the last parts (a copy of the stored
// tail, then the data in memory) and Complete. The result is checked
// against the CRC64 of everything written. A failed Commit leaves the
// writer failed: the record stays what the last Close stored.
func (w *writer) Commit(ctx context.Context) error {
	if err := w.usable(); err != nil {
		return err
	}
	defer w.releaseBuffer()
	if err := w.commit(ctx); err != nil {
		w.fail(err)
		return err
	}
	w.committed = true
	return nil
}

func (w *writer) commit(ctx context.Context) error {
	if err := w.awaitParts(); err != nil {
		return err
	}
	if w.holdsContent {
		return nil // already committed, and nothing was added
	}
	pending := w.pending()
	if w.uploadID == "" && w.stored.size == 0 {
		return w.d.putObject(ctx, w.key, nil, pending...)
	}
	if w.stored.size > 0 {
		if pending.size() > 0 {
			// The stored tail and the data in memory become one last
			// part, not a short part before another: every part but the
			// last holds at least partSize bytes.
			if err := w.extendRecord(ctx, pending, false); err != nil {
				return err
			}
			pending = nil
			w.releaseBuffer() // its data is in the stored tail now
		}
		if err := w.copyStored(ctx, w.stored.size, w.stored.crc, true); err != nil {
			return err
		}
	}
	if pending.size() > 0 {
		if err := w.startPart(pending, false); err != nil {
			return err
		}
	}
	if w.asm != nil {
		if err := w.finishAssembly(ctx); err != nil {
			return err
		}
	}
	if err := w.complete(ctx); err != nil {
		return err
	}
	w.recordAssembly = ""
	w.deleteAssembled(ctx)
	return nil
}

// sortedParts returns the uploaded parts in part-number order.
func (w *writer) sortedParts() []uploadedPart {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortParts(w.parts)
}

func (w *writer) complete(ctx context.Context) error {
	parts := w.sortedParts()
	list := make([]cossdk.Object, len(parts))
	var crc uint64
	for i, p := range parts {
		list[i] = cossdk.Object{PartNumber: p.Number, ETag: p.ETag}
		crc = crcCombine(crc, p.CRC64, p.Size)
	}
	_, err := w.d.complete(ctx, w.key, w.uploadID, list, completion{size: w.size, crc64: formatCRC(crc), describe: w.path + " after upload"})
	return err
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
	if w.asm != nil {
		if err := w.d.abort(ctx, assemblyKey(w.key, w.asm.part), w.asm.uploadID); err != nil {
			return err
		}
		w.assembled = append(w.assembled, assemblyKey(w.key, w.asm.part))
	}
	w.recordAssembly = ""
	w.deleteAssembled(ctx)
	return w.d.deleteObject(ctx, w.key)
}
