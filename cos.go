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
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
// distribution's base package.
type Driver struct {
	baseEmbed
}

type baseEmbed struct {
	base.Base
}

// driver is the implementation behind Driver.
type driver struct {
	client     *cossdk.Client // API requests
	presign    *cossdk.Client // redirect URLs, signed for the host clients use
	params     Parameters
	root       string // rootdirectory without surrounding slashes
	bucketHost string // <bucket>.cos.<region>.myqcloud.com, or the endpoint host
	requests   chan struct{}
	buffers    *bufferPool
	metrics    *metrics
	// credentials sign every request (credentials.go).
	credentials credentialSource
}

// New builds a driver from typed parameters and checks once (HEAD Bucket)
// that the bucket exists and the credentials may use it.
func New(ctx context.Context, params Parameters) (*Driver, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	d, err := newDriver(ctx, params)
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
	logrus.WithField("driver", DriverName).Infof("using the credentials from %s", d.credentials.describe())
	return &Driver{baseEmbed{base.Base{StorageDriver: d}}}, nil
}

func newDriver(ctx context.Context, p Parameters) (*driver, error) {
	scheme := "https"
	if !p.Secure {
		scheme = "http"
	}
	d := &driver{
		params:   p,
		root:     strings.Trim(p.RootDirectory, "/"),
		requests: make(chan struct{}, p.MaxConcurrency),
		buffers:  newBufferPool(int(p.ChunkSize), int(p.MaxBufferMemory/p.ChunkSize), defaultMetrics.bufferBytes),
		metrics:  defaultMetrics,
	}
	var apiURL *url.URL
	host := "" // Host header override
	switch {
	case p.Endpoint != "":
		apiURL, _ = parseBaseURL("endpoint", p.Endpoint)
		apiURL.Path = ""
		if isLocalHost(apiURL.Hostname()) {
			// An IP or localhost endpoint does not name the bucket: send the
			// bucket's own host name so the configured bucket is addressed.
			host = fmt.Sprintf("%s.cos.%s.myqcloud.com", p.Bucket, p.Region)
		}
	case p.Accelerate:
		apiURL, _ = url.Parse(fmt.Sprintf("%s://%s.cos.accelerate.myqcloud.com", scheme, p.Bucket))
	default:
		apiURL, _ = url.Parse(fmt.Sprintf("%s://%s.cos.%s.myqcloud.com", scheme, p.Bucket, p.Region))
	}
	// Copies name their source by the bucket's canonical host.
	d.bucketHost = apiURL.Host
	if p.Region != "" {
		d.bucketHost = fmt.Sprintf("%s.cos.%s.myqcloud.com", p.Bucket, p.Region)
	}

	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4 * p.MaxConcurrency,
		MaxIdleConnsPerHost:   4 * p.MaxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// COS answers Complete and copies with keep-alive spaces once it
		// starts, so a long silence before the headers means trouble.
		ResponseHeaderTimeout: 5 * time.Minute,
		// Blobs are never stored compressed; do not let Go unzip anything.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: p.SkipVerify}, //nolint:gosec // opt-in skipverify
	}
	credentials, err := newCredentialSource(ctx, p)
	if err != nil {
		return nil, err
	}
	d.credentials = credentials
	signer := &signingTransport{source: credentials, base: transport}
	newClient := func(u *url.URL) *cossdk.Client {
		c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: u}, &http.Client{Transport: signer})
		// The driver retries with backoff itself (retry.go); one try per call here.
		c.Conf.RetryOpt.Count = 1
		c.Conf.EnableCRC = true
		c.UserAgent = strings.TrimSpace("registry-cos " + p.UserAgent)
		return c
	}
	d.client = newClient(apiURL)
	d.client.Host = host

	redirectURL := apiURL
	if p.RedirectEndpoint != "" {
		redirectURL, _ = parseBaseURL("redirectendpoint", p.RedirectEndpoint)
		redirectURL.Path = ""
	}
	d.presign = newClient(redirectURL)
	if p.RedirectEndpoint != "" || host != "" {
		d.presign.DisableURLCheck()
		d.client.DisableURLCheck()
	}
	return d, nil
}

// checkBucket turns the common start-up mistakes into one plain sentence.
func (d *driver) checkBucket(ctx context.Context) error {
	err := d.do(ctx, "HeadBucket", "", func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Bucket.Head(ctx)
	})
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("bucket %q", d.params.Bucket)
	if d.params.Region != "" {
		where += fmt.Sprintf(" in region %s", d.params.Region)
	}
	status := statusOf(err)
	if status == http.StatusNotFound {
		return fmt.Errorf("cos: %s does not exist: check the bucket name (\"name-appid\") and the region", where)
	}
	if status == http.StatusForbidden || status == http.StatusBadRequest {
		// HEAD answers carry no error code; a one-key listing says which.
		code := ""
		if _, _, lerr := d.client.Bucket.Get(ctx, &cossdk.BucketGetOptions{MaxKeys: 1}); lerr != nil {
			code = codeOf(lerr)
		}
		switch code {
		case "InvalidAccessKeyId":
			return fmt.Errorf("cos: access to %s denied: secretid is not a known SecretId (InvalidAccessKeyId)", where)
		case "SignatureDoesNotMatch":
			return fmt.Errorf("cos: access to %s denied: secretkey does not match secretid (SignatureDoesNotMatch)", where)
		case "ExpiredToken":
			return fmt.Errorf("cos: access to %s denied: the session token has expired (ExpiredToken)", where)
		case "RequestTimeTooSkewed":
			return fmt.Errorf("cos: access to %s denied: this machine's clock is more than 15 minutes off (RequestTimeTooSkewed)", where)
		}
		if status == http.StatusForbidden {
			return fmt.Errorf("cos: access to %s denied: check secretid, secretkey and that the key's CAM policy allows this bucket", where)
		}
	}
	var local *localError
	if errors.As(err, &local) {
		return local.err // such as credentials that could not be had
	}
	if statusOf(err) == 0 {
		return fmt.Errorf("cos: cannot reach %s at %s: %v", where, d.client.BaseURL.BucketURL, rootCause(err))
	}
	return fmt.Errorf("cos: checking %s failed: %v", where, rootCause(err))
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
	return d.putObject(ctx, d.key(path), content, nil)
}

// putObject writes one object; meta adds x-cos-meta-* headers.
func (d *driver) putObject(ctx context.Context, key string, content []byte, meta http.Header) error {
	return d.do(ctx, "PutObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		opt := &cossdk.ObjectPutOptions{ObjectPutHeaderOptions: d.putHeaders(len(content))}
		if meta != nil {
			opt.XCosMetaXXX = &meta
		}
		d.metrics.bytesSent.Add(float64(len(content)))
		return d.client.Object.Put(ctx, key, bytes.NewReader(content), opt)
	})
}

// putHeaders are the headers of every object write.
func (d *driver) putHeaders(length int) *cossdk.ObjectPutHeaderOptions {
	h := &cossdk.ObjectPutHeaderOptions{
		ContentType:      "application/octet-stream",
		XCosStorageClass: d.params.StorageClass,
	}
	if length >= 0 {
		h.ContentLength = int64(length)
	}
	d.encryption(func(name, value string) {
		if h.XOptionHeader == nil {
			h.XOptionHeader = &http.Header{}
		}
		h.XOptionHeader.Set(name, value)
	})
	return h
}

// encryption calls set for each server-side-encryption header.
func (d *driver) encryption(set func(name, value string)) {
	if !d.params.Encrypt {
		return
	}
	if d.params.KMSKeyID != "" {
		set("x-cos-server-side-encryption", "cos/kms")
		set("x-cos-server-side-encryption-cos-kms-key-id", d.params.KMSKeyID)
		return
	}
	set("x-cos-server-side-encryption", "AES256")
}

// Stat answers with one HEAD when path is an object, and adds a single
// one-key listing of "path/" only when it is not.
func (d *driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	key := d.key(path)
	if key != "" {
		head, err := d.head(ctx, key)
		if err == nil {
			return head.fileInfo(path), nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	res, err := d.list(ctx, &cossdk.BucketGetOptions{Prefix: d.dirPrefix(path), MaxKeys: 1})
	if err != nil {
		return nil, err
	}
	if len(res.Contents) == 0 && len(res.CommonPrefixes) == 0 {
		return nil, storagedriver.PathNotFoundError{Path: path}
	}
	return storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: path, IsDir: true}}, nil
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

func (d *driver) list(ctx context.Context, opt *cossdk.BucketGetOptions) (*cossdk.BucketGetResult, error) {
	var res *cossdk.BucketGetResult
	err := d.do(ctx, "ListObjects", opt.Prefix, func(ctx context.Context) (*cossdk.Response, error) {
		var resp *cossdk.Response
		var err error
		res, resp, err = d.client.Bucket.Get(ctx, opt)
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

// Move copies sourcePath to destPath on the server (in parallel parts above
// multipartcopythreshold), then deletes the source key.
func (d *driver) Move(ctx context.Context, sourcePath, destPath string) error {
	src, dst := d.key(sourcePath), d.key(destPath)
	head, err := d.head(ctx, src)
	if err != nil {
		if isNotFound(err) {
			return storagedriver.PathNotFoundError{Path: sourcePath}
		}
		return err
	}
	if head.uploadSize >= 0 {
		return storagedriver.PathNotFoundError{Path: sourcePath}
	}
	// Validate caps the threshold at COS's 5 GB single-copy limit.
	if head.size > d.params.MultipartCopyThreshold {
		err = d.multipartCopy(ctx, src, dst, head)
	} else {
		err = d.copyObject(ctx, src, dst, head)
	}
	if err != nil {
		return err
	}
	return d.deleteObject(ctx, src)
}

// copySource is the x-cos-copy-source value of key.
func (d *driver) copySource(key string) string {
	return d.bucketHost + "/" + key
}

func (d *driver) copyObject(ctx context.Context, src, dst string, head objectHead) error {
	var result *cossdk.ObjectCopyResult
	err := d.do(ctx, "CopyObject", dst, func(ctx context.Context) (*cossdk.Response, error) {
		h := &cossdk.ObjectCopyHeaderOptions{XCosStorageClass: d.params.StorageClass}
		d.encryption(func(name, value string) {
			if h.XOptionHeader == nil {
				h.XOptionHeader = &http.Header{}
			}
			h.XOptionHeader.Set(name, value)
		})
		var resp *cossdk.Response
		var err error
		result, resp, err = d.client.Object.Copy(ctx, dst, d.copySource(src), &cossdk.ObjectCopyOptions{ObjectCopyHeaderOptions: h})
		if err == nil && result != nil && result.CRC64 != "" && head.crc64 != "" && result.CRC64 != head.crc64 {
			return resp, fmt.Errorf("cos: copy of %s to %s: CRC64 %s does not match the source's %s", src, dst, result.CRC64, head.crc64)
		}
		return resp, err
	})
	return err
}

// deleteObject removes one key; a missing key is not an error on COS.
func (d *driver) deleteObject(ctx context.Context, key string) error {
	return d.do(ctx, "DeleteObject", key, func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Object.Delete(ctx, key)
	})
}

// Delete removes path and everything under "path/" (never a sibling such
// as "path-x"), in quiet batches of 1000, and aborts the multipart uploads
// under it so no parts are left behind. A tree is usually found with one
// listing: the key itself sorts first among the keys it prefixes.
func (d *driver) Delete(ctx context.Context, path string) error {
	key := d.key(path)
	var keys []string
	mayHoldUpload := false
	opt := &cossdk.BucketGetOptions{Prefix: key, MaxKeys: maxListKeys}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return err
		}
		for _, obj := range res.Contents {
			if obj.Key == key || strings.HasPrefix(obj.Key, key+"/") {
				keys = append(keys, obj.Key)
				mayHoldUpload = mayHoldUpload || isUploadRecordSize(obj.Size)
			}
		}
		if !res.IsTruncated {
			break
		}
		// Go on under "key/" only, skipping siblings such as "key-x/...".
		opt.Prefix = key + "/"
		opt.Marker = max(res.NextMarker, key+"/")
	}
	if len(keys) == 0 {
		return storagedriver.PathNotFoundError{Path: path}
	}
	if err := d.deleteKeys(ctx, keys); err != nil {
		return err
	}
	if !mayHoldUpload {
		return nil
	}
	return d.abortUploads(ctx, key)
}

func (d *driver) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), maxDeleteBatch)
		batch := make([]cossdk.Object, n)
		for i, k := range keys[:n] {
			batch[i] = cossdk.Object{Key: k}
		}
		keys = keys[n:]
		var result *cossdk.ObjectDeleteMultiResult
		err := d.do(ctx, "DeleteMultipleObjects", batch[0].Key, func(ctx context.Context) (*cossdk.Response, error) {
			var resp *cossdk.Response
			var err error
			result, resp, err = d.client.Object.DeleteMulti(ctx, &cossdk.ObjectDeleteMultiOptions{Quiet: true, Objects: batch})
			return resp, err
		})
		if err != nil {
			return err
		}
		if len(result.Errors) > 0 {
			errs := storagedriver.Errors{DriverName: DriverName}
			for _, e := range result.Errors {
				errs.Errs = append(errs.Errs, fmt.Errorf("delete %s: %s: %s", e.Key, e.Code, e.Message))
			}
			return errs
		}
	}
	return nil
}

// abortUploads aborts the in-progress multipart uploads of key and of every
// key under "key/".
func (d *driver) abortUploads(ctx context.Context, key string) error {
	opt := &cossdk.ObjectListUploadsOptions{Prefix: key, MaxUploads: maxListKeys}
	for {
		var res *cossdk.ObjectListUploadsResult
		err := d.do(ctx, "ListMultipartUploads", key, func(ctx context.Context) (*cossdk.Response, error) {
			var resp *cossdk.Response
			var err error
			res, resp, err = d.client.Object.ListUploads(ctx, opt)
			return resp, err
		})
		if err != nil {
			return err
		}
		for _, u := range res.Upload {
			if u.Key == key || key == "" || strings.HasPrefix(u.Key, key+"/") {
				if err := d.abort(ctx, u.Key, u.UploadID); err != nil {
					return err
				}
			}
		}
		if !res.IsTruncated || res.NextKeyMarker == "" {
			return nil
		}
		opt.KeyMarker, opt.UploadIdMarker = res.NextKeyMarker, res.NextUploadIdMarker
	}
}

func (d *driver) abort(ctx context.Context, key, uploadID string) error {
	err := d.do(ctx, "AbortMultipartUpload", key, func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Object.AbortMultipartUpload(ctx, key, uploadID)
	})
	if statusOf(err) == http.StatusNotFound { // already gone
		return nil
	}
	return err
}

// RedirectURL returns a presigned GET or HEAD URL valid for redirectexpiry,
// signed for the host the client will use. Other methods get "".
func (d *driver) RedirectURL(r *http.Request, path string) (string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", nil
	}
	u, err := d.presign.Object.GetPresignedURL2(r.Context(), r.Method, d.key(path), d.params.RedirectExpiry, nil)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// rootCause strips the SDK's retry wrapper for messages.
func rootCause(err error) error {
	var e *cossdk.ErrorResponse
	if errors.As(err, &e) {
		return e
	}
	return err
}

// Client returns the COS SDK client the driver sends its requests with,
// for what the driver does not wrap (bucket policies, lifecycle rules).
func (d *Driver) Client() *cossdk.Client {
	return d.Base.StorageDriver.(*driver).client
}
