package costest

import (
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// appendObject implements APPEND Object: POST /key?append&position=P adds
// the body to an appendable object whose length is P (0 creates it).
func (q *request) appendObject() error {
	if err := checkKey(q.key); err != nil {
		return err
	}
	position, err := strconv.ParseInt(q.query.Get("position"), 10, 64)
	if err != nil || position < 0 {
		return errInvalidArgument("The position parameter is required and must be a non-negative integer.")
	}
	if q.r.ContentLength < 0 {
		return newError(http.StatusLengthRequired, "MissingContentLength", "You must provide the Content-Length HTTP header.")
	}
	if position+q.r.ContentLength > maxObjectSize {
		return errEntityTooLarge()
	}
	seg, d, err := q.receiveBlob(maxObjectSize)
	if err != nil {
		return err
	}
	chunkMD5 := d.md5Sum()
	rec, err := q.h.store.updateObject(q.bucket, q.key, func(old *objectRecord) (*objectRecord, error) {
		var size int64
		meta := metaFromHeaders(q.r.Header)
		var segs []segment
		var crc uint64
		etag := hex.EncodeToString(chunkMD5)
		if old != nil {
			if !old.Appendable {
				return nil, newError(http.StatusConflict, "ObjectNotAppendable", "The object is not appendable.")
			}
			size, meta, crc = old.Size, old.Meta, old.CRC64
			segs = append(segs, old.Segments...)
			// The ETag of an appendable object changes with every append:
			// the MD5 of the previous ETag and the chunk's MD5.
			prev, _ := hex.DecodeString(old.ETag)
			sum := md5.Sum(append(prev, chunkMD5...))
			etag = hex.EncodeToString(sum[:])
		}
		if position != size {
			return nil, newError(http.StatusConflict, "AppendPositionErr", "Position not equal object length.")
		}
		if size+d.size > maxObjectSize {
			return nil, errEntityTooLarge()
		}
		return &objectRecord{
			Key: q.key, Size: size + d.size, ETag: etag, CRC64: crc64Combine(crc, d.crc, d.size),
			Modified: time.Now().UTC(), Meta: meta, Appendable: true, Segments: append(segs, nonEmpty(seg)...),
		}, nil
	})
	if err != nil {
		q.dropBlob(seg)
		return err
	}
	if d.size == 0 {
		q.dropBlob(seg)
	}
	hdr := q.w.Header()
	hdr.Set("ETag", quote(rec.ETag))
	hdr.Set("x-cos-next-append-position", strconv.FormatInt(rec.Size, 10))
	// The SDK checks this header against the hex MD5 of the chunk it sent,
	// despite the name.
	hdr.Set("x-cos-content-sha1", hex.EncodeToString(chunkMD5))
	hdr.Set("x-cos-hash-crc64ecma", strconv.FormatUint(rec.CRC64, 10))
	hdr.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
	return nil
}
