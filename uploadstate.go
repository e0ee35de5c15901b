package cos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// An upload in progress keeps its state in an object at the upload's own
// key, read back by key on resume: never by listing in-progress uploads,
// whose lag on COS makes resumes fail at random. The object is marked by
// this metadata header, whose value is the bytes written so far.
const uploadStateMeta = "x-cos-meta-registry-upload-size"

// uploadHeaderMeta is the length of a record's header block, the end of
// the record: with the record's size (from Content-Range) it tells where
// the tail ends, so a resume reads only what it needs in one ranged GET.
const uploadHeaderMeta = "x-cos-meta-registry-upload-header"

// uploadSpareMeta, when set, is the length of bytes between the tail and
// the header that are no part of the upload yet: data a write in progress
// put beside the tail to copy them into a part together. The record still
// says only what the registry was last told (its size at the last Close),
// so a process killed in the middle of a PATCH leaves the offset the
// registry's upload state expects.
const uploadSpareMeta = "x-cos-meta-registry-upload-spare"

// uploadState is the header of an upload-state record. The record is
//
//	[tail][header: JSON, then spaces]
//
// The tail is the data written after the last part of the multipart
// upload (COS wants at least 1 MiB in every part but the last). It is kept
// at COS, in the record, so a resume re-sends nothing: a tail of 1 MiB or
// more grows on the server (a multipart upload at the record's own key
// whose first part is a copy of the old tail) and becomes a part of the
// real upload by Upload Part - Copy. With the header at the end, a resume
// reads the header and, only when it is small, the tail.
//
// Version 1 records (header first, '\n', then a tail below 1 MiB) are
// still read, so uploads in progress across an upgrade resume.
type uploadState struct {
	// Version is the record's format, uploadStateVersion; a record of
	// another version is refused rather than guessed at.
	Version  int            `json:"v"`
	UploadID string         `json:"uploadId,omitempty"`
	Parts    []uploadedPart `json:"parts,omitempty"`
	// Assembly, from version 3, is the assembly of the next part, when
	// that part is to be larger than a buffer (partsizes.go).
	Assembly *assemblyState `json:"assembly,omitempty"`
	Size     int64          `json:"size"` // bytes written: parts + assembly + tail
	TailSize int64          `json:"tailSize"`
	// TailCRC64 is the tail's CRC64: a copy of the tail into a part gets
	// its CRC from it, and the copy and the Complete are checked with it.
	TailCRC64 *uint64 `json:"tailCrc64,omitempty"`
	// Cut, when not 0, is where the next part out of the tail ends (at
	// least chunksize), and CutCRC64 the CRC64 of the tail up to it.
	Cut      int64  `json:"cut,omitempty"`
	CutCRC64 uint64 `json:"cutCrc64,omitempty"`
}

// uploadedPart is a part COS has acknowledged, with the CRC64 of its
// content (checked against COS's answer when it was made).
type uploadedPart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	CRC64  uint64 `json:"crc64"`
}

// uploadStateVersion is the format written: 2, header last; 3 is 2 with
// an assembly, written only while one is in progress, so that a driver
// that reads versions 1 and 2 (the release before) still resumes every
// upload of a blob below some hundred chunks, and refuses the others with
// a clear error rather than miscounting them. Version 1 (header first) is
// read too.
const (
	uploadStateVersion         = 2
	uploadStateVersionAssembly = 3
)

// State records are padded to a size that is uploadRecordResidue modulo
// uploadRecordModulus, so Delete can tell from a listing alone whether a
// tree may hold an upload whose parts it must abort. (Other objects of
// such a size only cost one needless listing of in-progress uploads.)
const (
	uploadRecordModulus = 4096
	uploadRecordResidue = 2477
)

func isUploadRecordSize(size int64) bool {
	return size%uploadRecordModulus == uploadRecordResidue
}

// headerBlock is the end of a record whose tail is tailSize bytes, with
// spare bytes after it: the JSON header, padded with spaces (which JSON
// ignores) to the record size Delete recognises.
func (s *uploadState) headerBlock(tailSize, spare int64, tailCRC uint64) []byte {
	s.Version, s.TailSize, s.TailCRC64 = uploadStateVersion, tailSize, &tailCRC
	if s.Assembly != nil {
		s.Version = uploadStateVersionAssembly
	}
	header, _ := json.Marshal(s)
	size := tailSize + spare + int64(len(header))
	pad := (uploadRecordResidue - size%uploadRecordModulus + uploadRecordModulus) % uploadRecordModulus
	return append(header, bytes.Repeat([]byte{' '}, int(pad))...)
}

// recordMeta are the metadata headers of a record with this header block.
func (s *uploadState) recordMeta(header []byte, spare int64) http.Header {
	meta := http.Header{}
	meta.Set(uploadStateMeta, strconv.FormatInt(s.Size, 10))
	meta.Set(uploadHeaderMeta, strconv.Itoa(len(header)))
	if spare > 0 {
		meta.Set(uploadSpareMeta, strconv.FormatInt(spare, 10))
	}
	return meta
}

// decodeHeader reads the header block of a version-2 record.
func decodeHeader(block []byte, tailSize int64) (*uploadState, error) {
	s, err := decodeJSONHeader(block)
	if err != nil {
		return nil, err
	}
	if s.TailSize != tailSize || s.TailCRC64 == nil || s.Cut < 0 || s.Cut > tailSize {
		return nil, fmt.Errorf("cos: upload state record is corrupt: tail of %d bytes, header says %d", tailSize, s.TailSize)
	}
	return s, nil
}

// decodeRecordV1 reads a whole version-1 record: header, '\n', tail.
func decodeRecordV1(data []byte) (*uploadState, []byte, error) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return nil, nil, errors.New("cos: upload state record has no header")
	}
	s, err := decodeJSONHeader(data[:i])
	if err != nil {
		return nil, nil, err
	}
	if s.Version != 1 {
		return nil, nil, fmt.Errorf("cos: upload state record is corrupt: format version %d with a version-1 layout", s.Version)
	}
	tail := data[i+1:]
	if int64(len(tail)) != s.TailSize {
		return nil, nil, fmt.Errorf("cos: upload state record is corrupt: tail of %d bytes, want %d", len(tail), s.TailSize)
	}
	crc := crc64.Checksum(tail, crcTable)
	s.TailCRC64 = &crc
	return s, tail, nil
}

// decodeJSONHeader reads a header of a version this driver knows.
func decodeJSONHeader(header []byte) (*uploadState, error) {
	var s uploadState
	if err := json.Unmarshal(header, &s); err != nil {
		return nil, fmt.Errorf("cos: upload state record is corrupt: %w", err)
	}
	if s.Version < 1 || s.Version > uploadStateVersionAssembly {
		return nil, fmt.Errorf("cos: upload state record has format version %d, this driver reads versions 1 to %d: finish or restart the upload with the driver that started it", s.Version, uploadStateVersionAssembly)
	}
	if s.Assembly != nil && s.Version != uploadStateVersionAssembly {
		return nil, fmt.Errorf("cos: upload state record is corrupt: an assembly in a version-%d record", s.Version)
	}
	// A part's CRC64 is checked at Complete: one without it is refused,
	// never taken as 0.
	var crcs struct {
		Parts []struct {
			CRC64 *uint64 `json:"crc64"`
		} `json:"parts"`
	}
	_ = json.Unmarshal(header, &crcs) // same JSON as above
	for n, p := range crcs.Parts {
		if p.CRC64 == nil {
			return nil, fmt.Errorf("cos: upload state record is corrupt: part %d has no CRC64", s.Parts[n].Number)
		}
	}
	return &s, nil
}

// storedRecord is an upload-state record as a resume reads it.
type storedRecord struct {
	state *uploadState
	tail  []byte // the tail when it is below minPartSize (read), else nil
	etag  string // the record's ETag, which copies of its tail are pinned to
}

// resumeWindow is how much of a record's end a resume reads: a header of
// up to 64 KiB (some 700 parts) and a tail too small to stay at COS. A
// longer header costs a second GET.
const resumeWindow = minPartSize + 64*kib

// getUploadState reads the upload-state record at key in one GET of its
// last resumeWindow bytes. The body is read inside the retried request,
// so a connection dropped mid-record is sent again rather than failing the
// registry's PATCH. For committed content only the headers are read.
func (d *driver) getUploadState(ctx context.Context, key string) (*storedRecord, objectHead, error) {
	data, first, head, meta, err := d.getRecordRange(ctx, key, byteRange{suffix: resumeWindow}, "")
	if codeOf(err) == "InvalidRange" {
		// A suffix of an empty object selects nothing: committed and empty.
		return nil, objectHead{uploadSize: -1}, nil
	}
	if err != nil || head.uploadSize < 0 {
		return nil, head, err
	}
	headerLen, spare := int64(-1), int64(0)
	if v := meta.Get(uploadHeaderMeta); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if v := meta.Get(uploadSpareMeta); v != "" && perr == nil {
			spare, perr = strconv.ParseInt(v, 10, 64)
		}
		if perr != nil || n <= 0 || spare < 0 || n+spare > head.size {
			return nil, head, fmt.Errorf("cos: upload state record at %s is corrupt: %s %q, %s %q", key, uploadHeaderMeta, v, uploadSpareMeta, meta.Get(uploadSpareMeta))
		}
		headerLen = n
	}
	tailSize := head.size - headerLen - spare
	// need is the first byte the resume needs: the whole of a version-1
	// record or of a small tail, else only the header.
	need := int64(0)
	if headerLen > 0 && tailSize >= minPartSize {
		need = head.size - headerLen
	}
	if need < first {
		more, _, _, _, err := d.getRecordRange(ctx, key, byteRange{start: need, end: first}, head.etag)
		if err != nil {
			return nil, head, err
		}
		data, first = append(more, data...), need
	}
	rec := &storedRecord{etag: head.etag}
	if headerLen < 0 {
		rec.state, rec.tail, err = decodeRecordV1(data)
		return rec, head, err
	}
	if rec.state, err = decodeHeader(data[head.size-headerLen-first:], tailSize); err != nil {
		return nil, head, err
	}
	if need == 0 {
		rec.tail = data[:tailSize]
		if crc64.Checksum(rec.tail, crcTable) != *rec.state.TailCRC64 {
			return nil, head, fmt.Errorf("cos: upload state record at %s is corrupt: its tail does not match its CRC64", key)
		}
	}
	return rec, head, nil
}

// getRecordRange reads a range of the record at key (with ifMatch, of that
// version only). first is the offset of the data in the object, head.size
// the object's size, and header the answer's headers.
func (d *driver) getRecordRange(ctx context.Context, key string, r byteRange, ifMatch string) (data []byte, first int64, head objectHead, header http.Header, err error) {
	err = d.do(ctx, "GetObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		resp, h, f, err := d.getRange(ctx, key, r, ifMatch)
		if err != nil {
			return resp, err
		}
		defer resp.Body.Close()
		head, first, header = h, f, resp.Header
		if head.uploadSize < 0 && ifMatch == "" {
			return resp, nil // committed content: its headers are enough
		}
		data, err = io.ReadAll(resp.Body)
		if err == nil && int64(len(data)) != resp.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		d.metrics.bytesReceived.Add(float64(len(data)))
		return resp, err
	})
	return data, first, head, header, err
}

// recordedUpload reads whether the object at key is an upload-state record
// and of which multipart upload, so that the upload can be aborted rather
// than left behind when the record goes: a HEAD, and for a record a GET of
// its header. A record too corrupt to name its upload is a record with
// upload "". A missing key is a not-found error.
func (d *driver) recordedUpload(ctx context.Context, key string) (uploadID string, record bool, err error) {
	head, err := d.head(ctx, key)
	if err != nil || head.uploadSize < 0 {
		return "", false, err
	}
	rec, head, err := d.getUploadState(ctx, key)
	switch {
	case err == nil && head.uploadSize < 0:
		return "", false, nil // replaced by content since the HEAD
	case err == nil:
		return rec.state.UploadID, true, nil
	case isNotFound(err):
		return "", false, err
	}
	return "", true, nil // a record, but not understood
}
