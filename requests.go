package cos

// The one-request primitives every operation is built from: a HEAD, a PUT,
// a ranged GET, a page of a listing, a DELETE. Each runs in d.do
// (retry.go), which bounds, retries and observes it; getRange is one
// attempt, which its callers run in d.do, reading the body there or not.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// putObject writes one object, the concatenation of content (sent from
// the caller's slices, never copied into one); meta adds x-cos-meta-*
// headers.
func (d *driver) putObject(ctx context.Context, key string, meta http.Header, content ...[]byte) error {
	b := body(content)
	size, crc := b.size(), b.crc()
	return d.do(ctx, "PutObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		opt := &cossdk.ObjectPutOptions{ObjectPutHeaderOptions: d.putHeaders(key, size)}
		if meta != nil {
			opt.XCosMetaXXX = &meta
		}
		d.metrics.bytesSent.Add(float64(size))
		resp, err := d.client.Object.Put(ctx, key, b.reader(), opt)
		if err != nil {
			return resp, err
		}
		return resp, checkWriteCRC(resp, crc, key)
	})
}

// body is a request body made of slices, which a retry sends again.
type body [][]byte

func (b body) size() int {
	n := 0
	for _, s := range b {
		n += len(s)
	}
	return n
}

// crc is the CRC64 of the whole body.
func (b body) crc() uint64 {
	var crc uint64
	for _, s := range b {
		crc = crcCombine(crc, crcOf(s), int64(len(s)))
	}
	return crc
}

func (b body) reader() io.Reader {
	readers := make([]io.Reader, len(b))
	for i, s := range b {
		readers[i] = bytes.NewReader(s)
	}
	return io.MultiReader(readers...)
}

// putHeaders are the headers of every object write of length bytes (-1:
// a multipart upload, whose length is not known yet) at key.
func (d *driver) putHeaders(key string, length int) *cossdk.ObjectPutHeaderOptions {
	h := &cossdk.ObjectPutHeaderOptions{
		ContentType:      "application/octet-stream",
		XCosStorageClass: d.storageClass(key, int64(length)),
		XOptionHeader:    d.encryptionHeader(),
	}
	if length >= 0 {
		h.ContentLength = int64(length)
	}
	return h
}

// encryptionHeader is the server-side-encryption headers of every object
// write (a PUT, an Initiate Multipart Upload, a copy), or nil with
// encryption off. Each call returns a new header, so no two requests share
// one.
func (d *driver) encryptionHeader() *http.Header {
	if !d.params.Encrypt {
		return nil
	}
	h := http.Header{}
	if d.params.KMSKeyID != "" {
		h.Set("x-cos-server-side-encryption", "cos/kms")
		h.Set("x-cos-server-side-encryption-cos-kms-key-id", d.params.KMSKeyID)
	} else {
		h.Set("x-cos-server-side-encryption", "AES256")
	}
	return &h
}

// objectHead is what a HEAD says of an object.
type objectHead struct {
	size       int64
	modTime    time.Time
	etag       string
	crc64      string
	uploadSize int64 // logical size when the object is an upload-state record, else -1
}

func (h objectHead) fileInfo(path string) storagedriver.FileInfo {
	size := h.size
	if h.uploadSize >= 0 {
		size = h.uploadSize
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: path, Size: size, ModTime: h.modTime}}
}

func headOf(header http.Header, contentLength int64) objectHead {
	h := objectHead{size: contentLength, etag: header.Get("ETag"), crc64: header.Get("x-cos-hash-crc64ecma"), uploadSize: -1}
	h.modTime, _ = http.ParseTime(header.Get("Last-Modified"))
	if v := header.Get(uploadStateMeta); v != "" {
		h.uploadSize, _ = strconv.ParseInt(v, 10, 64)
	}
	return h
}

func (d *driver) head(ctx context.Context, key string) (objectHead, error) {
	var h objectHead
	err := d.do(ctx, "HeadObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		resp, err := d.client.Object.Head(ctx, key, nil)
		if err == nil {
			h = headOf(resp.Header, resp.ContentLength)
		}
		return resp, err
	})
	return h, err
}

// headContent HEADs key, which must hold content (the source of a Move, an
// object read past its end): a key that is not there, or holds an
// upload-state record (an upload in progress has no content yet), is
// PathNotFound at path.
func (d *driver) headContent(ctx context.Context, key, path string) (objectHead, error) {
	h, err := d.head(ctx, key)
	if isNotFound(err) || (err == nil && h.uploadSize >= 0) {
		return h, storagedriver.PathNotFoundError{Path: path}
	}
	return h, err
}

// list lists a page of keys as the registry may see them: without the
// markers of Deletes in progress (delete.go).
func (d *driver) list(ctx context.Context, opt *cossdk.BucketGetOptions) (*cossdk.BucketGetResult, error) {
	res, err := d.listWithMarkers(ctx, opt)
	if err != nil {
		return nil, err
	}
	res.Contents = slices.DeleteFunc(res.Contents, func(o cossdk.Object) bool { return isDeleteMarker(o.Key) })
	return res, nil
}

// listWithMarkers lists a page of keys, markers included.
func (d *driver) listWithMarkers(ctx context.Context, opt *cossdk.BucketGetOptions) (*cossdk.BucketGetResult, error) {
	var res *cossdk.BucketGetResult
	err := d.do(ctx, "ListObjects", opt.Prefix, func(ctx context.Context) (*cossdk.Response, error) {
		var resp *cossdk.Response
		var err error
		res, resp, err = d.bucketClient.Bucket.Get(ctx, opt)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	// COS pages on NextMarker; an answer without one pages on its last entry.
	if res.IsTruncated && res.NextMarker == "" {
		last := ""
		if n := len(res.Contents); n > 0 {
			last = res.Contents[n-1].Key
		}
		if n := len(res.CommonPrefixes); n > 0 && res.CommonPrefixes[n-1] > last {
			last = res.CommonPrefixes[n-1]
		}
		res.NextMarker = last
	}
	return res, nil
}

// deleteObject removes one key; a missing key is not an error on COS.
func (d *driver) deleteObject(ctx context.Context, key string) error {
	return d.do(ctx, "DeleteObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Object.Delete(ctx, key)
	})
}

// byteRange is a range of an object's bytes to GET: [start, end), or, with
// suffix > 0, its last suffix bytes. COS ends a range at the object's end.
type byteRange struct {
	start, end int64
	suffix     int64
}

func (r byteRange) String() string {
	if r.suffix > 0 {
		return fmt.Sprintf("bytes=-%d", r.suffix)
	}
	return fmt.Sprintf("bytes=%d-%d", r.start, r.end-1)
}

// in is where r lies in an object of size bytes: its first and last byte.
func (r byteRange) in(size int64) (first, last int64) {
	if r.suffix > 0 {
		return max(size-r.suffix, 0), size - 1
	}
	return r.start, min(r.end, size) - 1
}

// getRange sends one GET of r of key; ifMatch, when set, pins the object's
// version. It checks that the answer is that range and returns it with its
// body unread, for the caller to read and close, and with what it says of
// the object: head (head.size is the object's size) and first, the offset
// of the body in the object. It is one attempt: callers run it in d.do.
func (d *driver) getRange(ctx context.Context, key string, r byteRange, ifMatch string) (resp *cossdk.Response, head objectHead, first int64, err error) {
	opt := &cossdk.ObjectGetOptions{Range: r.String()}
	if isBlobData(d.pathOf(key)) {
		// trafficlimit caps a blob download as it caps a redirected
		// client's; the registry's small reads (links, manifests' links,
		// upload-state records) are not downloads.
		opt.XCosTrafficLimit = int(d.params.TrafficLimit * 8)
	}
	if ifMatch != "" {
		opt.XOptionHeader = &http.Header{"If-Match": []string{ifMatch}}
	}
	resp, err = d.client.Object.Get(ctx, key, opt)
	if err != nil {
		return resp, head, 0, err
	}
	head = headOf(resp.Header, resp.ContentLength)
	if first, head.size, err = checkRange(resp.Response, r); err != nil {
		resp.Body.Close()
		return resp, head, 0, &localError{fmt.Errorf("cos: reading %s of %s: %w", r, key, err)}
	}
	return resp, head, first, nil
}

// checkRange checks that an answer to a GET of r is that range, ended at
// the object's end, and returns where its body starts in the object and
// the object's size: a known length (without it a dropped connection would
// pass for the end of the range) and a 206 whose Content-Range names the
// range. A 200 is the whole object, accepted only when r asks for all of
// it (a range from 0, or a suffix, reaching past its end). Anything else
// would hand out wrong bytes.
func checkRange(resp *http.Response, r byteRange) (first, size int64, err error) {
	if resp.ContentLength < 0 {
		return 0, 0, errors.New("COS sent no Content-Length")
	}
	if resp.StatusCode == http.StatusOK {
		if first, last := r.in(resp.ContentLength); first == 0 && last == resp.ContentLength-1 {
			return 0, resp.ContentLength, nil
		}
	}
	if resp.StatusCode != http.StatusPartialContent {
		return 0, 0, fmt.Errorf("COS answered %d to a ranged read, want 206", resp.StatusCode)
	}
	var last int64
	cr := resp.Header.Get("Content-Range")
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size); err != nil {
		return 0, 0, fmt.Errorf("COS answered Content-Range %q, want %s", cr, r)
	}
	if wantFirst, wantLast := r.in(size); first != wantFirst || last != wantLast || last-first+1 != resp.ContentLength {
		return 0, 0, fmt.Errorf("COS answered Content-Range %q with %d bytes, want %s", cr, resp.ContentLength, r)
	}
	return first, size, nil
}
