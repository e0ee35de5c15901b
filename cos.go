// Package cos is a Tencent Cloud COS (Cloud Object Storage) storage driver
// for the CNCF Distribution container registry (v3).
//
// Blank-import it in a registry build to make `storage: cos:` available, or
// call New to use the driver as a library. The costest package is a COS
// emulator to run and test it without a cloud account.
package cos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/base"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/sirupsen/logrus"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// DriverName is the name the driver registers under: `storage: cos:`.
const DriverName = "cos"

var registerOnce sync.Once

func init() { Register() }

// Register registers the driver factory under DriverName. init calls it;
// calling it again is a no-op.
func Register() {
	registerOnce.Do(func() { factory.Register(DriverName, &driverFactory{}) })
}

type driverFactory struct{}

func (driverFactory) Create(ctx context.Context, parameters map[string]any) (storagedriver.StorageDriver, error) {
	return FromParameters(ctx, parameters)
}

// Driver is the COS storage driver. It implements
// storagedriver.StorageDriver; path checks, tracing and metrics come from
// distribution's base package, whose embedded Base carries the storage
// methods (so go doc does not list them here): GetContent, PutContent,
// Reader, Writer, Stat, List, Move, Delete, RedirectURL and Walk, each
// documented on storagedriver.StorageDriver. Wait is the driver's own.
type Driver struct {
	baseEmbed
}

type baseEmbed struct {
	base.Base
}

// driver is the implementation behind Driver.
type driver struct {
	client *cossdk.Client // object requests
	// bucketClient sends bucket-level requests (listings, multi-delete,
	// upload listings, HEAD Bucket): client, but for acceleration.
	bucketClient *cossdk.Client
	presign      *cossdk.Client // redirect URLs, signed for the host clients use
	// presignInternal signs the redirects of clients in internalcidrs,
	// for the bucket's private-network host (nil without internalcidrs).
	presignInternal *cossdk.Client
	params          Parameters
	root            string       // rootdirectory without surrounding slashes
	endpoints       endpoints    // where requests go (client.go)
	httpClient      *http.Client // signs every request
	requests        chan struct{}
	buffers         *bufferPool
	metrics         *metrics
	// credentials sign every request (credentials.go).
	credentials credentialSource
	// heads are the answers of recent Stats, for the Move after (move.go).
	heads *headMemo
	// maxParts, when not 0, lowers COS's part-count limit: tests set it
	// with the emulator's (partsizes.go).
	maxParts int
	// background runs what Deletes leave running (background.go).
	background *backgroundWork
}

// Format prints the driver as its parameters with the secrets left out.
// fmt reads unexported fields by reflection, without their own String
// methods, so without this %+v of a driver would print params.SecretKey
// and the credential source's keys.
func (d driver) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "cos.driver{%s}", d.params)
}

// New builds a driver from typed parameters and checks once (HEAD Bucket)
// that the bucket exists and the credentials may use it. It logs nothing
// above debug but the skipverify warning.
func New(ctx context.Context, params Parameters) (*Driver, error) {
	params, endpoints, err := params.validated()
	if err != nil {
		return nil, err
	}
	d, err := newDriver(ctx, params, endpoints)
	if err != nil {
		return nil, err
	}
	if params.SkipVerify {
		logrus.WithField("driver", DriverName).Warn("skipverify is set: TLS certificates of COS are not checked")
	}
	if err := d.checkBucket(ctx); err != nil {
		var credErr *credentialError
		if !errors.As(err, &credErr) {
			err = fmt.Errorf("%w (credentials from %s)", err, d.credentials.describe())
		}
		return nil, err
	}
	// A library caller's standard error stays quiet; the registry's
	// FromParameters says it at info.
	logrus.WithField("driver", DriverName).Debugf("using the credentials from %s", d.credentials.describe())
	return &Driver{baseEmbed{base.Base{StorageDriver: d}}}, nil
}

// Name returns the driver name.
func (d *driver) Name() string { return DriverName }

// key maps a registry path to its COS object key.
func (d *driver) key(path string) string {
	if d.root == "" {
		return strings.TrimPrefix(path, "/")
	}
	if path == "/" {
		return d.root
	}
	return d.root + path
}

// dirPrefix is the listing prefix of the directory at path.
func (d *driver) dirPrefix(path string) string {
	k := d.key(path)
	if k == "" {
		return ""
	}
	return k + "/"
}

// pathOf maps an object key back to its registry path.
func (d *driver) pathOf(key string) string {
	if d.root == "" {
		return "/" + key
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(key, d.root), "/")
}

// GetContent returns the content of the object at path.
func (d *driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	r, err := d.Reader(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// PutContent stores content at path with one PUT.
func (d *driver) PutContent(ctx context.Context, path string, content []byte) error {
	return d.putObject(ctx, d.key(path), nil, content)
}

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

// Stat answers with one HEAD when path is an object, and adds a single
// one-key listing of "path/" only when it is not.
func (d *driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	key := d.key(path)
	if key != "" {
		head, err := d.head(ctx, key)
		if err == nil {
			d.heads.put(key, head)
			return head.fileInfo(path), nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	opt := &cossdk.BucketGetOptions{Prefix: d.dirPrefix(path), MaxKeys: 1}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return nil, err
		}
		if len(res.Contents) > 0 || len(res.CommonPrefixes) > 0 {
			return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: path, IsDir: true}}, nil
		}
		if !res.IsTruncated {
			return nil, storagedriver.PathNotFoundError{Path: path}
		}
		opt.Marker = res.NextMarker // the one key listed was a Delete's marker
	}
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

// List returns the direct children of path, paging through a delimiter listing.
func (d *driver) List(ctx context.Context, path string) ([]string, error) {
	prefix := d.dirPrefix(path)
	var children []string
	opt := &cossdk.BucketGetOptions{Prefix: prefix, Delimiter: "/", MaxKeys: maxListKeys}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return nil, err
		}
		for _, obj := range res.Contents {
			if obj.Key != prefix { // a "dir/" marker key is not a child
				children = append(children, d.pathOf(obj.Key))
			}
		}
		for _, p := range res.CommonPrefixes {
			children = append(children, d.pathOf(strings.TrimSuffix(p, "/")))
		}
		if !res.IsTruncated {
			break
		}
		opt.Marker = res.NextMarker
	}
	if len(children) == 0 && path != "/" {
		return nil, storagedriver.PathNotFoundError{Path: path}
	}
	return children, nil
}

// deleteObject removes one key; a missing key is not an error on COS.
func (d *driver) deleteObject(ctx context.Context, key string) error {
	return d.do(ctx, "DeleteObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Object.Delete(ctx, key)
	})
}

// Client returns the COS SDK client the driver sends its requests with,
// for what the driver does not wrap (bucket policies, lifecycle rules).
func (d *Driver) Client() *cossdk.Client {
	return d.Base.StorageDriver.(*driver).client
}

// FromParameters builds a driver from the registry's configuration map,
// and logs (info) which credentials it uses; New logs that at debug only.
func FromParameters(ctx context.Context, parameters map[string]any) (*Driver, error) {
	p, err := ParseParameters(parameters)
	if err != nil {
		return nil, err
	}
	d, err := New(ctx, p)
	if err != nil {
		return nil, err
	}
	logrus.WithField("driver", DriverName).Infof("using the credentials from %s", d.Base.StorageDriver.(*driver).credentials.describe())
	return d, nil
}
