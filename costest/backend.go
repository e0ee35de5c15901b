package costest

import (
	"io"
	"time"
)

// backend stores blobs (immutable runs of bytes). The emulator's index of
// buckets, objects and uploads lives in memory (store); a backend only has
// to hold the bytes. A backend whose data survives a restart also
// implements persister, which makes the records survive with it.
//
// Objects and parts refer to blobs through segments, so Complete Multipart,
// PUT Object-Copy and Upload Part-Copy share data instead of copying it; the
// store counts references and removes a blob when the last one goes.
type backend interface {
	// CreateBlob starts a new blob. The caller writes it, then either
	// commits it (the blob becomes readable under the returned id) or
	// aborts it (nothing remains).
	CreateBlob() (blobWriter, error)
	// OpenBlob opens a committed blob for reading.
	OpenBlob(id string) (blobReader, error)
	// RemoveBlob deletes a blob no record refers to any more.
	RemoveBlob(id string) error
	// Close releases files and memory.
	Close() error
}

// persister is the optional capability of a persistent backend (the way
// gofakes3 declares optional backend features): it records every index
// change and gives the records back at start. The store uses it when the
// backend has it; a memory backend does not.
type persister interface {
	// SaveBucket, SaveObject, DeleteObject, SaveUpload, SavePart and
	// DeleteUpload persist index changes.
	SaveBucket(b *bucketRecord) error
	SaveObject(bucket string, o *objectRecord) error
	DeleteObject(bucket, key string) error
	SaveUpload(u *uploadRecord) error
	SavePart(u *uploadRecord, p *partRecord) error
	DeleteUpload(u *uploadRecord) error

	// Load returns what was persisted, for the store to rebuild its index.
	Load() ([]*bucketRecord, []*objectEntry, []*uploadRecord, error)
	// Sweep removes the blobs keep returns false for: data a crash or a
	// killed process left without a record.
	Sweep(keep func(blobID string) bool)
}

// blobWriter receives a blob's bytes.
type blobWriter interface {
	io.Writer
	// Commit makes the blob durable and returns its id.
	Commit() (string, error)
	// Abort discards what was written.
	Abort()
}

// blobReader reads a committed blob.
type blobReader interface {
	io.ReaderAt
	io.Closer
}

// segment is a byte range of a blob; an object or part is the concatenation
// of its segments.
//
// A segment also records the checksums of its bytes when they are known
// (HasSum): every blob received from a client is hashed as it arrives, and
// a slice of a segment read for a copy is hashed while it is read. Upload
// Part - Copy then gets the CRC-64 of a range made of whole segments by
// combining theirs, without reading any data. Records written before these
// fields existed load with HasSum false; their segments are read when
// needed.
type segment struct {
	Blob   string `json:"blob"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
	HasSum bool   `json:"hasSum,omitempty"`
	CRC64  uint64 `json:"crc64,omitempty"`
	MD5    string `json:"md5,omitempty"` // hex
}

// objectMeta is what a client stores with an object besides its bytes.
type objectMeta struct {
	ContentType  string            `json:"contentType"`
	StorageClass string            `json:"storageClass,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"` // canonical name -> value
}

// objectRecord is one stored object.
type objectRecord struct {
	Key        string     `json:"key"`
	Size       int64      `json:"size"`
	ETag       string     `json:"etag"` // without quotes
	CRC64      uint64     `json:"crc64"`
	Modified   time.Time  `json:"modified"`
	Meta       objectMeta `json:"meta"`
	Appendable bool       `json:"appendable,omitempty"`
	Segments   []segment  `json:"segments"`
}

// objectEntry is an object record with the bucket it lives in.
type objectEntry struct {
	Bucket string        `json:"bucket"`
	Object *objectRecord `json:"object"`
}

// partRecord is one uploaded part of a multipart upload.
type partRecord struct {
	Number   int       `json:"number"`
	ETag     string    `json:"etag"` // hex MD5, without quotes
	Size     int64     `json:"size"`
	CRC64    uint64    `json:"crc64"`
	Modified time.Time `json:"modified"`
	Segments []segment `json:"segments"`
}

// uploadRecord is one in-progress multipart upload.
type uploadRecord struct {
	Bucket    string              `json:"bucket"`
	Key       string              `json:"key"`
	UploadID  string              `json:"uploadId"`
	Initiated time.Time           `json:"initiated"`
	Meta      objectMeta          `json:"meta"`
	Parts     map[int]*partRecord `json:"-"`
}

// bucketRecord is one bucket.
type bucketRecord struct {
	Name    string    `json:"name"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`
}
