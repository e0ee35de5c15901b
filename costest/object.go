package costest

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Limits COS applies.
const (
	maxObjectSize    = 5 << 30 // single PUT, POST, copy and append: 5 GB (GiB, as the SDK checks)
	maxPartSize      = 5 << 30
	minPartSize      = 1 << 20 // every part but the last, checked at Complete
	maxPartNumber    = 10000
	maxKeyLength     = 850
	maxListEntries   = 1000
	maxDeleteObjects = 1000
	maxXMLBodySize   = 4 << 20 // Complete with 10000 parts fits comfortably
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
		// The default COS stores is [UNCONFIRMED]; this is the usual one.
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
			q.w.Header().Set(name, v)
		}
	}
}

// checkKey applies COS's key rules to a key being written.
func checkKey(key string) error {
	if len(key) > maxKeyLength {
		return newError(http.StatusBadRequest, "KeyTooLong", "Your key is too long.")
	}
	if key == "" || key[0] == '/' || key[0] == '\\' {
		return errInvalidArgument("The object key must not be empty or start with '/' or '\\'.")
	}
	return nil
}

// contentMD5 parses a Content-MD5 header; nil when absent.
func contentMD5(h http.Header) ([]byte, error) {
	v := h.Get("Content-MD5")
	if v == "" {
		return nil, nil
	}
	sum, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(sum) != md5.Size {
		return nil, newError(http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid.")
	}
	return sum, nil
}

func errBadDigest() error {
	return newError(http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
}

// receiveBlob streams the request body into a new blob, hashing it, and
// checks its length and Content-MD5. On success the blob is committed.
func (q *request) receiveBlob(limit int64) (segment, *digest, error) {
	wantMD5, err := contentMD5(q.r.Header)
	if err != nil {
		return segment{}, nil, err
	}
	if q.r.ContentLength > limit {
		return segment{}, nil, errEntityTooLarge()
	}
	bw, err := q.h.backend.CreateBlob()
	if err != nil {
		return segment{}, nil, err
	}
	d, err := copyHashed(bw, q.r.Body, limit)
	switch {
	case err != nil:
		err = newError(http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	case d.size > limit:
		err = errEntityTooLarge()
	case q.r.ContentLength >= 0 && d.size != q.r.ContentLength:
		err = newError(http.StatusBadRequest, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	case wantMD5 != nil && !bytes.Equal(wantMD5, d.md5Sum()):
		err = errBadDigest()
	}
	if err != nil {
		bw.Abort()
		return segment{}, nil, err
	}
	id, err := bw.Commit()
	if err != nil {
		return segment{}, nil, err
	}
	return segment{Blob: id, Size: d.size, HasSum: true, CRC64: d.crc, MD5: d.md5Hex()}, d, nil
}

// dropBlob removes a committed blob that no record took: the store refused
// the write it was received for.
func (q *request) dropBlob(seg segment) {
	if seg.Blob != "" {
		q.h.backend.RemoveBlob(seg.Blob)
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

func quote(etag string) string { return `"` + etag + `"` }

func unquote(etag string) string { return strings.Trim(strings.TrimSpace(etag), `"`) }

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
		hdr.Set(k, v)
	}
	if o.Meta.StorageClass != "" && o.Meta.StorageClass != "STANDARD" {
		hdr.Set("x-cos-storage-class", o.Meta.StorageClass)
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

// parseRange reads a single-range Range header against an object size.
// Multiple or malformed ranges are refused: COS documents a single range
// only and its answer to others is [UNCONFIRMED]. Positions are plain
// decimal digits (RFC 9110): a sign, as strconv would accept, is malformed.
func parseRange(v string, size int64) (first, last int64, err error) {
	malformed := errInvalidArgument("The Range header must be a single range of the form bytes=first-last.")
	spec, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, malformed
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, malformed
	}
	if a == "" {
		n, ok := parseDecimal(b)
		if !ok {
			return 0, 0, malformed
		}
		if n == 0 || size == 0 {
			return 0, 0, errInvalidRange(size)
		}
		return max(size-n, 0), size - 1, nil
	}
	first, ok = parseDecimal(a)
	if !ok {
		return 0, 0, malformed
	}
	last = size - 1
	if b != "" {
		last, ok = parseDecimal(b)
		if !ok || last < first {
			return 0, 0, malformed
		}
	}
	if first >= size {
		return 0, 0, errInvalidRange(size)
	}
	return first, min(last, size-1), nil
}

// parseDecimal reads a non-negative decimal integer made of digits only
// (no sign, no spaces), as byte positions are written.
func parseDecimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (q *request) getObject(head bool) error {
	o, release, err := q.h.store.openObject(q.bucket, q.key)
	if err != nil {
		return err
	}
	defer release()
	if err := checkConditions(q.r.Header, "", o); err != nil {
		q.setObjectHeaders(o)
		q.w.Header().Del("Content-Type")
		return err
	}
	first, last := int64(0), o.Size-1
	status := http.StatusOK
	if v := q.r.Header.Get("Range"); v != "" && !head {
		first, last, err = parseRange(v, o.Size)
		if err != nil {
			if ce, ok := err.(*cosError); ok && ce.status == http.StatusRequestedRangeNotSatisfiable {
				q.w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(o.Size, 10))
			}
			return err
		}
		status = http.StatusPartialContent
		q.w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+strconv.FormatInt(o.Size, 10))
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

// readXMLBody reads a small XML request body, checking Content-MD5.
func (q *request) readXMLBody(requireMD5 bool) ([]byte, error) {
	wantMD5, err := contentMD5(q.r.Header)
	if err != nil {
		return nil, err
	}
	if wantMD5 == nil && requireMD5 {
		// COS calls Content-MD5 required for POST; its answer when missing
		// is [UNCONFIRMED]. The SDK always sends it, so the stricter S3
		// answer is used.
		return nil, errInvalidRequest("Missing required header for this request: Content-MD5.")
	}
	body, err := io.ReadAll(io.LimitReader(q.r.Body, maxXMLBodySize+1))
	if err != nil {
		return nil, newError(http.StatusBadRequest, "IncompleteBody", "The request body could not be read.")
	}
	if len(body) > maxXMLBodySize {
		return nil, errMalformedXML()
	}
	if wantMD5 != nil {
		if sum := md5.Sum(body); !bytes.Equal(sum[:], wantMD5) {
			return nil, errBadDigest()
		}
	}
	return body, nil
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
	// More than 1000 keys: COS's answer is [UNCONFIRMED]; S3 answers
	// MalformedXML.
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

// decodeXMLDocument decodes a request body that must be exactly one XML
// document whose root element is named root. xml.Unmarshal alone would take
// any root element and ignore whatever follows it (a second element, text),
// which COS refuses as MalformedXML.
func decodeXMLDocument(body []byte, root string, v any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local != root {
				return fmt.Errorf("root element %s, want %s", tok.Name.Local, root)
			}
			if err := d.DecodeElement(v, &tok); err != nil {
				return err
			}
			return checkXMLEnd(d)
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return errors.New("text before the root element")
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
		}
	}
}

// checkXMLEnd accepts only white space, comments and processing
// instructions after the root element.
func checkXMLEnd(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.Comment, xml.ProcInst:
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) != 0 {
				return errors.New("text after the root element")
			}
		default:
			return errors.New("content after the root element")
		}
	}
}

// copyBuffered is io.Copy with a large pooled buffer; it still lets dst use
// its own ReadFrom (sendfile on a connection).
func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	return io.CopyBuffer(dst, src, *bp)
}
