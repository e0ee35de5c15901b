package check

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/registry-cos/cos"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

var crcTable = crc64.MakeTable(crc64.ECMA)

func crcOf(b []byte) string { return strconv.FormatUint(crc64.Checksum(b, crcTable), 10) }

// prober holds one run's state.
type prober struct {
	d       *cos.Driver
	c       *cossdk.Client
	params  cos.Parameters
	opts    Options
	root    string // rootdirectory as a key prefix: "" or "registry/"
	scratch string // the run's own prefix, below root
	results []Result
	// tried records each CAM action's first outcome: true allowed, false denied.
	tried map[string]bool
}

func newProber(d *cos.Driver, p cos.Parameters, opts Options) *prober {
	root := strings.Trim(p.RootDirectory, "/")
	if root != "" {
		root += "/"
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: p.SkipVerify}, //nolint:gosec // as the driver is configured
		}}
	}
	return &prober{d: d, c: d.ProbeClient(), params: p, opts: opts, root: root,
		scratch: root + "registry-cos-check-" + hex.EncodeToString(id[:]) + "/", tried: map[string]bool{}}
}

func (pr *prober) add(r Result)           { pr.results = append(pr.results, r) }
func (pr *prober) ok(name, detail string) { pr.add(Result{Name: name, Status: OK, Detail: detail}) }
func (pr *prober) report() Report         { return Report{Results: pr.results} }
func (pr *prober) key(name string) string { return pr.scratch + name }
func (pr *prober) fail(name, expected, got string) {
	pr.add(Result{Name: name, Status: Fail, Expected: expected, Got: got})
}

// call sends one request for a CAM action and records whether it was allowed.
func (pr *prober) call(action string, fn func() (*cossdk.Response, error)) (*cossdk.Response, error) {
	resp, err := fn()
	if _, seen := pr.tried[action]; !seen || !pr.tried[action] {
		switch {
		case err == nil:
			pr.tried[action] = true
		case accessDenied(err):
			pr.tried[action] = false
		}
	}
	return resp, err
}

// failed reports a request's failure as the check's result.
func (pr *prober) failed(name, expected string, err error) {
	r := Result{Name: name, Status: Fail, Expected: expected, Got: describe(err)}
	if accessDenied(err) {
		r.Got = "403 AccessDenied"
	}
	pr.add(r)
}

func (pr *prober) where() {
	u := pr.c.BaseURL.BucketURL
	host := u.Host
	if pr.c.Host != "" {
		host += " (Host " + pr.c.Host + ")"
	}
	region := pr.params.Region
	if region == "" {
		region = "(from the endpoint)"
	}
	pr.ok("endpoint", fmt.Sprintf("%s://%s, bucket %s, region %s", u.Scheme, host, pr.params.Bucket, region))
	pr.ok("credentials", pr.d.CredentialSource())
}

func (pr *prober) reachable() bool {
	_, err := pr.call("name/cos:HeadBucket", func() (*cossdk.Response, error) { return pr.c.Bucket.Head(context.Background()) })
	if err != nil {
		pr.failed("bucket reachable", "HEAD Bucket 200", err)
		if accessDenied(err) {
			pr.results[len(pr.results)-1].Action = "name/cos:HeadBucket"
		}
		return false
	}
	pr.ok("bucket reachable", "HEAD Bucket 200")
	return true
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (pr *prober) put(ctx context.Context, key string, data []byte, opt *cossdk.ObjectPutOptions) (*cossdk.Response, error) {
	if opt == nil {
		opt = &cossdk.ObjectPutOptions{}
	}
	if opt.ObjectPutHeaderOptions == nil {
		opt.ObjectPutHeaderOptions = &cossdk.ObjectPutHeaderOptions{}
	}
	opt.ContentLength = int64(len(data))
	return pr.call("name/cos:PutObject", func() (*cossdk.Response, error) {
		return pr.c.Object.Put(ctx, key, bytes.NewReader(data), opt)
	})
}

// behaviour runs the checks of what the driver depends on.
func (pr *prober) behaviour(ctx context.Context) {
	data := randomBytes(64 << 10)
	key := pr.key("object")
	resp, err := pr.put(ctx, key, data, nil)
	if err != nil {
		pr.failed("PUT CRC64", "PUT Object 200", err)
		return
	}
	want := crcOf(data)
	pr.checkCRC("PUT CRC64", resp, want)

	resp, err = pr.call("name/cos:HeadObject", func() (*cossdk.Response, error) { return pr.c.Object.Head(ctx, key, nil) })
	if err != nil {
		pr.failed("HEAD CRC64", "HEAD Object 200", err)
	} else {
		pr.checkCRC("HEAD CRC64", resp, want)
		sum := md5.Sum(data)
		if etag := resp.Header.Get("ETag"); etag != `"`+hex.EncodeToString(sum[:])+`"` {
			pr.fail("ETag of a PUT", "the quoted MD5 of the content", etag)
		} else {
			pr.ok("ETag of a PUT", "quoted MD5")
		}
	}
	pr.readAfterWrite(ctx, key, data, want)
	defer func() {
		if _, err := pr.call("name/cos:DeleteObject", func() (*cossdk.Response, error) { return pr.c.Object.Delete(ctx, key) }); err != nil {
			pr.failed("DELETE Object", "DELETE Object 204", err)
		}
	}()
	pr.rangedReads(ctx, key, data)
	pr.presigned(ctx, key, data)
	pr.trafficLimit(ctx, key, data)
	pr.copyWithMetadata(ctx)
	pr.multipart(ctx)
	pr.uploadRecord(ctx)
	pr.listing(ctx)
	pr.quietDelete(ctx)
	if pr.params.StorageClass != "" {
		pr.storageClass(ctx)
	}
}

func (pr *prober) checkCRC(name string, resp *cossdk.Response, want string) {
	got := resp.Header.Get("x-cos-hash-crc64ecma")
	switch {
	case got == "":
		pr.fail(name, "x-cos-hash-crc64ecma "+want, "no x-cos-hash-crc64ecma header")
	case got != want:
		pr.fail(name, "x-cos-hash-crc64ecma "+want, got)
	default:
		pr.ok(name, "x-cos-hash-crc64ecma matches the content")
	}
}

func (pr *prober) readAfterWrite(ctx context.Context, key string, data []byte, want string) {
	resp, err := pr.call("name/cos:GetObject", func() (*cossdk.Response, error) { return pr.c.Object.Get(ctx, key, nil) })
	if err != nil {
		pr.failed("read after write", "GET Object 200 right after the PUT", err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, data) {
		pr.fail("read after write", fmt.Sprintf("the %d bytes just written", len(data)), fmt.Sprintf("%d other bytes (%v)", len(body), err))
		return
	}
	pr.ok("read after write", "GET returns what the PUT wrote")
	pr.checkCRC("GET CRC64", resp, want)
}

func (pr *prober) rangedReads(ctx context.Context, key string, data []byte) {
	resp, err := pr.call("name/cos:GetObject", func() (*cossdk.Response, error) {
		return pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: "bytes=10-19"})
	})
	if err != nil {
		pr.failed("ranged GET 206", "206 Partial Content", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantRange := fmt.Sprintf("bytes 10-19/%d", len(data))
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantRange || !bytes.Equal(body, data[10:20]) {
			pr.fail("ranged GET 206", "206 with Content-Range "+wantRange+" and those 10 bytes",
				fmt.Sprintf("%d with Content-Range %q and %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body)))
		} else {
			pr.ok("ranged GET 206", "206 and Content-Range "+wantRange)
		}
	}
	pr.rangePastTheEnd(ctx, key, data)
	_, err = pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: fmt.Sprintf("bytes=%d-", len(data)+10)})
	if status, code := statusOf(err); status != http.StatusRequestedRangeNotSatisfiable {
		got := "200"
		if err != nil {
			got = describe(err)
		}
		pr.fail("ranged GET 416", "416 InvalidRange for a range beyond the end", got)
	} else {
		pr.ok("ranged GET 416", "416 "+code+" beyond the end")
	}
}

// rangePastTheEnd checks what the reader's first GET relies on: a range
// that runs past the object's end is ended there (RFC 9110; COS's pages
// say nothing of it), so one GET of a chunk reads a smaller object whole
// and names its size. (The If-Match pinning of the reader's ranges is
// "ranged GET pinned by If-Match", record.go.)
func (pr *prober) rangePastTheEnd(ctx context.Context, key string, data []byte) {
	const name = "ranged GET past the end"
	resp, err := pr.call("name/cos:GetObject", func() (*cossdk.Response, error) {
		return pr.c.Object.Get(ctx, key, &cossdk.ObjectGetOptions{Range: fmt.Sprintf("bytes=10-%d", len(data)+100)})
	})
	if err != nil {
		pr.add(Result{Name: name, Status: Fail, Expected: "206 Partial Content", Got: describe(err), Assumption: true})
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRange := fmt.Sprintf("bytes 10-%d/%d", len(data)-1, len(data))
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantRange || !bytes.Equal(body, data[10:]) {
		pr.add(Result{Name: name, Status: Fail, Expected: "206 with Content-Range " + wantRange + " and the bytes from 10 to the end",
			Got: fmt.Sprintf("%d with Content-Range %q and %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(body)), Assumption: true})
	} else {
		pr.add(Result{Name: name, Status: OK, Detail: "ended at the object's end: " + wantRange, Assumption: true})
	}
}

func (pr *prober) presigned(ctx context.Context, key string, data []byte) {
	path := "/" + strings.TrimPrefix(key, pr.root)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		name := "presigned " + method
		req, _ := http.NewRequestWithContext(ctx, method, "http://registry.invalid"+path, nil)
		u, err := pr.d.RedirectURL(req, path)
		if err != nil || u == "" {
			pr.fail(name, "a presigned URL", fmt.Sprintf("%q, %v", u, err))
			continue
		}
		get, _ := http.NewRequestWithContext(ctx, method, u, nil)
		resp, err := pr.opts.HTTPClient.Do(get)
		if err != nil {
			pr.fail(name, "200 from plain HTTP", strings.ReplaceAll(err.Error(), u, "<presigned URL>"))
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ok := resp.StatusCode == http.StatusOK && resp.ContentLength == int64(len(data))
		if method == http.MethodGet {
			ok = ok && bytes.Equal(body, data)
		}
		if !ok {
			pr.fail(name, fmt.Sprintf("200 with the %d bytes", len(data)), fmt.Sprintf("%d with %d bytes", resp.StatusCode, len(body)))
			continue
		}
		pr.ok(name, "200 from plain HTTP, no SDK")
	}
}

func (pr *prober) copySource(key string) string {
	host := pr.c.BaseURL.BucketURL.Host
	if pr.params.Region != "" {
		host = pr.params.Bucket + ".cos." + pr.params.Region + ".myqcloud.com"
	}
	return host + "/" + key
}

func (pr *prober) copyWithMetadata(ctx context.Context) {
	src, dst := pr.key("meta-source"), pr.key("meta-copy")
	meta := http.Header{}
	meta.Set("x-cos-meta-registry-check", "42")
	if _, err := pr.put(ctx, src, []byte("metadata"), &cossdk.ObjectPutOptions{ObjectPutHeaderOptions: &cossdk.ObjectPutHeaderOptions{XCosMetaXXX: &meta}}); err != nil {
		pr.failed("copy with metadata", "PUT Object 200", err)
		return
	}
	_, err := pr.call("name/cos:PutObjectCopy", func() (*cossdk.Response, error) {
		_, resp, err := pr.c.Object.Copy(ctx, dst, pr.copySource(src), nil)
		return resp, err
	})
	if err != nil {
		pr.failed("copy with metadata", "PUT Object - Copy 200", err)
		return
	}
	resp, err := pr.c.Object.Head(ctx, dst, nil)
	if err != nil {
		pr.failed("copy with metadata", "HEAD of the copy 200", err)
		return
	}
	if got := resp.Header.Get("x-cos-meta-registry-check"); got != "42" {
		pr.fail("copy with metadata", "x-cos-meta-registry-check: 42 on the copy", fmt.Sprintf("%q", got))
		return
	}
	pr.checkCRC("copy CRC64", resp, crcOf([]byte("metadata")))
	pr.ok("copy with metadata", "metadata copied with the object")
}
