package costest

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

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
// x-cos-copy-source-If-* conditions. Missing sources answer NoSuchKey (COS
// may use NoSuchCopySource [UNCONFIRMED]).
func (q *request) openCopySource() (*objectRecord, func(), error) {
	bucket, key, err := q.copySource()
	if err != nil {
		return nil, nil, err
	}
	src, release, err := q.h.store.openObject(bucket, key)
	if err != nil {
		return nil, nil, err
	}
	if err := checkConditions(q.r.Header, "x-cos-copy-source-", src); err != nil {
		release()
		return nil, nil, err
	}
	if src.Appendable {
		release()
		// Appendable objects cannot be copied; the exact code is
		// [UNCONFIRMED].
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

// sliceSegments returns the segments covering n bytes from offset off.
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
		out = append(out, segment{Blob: sg.Blob, Offset: sg.Offset + off, Size: k})
		n -= k
		off = 0
	}
	return out
}

// copySourceRange parses x-cos-copy-source-range, "bytes=first-last"
// (inclusive); absent means the whole object. A bad range answers 400
// InvalidArgument (COS's code is [UNCONFIRMED]).
func copySourceRange(v string, size int64) (first, n int64, err error) {
	if v == "" {
		return 0, size, nil
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(spec, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || first < 0 || last < first || last >= size {
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
	// The part shares the source's blobs; only its checksums need a read.
	d := newDigest()
	if err := q.h.streamSegments(d, src.Segments, first, n); err != nil {
		return err
	}
	p := &partRecord{Number: number, ETag: d.md5Hex(), Size: n, CRC64: d.crc, Modified: time.Now().UTC(), Segments: sliceSegments(src.Segments, first, n)}
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
