package costest

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// emptyMD5 is the MD5 of no bytes, the ETag of an empty part.
const emptyMD5 = "d41d8cd98f00b204e9800998ecf8427e"

func errInvalidCopySource() error {
	return newError(http.StatusBadRequest, "InvalidCopySource", "The copy source must be <bucket>.cos.<region>.myqcloud.com/<key>.")
}

// copySource parses x-cos-copy-source: "<bucket host>/<url-encoded key>",
// optionally followed by "?versionId=…" (versions are not kept, so it is
// ignored). A host that names no bucket (127.0.0.1:PORT, as the SDK sends
// with a local BucketURL) means the request's own bucket.
func (q *request) copySource() (bucket, key string, err error) {
	v := q.r.Header.Get("x-cos-copy-source")
	if strings.Contains(v, "://") {
		return "", "", errInvalidCopySource()
	}
	v, _, _ = strings.Cut(v, "?")
	host, rawKey, ok := strings.Cut(v, "/")
	if !ok || host == "" || rawKey == "" {
		return "", "", errInvalidCopySource()
	}
	key, perr := url.PathUnescape(rawKey)
	if perr != nil {
		return "", "", errInvalidCopySource()
	}
	bucket = q.bucket
	if b, region, named := bucketFromHost(host); named {
		rec, ok := q.h.store.bucket(b)
		if !ok || rec.Region != region {
			return "", "", errNoSuchBucket()
		}
		bucket = b
	}
	return bucket, key, nil
}

// openCopySource finds and pins the source of a copy and checks the
// x-cos-copy-source-If-* conditions. A missing source key answers 404
// NoSuchCopySource: COS's error code table lists it as "the copy source does
// not exist" (复制源不存在), next to NoSuchKey for a plain read; a missing
// source bucket stays NoSuchBucket.
func (q *request) openCopySource() (*objectRecord, func(), error) {
	bucket, key, err := q.copySource()
	if err != nil {
		return nil, nil, err
	}
	src, release, err := q.h.store.openObject(bucket, key)
	var ce *cosError
	if errors.As(err, &ce) && ce.code == "NoSuchKey" {
		return nil, nil, newError(http.StatusNotFound, "NoSuchCopySource", "The specified copy source does not exist.")
	}
	if err != nil {
		return nil, nil, err
	}
	ignore := q.h.misbehavior().IgnoreCopySourceIfMatch
	if err := checkConditions(withoutHeader(q.r.Header, "x-cos-copy-source-If-Match", ignore), "x-cos-copy-source-", src); err != nil {
		release()
		return nil, nil, err
	}
	if src.Appendable {
		release()
		// Appendable objects cannot be copied (APPEND Object page); the
		// code is [UNCONFIRMED]: no document, SDK or error table names
		// one, so the request is refused with InvalidRequest.
		return nil, nil, errInvalidRequest("An appendable object cannot be the source of a copy.")
	}
	return src, release, nil
}

type copyObjectResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	ETag         string   `xml:"ETag"`
	CRC64        string   `xml:"CRC64"`
	LastModified string   `xml:"LastModified"`
}

func (q *request) copyObject() error {
	if err := checkKey(q.key); err != nil {
		return err
	}
	directive := q.r.Header.Get("x-cos-metadata-directive")
	if directive == "" {
		directive = "Copy"
	}
	// COS spells it Replaced, not S3's REPLACE.
	if directive != "Copy" && directive != "Replaced" {
		return errInvalidArgument("x-cos-metadata-directive must be Copy or Replaced.")
	}
	src, release, err := q.openCopySource()
	if err != nil {
		return err
	}
	defer release()
	if src.Size > maxObjectSize {
		return errEntityTooLarge()
	}
	srcBucket, _, _ := q.copySource()
	if srcBucket == q.bucket && src.Key == q.key && directive == "Copy" {
		return errInvalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata.")
	}
	if q.injectCompleteError() {
		return nil
	}
	meta := src.Meta
	if directive == "Replaced" {
		meta = metaFromHeaders(q.r.Header)
	} else {
		// The destination keeps the source's metadata but not its storage
		// class or encryption, which come from this request.
		meta.Headers = map[string]string{}
		for k, v := range src.Meta.Headers {
			if !strings.HasPrefix(k, "X-Cos-Server-Side-Encryption") {
				meta.Headers[k] = v
			}
		}
		for _, name := range sseHeaders {
			if v := q.r.Header.Get(name); v != "" {
				meta.Headers[name] = v
			}
		}
	}
	meta.StorageClass = strings.ToUpper(q.r.Header.Get("x-cos-storage-class"))
	rec := &objectRecord{
		Key: q.key, Size: src.Size, ETag: src.ETag, CRC64: src.CRC64,
		Modified: time.Now().UTC(), Meta: meta, Segments: src.Segments,
	}
	if err := q.h.store.putObject(q.bucket, rec); err != nil {
		return err
	}
	q.w.Header().Set("x-cos-hash-crc64ecma", strconv.FormatUint(rec.CRC64, 10))
	q.echoSSE(meta)
	q.writeXML(copyObjectResult{
		ETag: quote(rec.ETag), CRC64: strconv.FormatUint(rec.CRC64, 10),
		LastModified: rec.Modified.Format("2006-01-02T15:04:05Z"),
	})
	return nil
}

type copyPartResult struct {
	XMLName      xml.Name `xml:"CopyPartResult"`
	ETag         string   `xml:"ETag"`
	CRC64        string   `xml:"CRC64"`
	LastModified string   `xml:"LastModified"`
}

// sliceSegments returns the segments covering n bytes from offset off. A
// segment taken whole keeps its checksums; a slice of one has none until
// sumSegments computes them.
func sliceSegments(segs []segment, off, n int64) []segment {
	var out []segment
	for _, sg := range segs {
		if n <= 0 {
			break
		}
		if off >= sg.Size {
			off -= sg.Size
			continue
		}
		k := min(sg.Size-off, n)
		if off == 0 && k == sg.Size {
			out = append(out, sg)
		} else {
			out = append(out, segment{Blob: sg.Blob, Offset: sg.Offset + off, Size: k})
		}
		n -= k
		off = 0
	}
	return out
}

// sumSegments gives every segment without checksums its CRC-64 and MD5,
// reading only those segments, and reports how many bytes it read.
func (h *Handler) sumSegments(segs []segment) (int64, error) {
	var read int64
	for i := range segs {
		sg := &segs[i]
		if sg.HasSum {
			continue
		}
		d := newDigest()
		if err := h.copyBlobRange(d, sg.Blob, sg.Offset, sg.Size); err != nil {
			return read, err
		}
		if d.size != sg.Size {
			return read, fmt.Errorf("costest: blob %s: read %d bytes of a %d-byte segment", sg.Blob, d.size, sg.Size)
		}
		read += sg.Size
		sg.HasSum, sg.CRC64, sg.MD5 = true, d.crc, d.md5Hex()
	}
	return read, nil
}

// segmentsCRC64 combines the CRC-64s of segments that all have checksums
// into the CRC-64 of their concatenation.
func segmentsCRC64(segs []segment) uint64 {
	var crc uint64
	for _, sg := range segs {
		crc = crc64Combine(crc, sg.CRC64, sg.Size)
	}
	return crc
}

// copiedPartETag is the ETag of a part made by Upload Part - Copy from
// segments with checksums. A part of one segment gets that segment's MD5,
// the MD5 of its bytes as for an uploaded part. A part of several segments
// gets an ETag derived from the segments' MD5s and sizes instead of the MD5
// of the whole range, which would need a read of all of it: COS documents
// that an ETag is not always the MD5 of the content, and Complete only
// compares the ETag a client sends with the one it was given. The derived
// ETag still depends only on content (the same bytes stored as the same
// pieces give the same ETag) and is 32 hex digits like an MD5, so the
// multipart ETag of Complete is computed as for any part.
func copiedPartETag(segs []segment) string {
	switch len(segs) {
	case 0:
		return emptyMD5
	case 1:
		return segs[0].MD5
	}
	m := md5.New()
	io.WriteString(m, "costest part copy\n")
	for _, sg := range segs {
		fmt.Fprintf(m, "%s %d\n", sg.MD5, sg.Size)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// copySourceRange parses x-cos-copy-source-range, "bytes=first-last"
// (inclusive, both positions plain digits); absent means the whole object. A
// bad range answers 400 InvalidArgument. COS's code is [UNCONFIRMED]: the
// Upload Part - Copy page names none, and the error table's candidates
// (InvalidArgument, "a request parameter is invalid"; InvalidRange, "the
// requested range is invalid", 416) both fit; unlike a GET's Range a copy
// range is not optional, so it is refused, never ignored.
func copySourceRange(v string, size int64) (first, n int64, err error) {
	if v == "" {
		return 0, size, nil
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	first, ok3 := parseDecimal(a)
	last, ok4 := parseDecimal(b)
	if !ok || !ok2 || !ok3 || !ok4 || last < first || last >= size {
		return 0, 0, errInvalidArgument("x-cos-copy-source-range must be bytes=first-last within the source object.")
	}
	return first, last - first + 1, nil
}

func (q *request) uploadPartCopy() error {
	number, err := q.partNumber()
	if err != nil {
		return err
	}
	id := q.query.Get("uploadId")
	if _, _, err := q.h.store.upload(q.bucket, q.key, id); err != nil {
		return err
	}
	if bucket, key, _ := q.copySource(); q.h.misbehavior().RefuseSelfPartCopy && bucket == q.bucket && key == q.key {
		return errInvalidRequest("costest: an Upload Part - Copy from the upload's own key is refused (RefuseSelfPartCopy).")
	}
	src, release, err := q.openCopySource()
	if err != nil {
		return err
	}
	defer release()
	first, n, err := copySourceRange(q.r.Header.Get("x-cos-copy-source-range"), src.Size)
	if err != nil {
		return err
	}
	if n > maxPartSize {
		return errEntityTooLarge()
	}
	if q.injectCompleteError() {
		return nil
	}
	// The part shares the source's blobs. Its CRC-64 combines those of the
	// segments it is made of, so only segments cut by the range (at most
	// the first and the last), or stored without checksums, are read.
	segs := sliceSegments(src.Segments, first, n)
	if _, err := q.h.sumSegments(segs); err != nil {
		return err
	}
	p := &partRecord{Number: number, ETag: copiedPartETag(segs), Size: n, CRC64: segmentsCRC64(segs), Modified: time.Now().UTC(), Segments: segs}
	if err := q.h.store.putPart(q.bucket, q.key, id, p); err != nil {
		return err
	}
	q.w.Header().Set("x-cos-hash-crc64ecma", strconv.FormatUint(p.CRC64, 10))
	q.writeXML(copyPartResult{
		ETag: quote(p.ETag), CRC64: strconv.FormatUint(p.CRC64, 10),
		LastModified: p.Modified.Format("2006-01-02T15:04:05"),
	})
	return nil
}
