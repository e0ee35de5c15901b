package cos

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Part sizes of a blob written through the writer.
//
// COS allows 10,000 parts of at most 5 GiB: an object of up to 48.8 TiB.
// Parts of chunksize alone would stop a blob at 10,000 × chunksize (48.8
// GiB at 5 MiB), so the size a part is built to grows with its number:
// the first maxParts/100 parts hold chunksize, then the size doubles every
// maxParts/1000 parts up to 5 GiB. At 10,000 parts: 100 parts of
// chunksize, doubling every 10 parts, 5 GiB from part 191 at a 5 MiB
// chunksize (181 at 16 MiB): a blob of up to 47.9 TiB (98% of COS's limit)
// at any chunksize, in some 200 parts up to 100 GiB.
//
// Memory stays what chunksize makes it: a part larger than chunksize is
// assembled at COS in a multipart upload of its own at a side key (the
// part's assembly, key.partN), whose parts are what would otherwise have
// been parts of the blob (buffers of chunksize, copies of stored tails);
// once it holds the part's size it is completed and becomes the blob's
// part by Upload Part - Copy, then deleted. Each byte is sent to COS once
// and copied on the server once more.

// defaultMaxParts is COS's part-count limit (part numbers 1 to 10,000).
const defaultMaxParts = 10000

// partLimit is the number of parts an upload may have: COS's, or less in
// tests (which lower the emulator's to match), so that the growth of part
// sizes shows at a few hundred MiB.
func (d *driver) partLimit() int {
	if d.maxParts > 0 {
		return d.maxParts
	}
	return defaultMaxParts
}

// partTarget is the size part n of an upload is built to with chunks of
// chunk bytes and a limit of maxParts parts.
func partTarget(chunk int64, maxParts, n int) int64 {
	flat := max(1, maxParts/100)
	if n <= flat {
		return chunk
	}
	step := max(1, maxParts/1000)
	shift := (n-flat-1)/step + 1
	if shift >= 32 {
		return maxPartSize
	}
	return min(maxPartSize, chunk<<shift)
}

// maxUploadSize is the largest blob the writer can build: maxParts parts
// of their target sizes.
func maxUploadSize(chunk int64, maxParts int) int64 {
	var total int64
	for n := 1; n <= maxParts; n++ {
		total += partTarget(chunk, maxParts, n)
	}
	return total
}

// assembly is a multipart upload at a side key building one part of the
// blob larger than a buffer.
type assembly struct {
	part     int // the number of the blob's part it becomes
	uploadID string
	next     int   // the number of its last part started
	size     int64 // bytes in its parts started
	// checked is false for an assembly read from a record until it is
	// known to be in progress still (see resumeAssembly).
	checked bool
	parts   map[int]uploadedPart // guarded by writer.mu
}

// assemblyState is an assembly in the upload-state record.
type assemblyState struct {
	Part     int            `json:"part"`
	UploadID string         `json:"uploadId"`
	Parts    []uploadedPart `json:"parts"`
}

// assemblyKey is where part n of the upload at key is assembled: beside
// the upload's key, in the same directory, so that a Delete of the
// registry's upload directory removes what a crash left there.
func assemblyKey(key string, n int) string {
	return fmt.Sprintf("%s.part%d", key, n)
}

// isAssemblyOf says whether k is where a part of the upload at key is
// assembled.
func isAssemblyOf(k, key string) bool {
	n, ok := strings.CutPrefix(k, key+".part")
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// sink is where the next piece of the blob goes: part number of the upload
// uploadID at key, either the blob's own (asm nil) or an assembly's.
type sink struct {
	key, uploadID string
	number        int
	asm           *assembly
}

// add records a part made at the sink.
func (w *writer) add(s sink, p uploadedPart) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.asm != nil {
		s.asm.parts[p.Number] = p
		return
	}
	w.parts[p.Number] = p
}

// nextSink chooses where the next piece of size bytes goes. A piece that
// fills the part it would start (every piece while parts hold chunksize)
// is that part; a smaller one goes into the part's assembly. last is the
// upload's last piece, which may be any size.
func (w *writer) nextSink(size int64, last bool) (sink, error) {
	if w.uploadID == "" {
		if err := w.initiate(); err != nil {
			return sink{}, err
		}
	}
	limit := w.d.partLimit()
	if a := w.asm; a != nil {
		if a.size+size <= maxPartSize && a.next < limit {
			if err := w.resumeAssembly(); err != nil {
				return sink{}, err
			}
			a.next++
			a.size += size
			return sink{key: assemblyKey(w.key, a.part), uploadID: a.uploadID, number: a.next, asm: a}, nil
		}
		if err := w.finishAssembly(w.ctx); err != nil {
			return sink{}, err
		}
	}
	n := w.nextPart + 1
	if n > limit {
		chunk := int64(w.partSize)
		return sink{}, fmt.Errorf("cos: %s cannot grow past %d bytes: COS allows %d parts of at most %d bytes, and with chunksize %d parts grow to that size from part %d on",
			w.path, maxUploadSize(chunk, limit), limit, int64(maxPartSize), chunk, firstFullPart(chunk, limit))
	}
	if last || size >= partTarget(int64(w.partSize), limit, n) {
		w.nextPart = n
		return sink{key: w.key, uploadID: w.uploadID, number: n}, nil
	}
	uploadID, err := w.d.initiate(w.ctx, assemblyKey(w.key, n), nil)
	if err != nil {
		return sink{}, err
	}
	w.asm = &assembly{part: n, uploadID: uploadID, next: 1, size: size, checked: true, parts: map[int]uploadedPart{}}
	w.dirty = true
	return sink{key: assemblyKey(w.key, n), uploadID: uploadID, number: 1, asm: w.asm}, nil
}

// firstFullPart is the first part number whose target is maxPartSize.
func firstFullPart(chunk int64, maxParts int) int {
	n := 1
	for n < maxParts && partTarget(chunk, maxParts, n) < maxPartSize {
		n++
	}
	return n
}

// ripen finishes the assembly once it holds its part's size.
func (w *writer) ripen(s sink) error {
	if s.asm == nil || s.asm != w.asm || s.asm.size < partTarget(int64(w.partSize), w.d.partLimit(), s.asm.part) {
		return nil
	}
	return w.finishAssembly(w.ctx)
}

// sortedAssemblyParts returns the assembly's parts in number order.
func (w *writer) sortedAssemblyParts(a *assembly) []uploadedPart {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortParts(a.parts)
}

func sortParts(m map[int]uploadedPart) []uploadedPart {
	parts := make([]uploadedPart, 0, len(m))
	for _, p := range m {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts
}

// partsCRC is the CRC64 of parts in order.
func partsCRC(parts []uploadedPart) uint64 {
	var crc uint64
	for _, p := range parts {
		crc = crcCombine(crc, p.CRC64, p.Size)
	}
	return crc
}

// finishAssembly completes the assembly (checked against the CRC64 of its
// parts), copies it into the blob's upload as its part, and deletes it —
// at once when the state record at COS does not name it, else after the
// next record is written (a resume from that record may still need it).
func (w *writer) finishAssembly(ctx context.Context) error {
	a := w.asm
	if err := w.awaitParts(); err != nil {
		return err
	}
	if err := w.resumeAssembly(); err != nil {
		return err
	}
	parts := w.sortedAssemblyParts(a)
	list := make([]cossdk.Object, len(parts))
	for i, p := range parts {
		list[i] = cossdk.Object{PartNumber: p.Number, ETag: p.ETag}
	}
	crc := formatCRC(partsCRC(parts))
	key := assemblyKey(w.key, a.part)
	etag, err := w.d.complete(ctx, key, a.uploadID, list, completion{size: a.size, crc64: crc, describe: fmt.Sprintf("part %d of %s, assembled at %s", a.part, w.path, key)})
	if err != nil {
		return err
	}
	copied, err := w.d.copyPart(ctx, partCopy{dst: w.key, uploadID: w.uploadID, number: a.part, src: key, n: a.size, ifMatch: etag, wantCRC: crc})
	if err != nil {
		return err
	}
	w.addPart(uploadedPart{Number: a.part, ETag: copied, Size: a.size, CRC64: partsCRC(parts)})
	w.nextPart, w.asm, w.dirty = a.part, nil, true
	if a.uploadID == w.recordAssembly {
		w.assembled = append(w.assembled, key)
	} else {
		_ = w.d.deleteObject(ctx, key) // cleanup only, as in deleteAssembled
	}
	return nil
}

// recorded notes that a record naming the writer's assembly (if any) is
// now at COS: the assemblies finished before it are no longer needed.
func (w *writer) recorded(ctx context.Context) {
	w.recordAssembly = ""
	if w.asm != nil {
		w.recordAssembly = w.asm.uploadID
	}
	w.deleteAssembled(ctx)
}

// deleteAssembled deletes the finished assemblies. It is cleanup only: a
// failure leaves an object beside the upload's key, which the registry's
// Delete of the upload directory removes with the rest.
func (w *writer) deleteAssembled(ctx context.Context) {
	for _, key := range w.assembled {
		_ = w.d.deleteObject(ctx, key)
	}
	w.assembled = nil
}

// resumeAssembly makes sure an assembly read from the record is still in
// progress before a part is added to it. A writer that resumed the same
// record, went on and died before its next Close may have completed it:
// the assembled object then starts with what the record lists, and a new
// assembly continues from a copy of that (checked by CRC64).
func (w *writer) resumeAssembly() error {
	a := w.asm
	if a.checked {
		return nil
	}
	key := assemblyKey(w.key, a.part)
	err := w.d.do(w.ctx, "ListParts", key, func(ctx context.Context) (*cossdk.Response, error) {
		_, resp, err := w.d.client.Object.ListParts(ctx, key, a.uploadID, &cossdk.ObjectListPartsOptions{MaxParts: "1"})
		return resp, err
	})
	if err == nil {
		a.checked = true
		return nil
	}
	if codeOf(err) != "NoSuchUpload" {
		return err
	}
	head, err := w.d.head(w.ctx, key)
	if err != nil {
		return fmt.Errorf("cos: the assembly of part %d of %s (upload %s) is gone and was not completed: %w", a.part, w.path, a.uploadID, err)
	}
	if head.size < a.size {
		return fmt.Errorf("cos: the assembly of part %d of %s (upload %s) is gone; %s holds %d bytes, the record %d", a.part, w.path, a.uploadID, key, head.size, a.size)
	}
	parts := w.sortedAssemblyParts(a)
	crc := partsCRC(parts)
	uploadID, err := w.d.initiate(w.ctx, key, nil)
	if err != nil {
		return err
	}
	etag, err := w.d.copyPart(w.ctx, partCopy{dst: key, uploadID: uploadID, number: 1, src: key, n: a.size, ifMatch: head.etag, wantCRC: formatCRC(crc)})
	if err != nil {
		_ = w.d.abort(context.WithoutCancel(w.ctx), key, uploadID)
		return err
	}
	a.uploadID, a.next, a.checked = uploadID, 1, true
	a.parts = map[int]uploadedPart{1: {Number: 1, ETag: etag, Size: a.size, CRC64: crc}}
	w.dirty = true
	return nil
}

// assemblyState is the record's view of the writer's assembly (nil when
// there is none).
func (w *writer) assemblyState() *assemblyState {
	if w.asm == nil {
		return nil
	}
	return &assemblyState{Part: w.asm.part, UploadID: w.asm.uploadID, Parts: w.sortedAssemblyParts(w.asm)}
}
