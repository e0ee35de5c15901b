package cos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// An upload in progress keeps its state in a small object at the upload's
// own key, read back by key on resume: never by listing in-progress
// uploads, whose lag on COS makes resumes fail at random. The object is
// marked by this metadata header, whose value is the bytes written so far.
const uploadStateMeta = "x-cos-meta-registry-upload-size"

// uploadState is the record of an upload in progress. Tail, the data too
// small to be a part (COS wants 1 MiB for every part but the last), is
// stored after the JSON header, so a resume re-sends and re-copies nothing.
type uploadState struct {
	// Version is the record's format, uploadStateVersion; a record of
	// another version is refused rather than guessed at.
	Version  int            `json:"v"`
	UploadID string         `json:"uploadId,omitempty"`
	Parts    []uploadedPart `json:"parts,omitempty"`
	Size     int64          `json:"size"` // bytes written: parts + tail
	TailSize int            `json:"tailSize"`
}

// uploadedPart is a part COS has acknowledged, with the CRC64 COS computed
// (the SDK checks it against the bytes sent).
type uploadedPart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
	CRC64  uint64 `json:"crc64"`
}

// State records are padded to a size that is uploadRecordResidue modulo
// uploadRecordModulus, so Delete can tell from a listing alone whether a
// tree may hold an upload whose parts it must abort. (Other objects of
// such a size only cost one needless listing of in-progress uploads.)
const uploadStateVersion = 1

const (
	uploadRecordModulus = 4096
	uploadRecordResidue = 2477
)

func isUploadRecordSize(size int64) bool {
	return size%uploadRecordModulus == uploadRecordResidue
}

func (s *uploadState) encode(tail []byte) []byte {
	s.Version, s.TailSize = uploadStateVersion, len(tail)
	header, _ := json.Marshal(s)
	size := len(header) + 1 + len(tail)
	pad := (uploadRecordResidue - size%uploadRecordModulus + uploadRecordModulus) % uploadRecordModulus
	record := make([]byte, 0, size+pad)
	record = append(record, header...)
	record = append(record, bytes.Repeat([]byte{' '}, pad)...) // JSON ignores trailing spaces
	record = append(record, '\n')
	return append(record, tail...)
}

func decodeUploadState(data []byte) (*uploadState, []byte, error) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return nil, nil, errors.New("cos: upload state record has no header")
	}
	var s uploadState
	if err := json.Unmarshal(data[:i], &s); err != nil {
		return nil, nil, fmt.Errorf("cos: upload state record is corrupt: %w", err)
	}
	if s.Version != uploadStateVersion {
		return nil, nil, fmt.Errorf("cos: upload state record has format version %d, this driver reads version %d: finish or restart the upload with the driver that started it", s.Version, uploadStateVersion)
	}
	// A part's CRC64 is checked at Complete: one without it is refused,
	// never taken as 0.
	var crcs struct {
		Parts []struct {
			CRC64 *uint64 `json:"crc64"`
		} `json:"parts"`
	}
	_ = json.Unmarshal(data[:i], &crcs) // same JSON as above
	for n, p := range crcs.Parts {
		if p.CRC64 == nil {
			return nil, nil, fmt.Errorf("cos: upload state record is corrupt: part %d has no CRC64", s.Parts[n].Number)
		}
	}
	tail := data[i+1:]
	if len(tail) != s.TailSize {
		return nil, nil, fmt.Errorf("cos: upload state record is corrupt: tail of %d bytes, want %d", len(tail), s.TailSize)
	}
	return &s, tail, nil
}

// getUploadState reads the upload-state record at key in one GET. The body
// is read inside the retried request, so a connection dropped mid-record
// is sent again rather than failing the registry's PATCH. For committed
// content only the headers are read.
func (d *driver) getUploadState(ctx context.Context, key string) ([]byte, objectHead, error) {
	var data []byte
	var head objectHead
	err := d.do(ctx, "GetObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		resp, err := d.client.Object.Get(ctx, key, nil)
		if err != nil {
			return resp, err
		}
		defer resp.Body.Close()
		head = headOf(resp.Header, resp.ContentLength)
		if head.uploadSize >= 0 {
			data, err = io.ReadAll(resp.Body)
		}
		return resp, err
	})
	return data, head, err
}

// recordedUpload is the ID of the multipart upload whose state record is
// at key ("" when key holds no record), read before the record is
// replaced, so the upload can be aborted rather than left behind.
func (d *driver) recordedUpload(ctx context.Context, key string) (string, error) {
	data, head, err := d.getUploadState(ctx, key)
	if isNotFound(err) || (err == nil && head.uploadSize < 0) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	state, _, err := decodeUploadState(data)
	if err != nil {
		return "", err
	}
	return state.UploadID, nil
}
