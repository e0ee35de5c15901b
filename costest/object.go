package costest

import (
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// storedHeaders are the request headers an object keeps and returns on GET
// and HEAD, besides x-cos-meta-*.
var storedHeaders = []string{
	"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires",
	"X-Cos-Server-Side-Encryption", "X-Cos-Server-Side-Encryption-Cos-Kms-Key-Id",
	"X-Cos-Server-Side-Encryption-Context", "X-Cos-Server-Side-Encryption-Customer-Algorithm",
	"X-Cos-Server-Side-Encryption-Customer-Key-Md5",
}

// sseHeaders are echoed in the answer to a write.
var sseHeaders = []string{
	"X-Cos-Server-Side-Encryption", "X-Cos-Server-Side-Encryption-Cos-Kms-Key-Id",
	"X-Cos-Server-Side-Encryption-Customer-Algorithm", "X-Cos-Server-Side-Encryption-Customer-Key-Md5",
}

// metaFromHeaders collects what a write stores with the object.
func metaFromHeaders(h http.Header) objectMeta {
	m := objectMeta{ContentType: h.Get("Content-Type"), StorageClass: strings.ToUpper(h.Get("x-cos-storage-class")), Headers: map[string]string{}}
	if m.ContentType == "" {
		// The default COS stores is [UNCONFIRMED]: the PUT Object page
		// does not say, and the Node.js SDK never leaves it to the server
		// (it sends application/octet-stream itself when it cannot guess
		// a type), so this is what its users see.
		m.ContentType = "application/octet-stream"
	}
	for _, name := range storedHeaders {
		if v := h.Get(name); v != "" {
			m.Headers[name] = v
		}
	}
	for name, vs := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-cos-meta-") && len(vs) > 0 {
			m.Headers[http.CanonicalHeaderKey(name)] = vs[0]
		}
	}
	return m
}

// echoSSE repeats the encryption headers of a write in its answer.
func (q *request) echoSSE(m objectMeta) {
	for _, name := range sseHeaders {
		if v := m.Headers[name]; v != "" {
			q.w.Header().Set(q.wireName(name), v)
		}
	}
}

func (q *request) putObject() error {
	if err := checkKey(q.key); err != nil {
		return err
	}
	meta := metaFromHeaders(q.r.Header)
	seg, d, err := q.receiveBlob(maxObjectSize)
	if err != nil {
		return err
	}
	rec := &objectRecord{
		Key: q.key, Size: d.size, ETag: d.md5Hex(), CRC64: d.crc,
		Modified: time.Now().UTC(), Meta: meta, Segments: nonEmpty(seg),
	}
	if err := q.h.store.putObject(q.bucket, rec); err != nil {
		q.dropBlob(seg)
		return err
	}
	q.dropUnused(seg, rec.Segments)
	hdr := q.w.Header()
	hdr.Set("ETag", quote(rec.ETag))
	hdr.Set("x-cos-hash-crc64ecma", strconv.FormatUint(rec.CRC64, 10))
	q.echoSSE(meta)
	hdr.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// nonEmpty drops the segment of an empty body: an empty object has no data.
func nonEmpty(seg segment) []segment {
	if seg.Size == 0 {
		return nil
	}
	return []segment{seg}
}

// dropUnused removes a committed blob that ended up in no record (an empty
// body).
func (q *request) dropUnused(seg segment, used []segment) {
	if len(used) == 0 {
		q.dropBlob(seg)
	}
}

// etagMatches implements If-Match / If-None-Match lists.
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == "*" || unquote(part) == etag {
			return true
		}
	}
	return false
}

// checkConditions applies If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since (prefix "" for GET/HEAD, "x-cos-copy-source-" for copies,
// where a failed If-None-Match/If-Modified-Since is also 412).
func checkConditions(h http.Header, prefix string, o *objectRecord) error {
	modified := o.Modified.Truncate(time.Second)
	notModified := &cosError{status: http.StatusNotModified, code: "NotModified", message: "Not Modified"}
	if prefix != "" {
		notModified = errPreconditionFailed()
	}
	if v := h.Get(prefix + "If-Match"); v != "" {
		if !etagMatches(v, o.ETag) {
			return errPreconditionFailed()
		}
	} else if v := h.Get(prefix + "If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && modified.After(t) {
			return errPreconditionFailed()
		}
	}
	if v := h.Get(prefix + "If-None-Match"); v != "" {
		if etagMatches(v, o.ETag) {
			return notModified
		}
	} else if v := h.Get(prefix + "If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !modified.After(t) {
			return notModified
		}
	}
	return nil
}

// setObjectHeaders sends an object's metadata.
func (q *request) setObjectHeaders(o *objectRecord) {
	hdr := q.w.Header()
	hdr.Set("Content-Type", o.Meta.ContentType)
	hdr.Set("ETag", quote(o.ETag))
	hdr.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("x-cos-hash-crc64ecma", strconv.FormatUint(o.CRC64, 10))
	for k, v := range o.Meta.Headers {
		hdr.Set(q.wireName(k), v)
	}
	if o.Meta.StorageClass != "" && o.Meta.StorageClass != "STANDARD" {
		hdr.Set(q.wireName("X-Cos-Storage-Class"), o.Meta.StorageClass)
	}
	if o.Appendable {
		hdr.Set("x-cos-object-type", "appendable")
	}
	for param, header := range map[string]string{
		"response-content-type": "Content-Type", "response-content-language": "Content-Language",
		"response-expires": "Expires", "response-cache-control": "Cache-Control",
		"response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
	} {
		if v := q.query.Get(param); v != "" {
			hdr.Set(header, v)
		}
	}
}

func errInvalidRange(size int64) error {
	return newError(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable.")
}

// parseRange reads a Range header against an object size; ranged is false
// when the header is to be ignored and the whole object sent (200).
//
// The GET Object API page says only that the value is bytes=first-last, a
// single range (multiple ranges are not supported), and that a first
// position beyond the object answers 416; it says nothing of a value that
// is not a range. RFC 9110 §14.2 lets a server ignore a ranges-specifier it
// cannot parse and requires ignoring an unknown range unit, so a malformed
// value (last before first, a sign or other non-digit in a position, no
// position at all, a unit other than bytes) is ignored. A list of ranges is
// syntactically valid but unsupported: it answers 400 InvalidArgument, the
// stricter choice, as COS's answer to it is [UNCONFIRMED]. Positions are
// plain decimal digits (RFC 9110): a sign, as strconv would accept, is
// malformed.
func parseRange(v string, size int64) (first, last int64, ranged bool, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !ok {
		return 0, 0, false, nil
	}
	if strings.Contains(spec, ",") {
		return 0, 0, false, errInvalidArgument("The Range header must be a single range of the form bytes=first-last.")
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false, nil
	}
	if a == "" {
		n, ok := parseDecimal(b)
		if !ok {
			return 0, 0, false, nil
		}
		// A suffix of zero bytes, or any suffix of an empty object, selects
		// nothing: unsatisfiable (RFC 9110 §14.1.3).
		if n == 0 || size == 0 {
			return 0, 0, false, errInvalidRange(size)
		}
		return max(size-n, 0), size - 1, true, nil
	}
	first, ok = parseDecimal(a)
	if !ok {
		return 0, 0, false, nil
	}
	last = size - 1
	if b != "" {
		last, ok = parseDecimal(b)
		if !ok || last < first {
			return 0, 0, false, nil
		}
	}
	if first >= size {
		return 0, 0, false, errInvalidRange(size)
	}
	return first, min(last, size-1), true, nil
}

// withoutHeader is h without the header name when drop is set (for the
// misbehaviors that ignore a condition).
func withoutHeader(h http.Header, name string, drop bool) http.Header {
	if !drop {
		return h
	}
	h = h.Clone()
	h.Del(name)
	return h
}

// longSuffix reports a suffix range (bytes=-N) longer than size
// (RefuseLongSuffixRange).
func longSuffix(v string, size int64) bool {
	spec, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes=-")
	n, digits := parseDecimal(spec)
	return ok && digits && n > size
}

func (q *request) getObject(head bool) error {
	if !head {
		if err := q.applyTrafficLimit(); err != nil {
			return err
		}
	}
	o, release, err := q.h.store.openObject(q.bucket, q.key)
	if err != nil {
		return err
	}
	defer release()
	mb := q.h.misbehavior()
	if err := checkConditions(withoutHeader(q.r.Header, "If-Match", mb.IgnoreIfMatch), "", o); err != nil {
		q.setObjectHeaders(o)
		q.w.Header().Del("Content-Type")
		return err
	}
	first, last := int64(0), o.Size-1
	status := http.StatusOK
	if v := q.r.Header.Get("Range"); v != "" && !head {
		rFirst, rLast, ranged, err := parseRange(v, o.Size)
		if mb.RefuseLongSuffixRange && longSuffix(v, o.Size) {
			err = errInvalidRange(o.Size)
		}
		if err != nil {
			if ce, ok := err.(*cosError); ok && ce.status == http.StatusRequestedRangeNotSatisfiable {
				q.w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(o.Size, 10))
			}
			return err
		}
		if ranged {
			first, last = rFirst, rLast
			status = http.StatusPartialContent
			q.w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+strconv.FormatInt(o.Size, 10))
		}
	}
	if !head {
		if err := q.h.checkReadable(o.Segments, first, last-first+1); err != nil {
			return err
		}
	}
	q.setObjectHeaders(o)
	q.w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
	q.w.WriteHeader(status)
	if head || last < first {
		return nil
	}
	q.h.streamSegments(q.w, o.Segments, first, last-first+1)
	return nil
}

// rangeWriter is implemented by blobs that can write a range without an
// intermediate copy (memory blobs).
type rangeWriter interface {
	writeRange(w io.Writer, off, n int64) error
}

// streamSegments writes n bytes of the concatenated segments from offset
// off. Write errors mean the client went away; they end the stream.
func (h *Handler) streamSegments(w io.Writer, segs []segment, off, n int64) error {
	for _, sg := range segs {
		if n <= 0 {
			break
		}
		if off >= sg.Size {
			off -= sg.Size
			continue
		}
		k := min(sg.Size-off, n)
		if err := h.copyBlobRange(w, sg.Blob, sg.Offset+off, k); err != nil {
			return err
		}
		n -= k
		off = 0
	}
	return nil
}

func (h *Handler) copyBlobRange(w io.Writer, id string, off, n int64) error {
	br, err := h.backend.OpenBlob(id)
	if err != nil {
		return err
	}
	defer br.Close()
	switch b := br.(type) {
	case rangeWriter:
		return b.writeRange(w, off, n)
	case *os.File:
		// A plain *os.File inside a LimitedReader lets the connection use
		// sendfile.
		if _, err := b.Seek(off, io.SeekStart); err != nil {
			return err
		}
		_, err = copyBuffered(w, io.LimitReader(b, n))
		return err
	default:
		_, err = copyBuffered(w, io.NewSectionReader(br, off, n))
		return err
	}
}

func (q *request) deleteObject() error {
	if err := q.h.store.deleteObject(q.bucket, q.key); err != nil {
		return err
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

type deleteRequest struct {
	Quiet   bool `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

type deletedEntry struct {
	Key string `xml:"Key"`
}

type deleteErrorEntry struct {
	Key     string `xml:"Key"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

type deleteResult struct {
	XMLName xml.Name           `xml:"DeleteResult"`
	Deleted []deletedEntry     `xml:"Deleted"`
	Errors  []deleteErrorEntry `xml:"Error"`
}

func (q *request) deleteMultiple() error {
	body, err := q.readXMLBody(true)
	if err != nil {
		return err
	}
	var req deleteRequest
	if err := decodeXMLDocument(body, "Delete", &req); err != nil || len(req.Objects) == 0 {
		return errMalformedXML()
	}
	// More than 1000 keys (the DELETE Multiple Objects page's limit):
	// COS's answer is [UNCONFIRMED]; neither SDK splits or checks a
	// request, and the error table has no specific code, so S3's
	// MalformedXML is used.
	if len(req.Objects) > maxDeleteObjects {
		return errMalformedXML()
	}
	res := deleteResult{}
	for _, obj := range req.Objects {
		if obj.Key == "" || len(obj.Key) > maxKeyLength {
			res.Errors = append(res.Errors, deleteErrorEntry{Key: obj.Key, Code: "InvalidArgument", Message: "The key is empty or too long."})
			continue
		}
		if err := q.h.store.deleteObject(q.bucket, obj.Key); err != nil {
			res.Errors = append(res.Errors, deleteErrorEntry{Key: obj.Key, Code: "InternalError", Message: err.Error()})
			continue
		}
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deletedEntry{Key: obj.Key})
		}
	}
	q.writeXML(res)
	return nil
}

// copyBuffered is io.Copy with a large pooled buffer; it still lets dst use
// its own ReadFrom (sendfile on a connection).
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}
