package costest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"hash/crc64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

func TestPutGetHeadDeleteObject(t *testing.T) {
	for _, backend := range []string{"memory", "disk"} {
		t.Run(backend, func(t *testing.T) {
			opts := Options{}
			if backend == "disk" {
				opts.Dir = t.TempDir()
			}
			srv := startServer(t, opts)
			c := newClient(t, srv)
			ctx := context.Background()
			data := randomBytes(3<<20+17, 1)
			key := "docker/registry/v2/a b+c(1)!*'~%.txt"
			resp := putBytes(t, c, key, data)
			sum := md5.Sum(data)
			if got, want := resp.Header.Get("ETag"), `"`+hex.EncodeToString(sum[:])+`"`; got != want {
				t.Errorf("PUT ETag = %s, want %s", got, want)
			}
			wantCRC := strconv.FormatUint(crc64.Checksum(data, crcTable), 10)
			if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != wantCRC {
				t.Errorf("PUT CRC = %s, want %s", got, wantCRC)
			}
			if resp.Header.Get("x-cos-request-id") == "" || resp.Header.Get("Server") != "tencent-cos" {
				t.Errorf("missing common headers: %v", resp.Header)
			}

			got, gresp := getBytes(t, c, key, nil)
			if !bytes.Equal(got, data) {
				t.Fatalf("GET returned %d bytes, different from the %d put", len(got), len(data))
			}
			if gresp.Header.Get("x-cos-hash-crc64ecma") != wantCRC || gresp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("GET headers = %v", gresp.Header)
			}

			part, presp := getBytes(t, c, key, &cos.ObjectGetOptions{Range: "bytes=1048570-2097160"})
			if presp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, data[1048570:2097161]) {
				t.Errorf("ranged GET: status %d, %d bytes", presp.StatusCode, len(part))
			}
			if cr := presp.Header.Get("Content-Range"); cr != "bytes 1048570-2097160/"+strconv.Itoa(len(data)) {
				t.Errorf("Content-Range = %q", cr)
			}
			if presp.Header.Get("x-cos-hash-crc64ecma") != wantCRC {
				t.Errorf("206 must carry the whole-object CRC")
			}
			tail, _ := getBytes(t, c, key, &cos.ObjectGetOptions{Range: "bytes=-5"})
			if !bytes.Equal(tail, data[len(data)-5:]) {
				t.Errorf("suffix range returned %q", tail)
			}
			_, err := c.Object.Get(ctx, key, &cos.ObjectGetOptions{Range: "bytes=" + strconv.Itoa(len(data)) + "-"})
			wantCode(t, err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)

			hresp, err := c.Object.Head(ctx, key, nil)
			if err != nil {
				t.Fatalf("HEAD: %v", err)
			}
			if hresp.ContentLength != int64(len(data)) || hresp.Header.Get("x-cos-hash-crc64ecma") != wantCRC {
				t.Errorf("HEAD: length %d, headers %v", hresp.ContentLength, hresp.Header)
			}

			if _, err := c.Object.Delete(ctx, key); err != nil {
				t.Fatalf("DELETE: %v", err)
			}
			_, err = c.Object.Get(ctx, key, nil)
			wantCode(t, err, "NoSuchKey", http.StatusNotFound)
			_, err = c.Object.Head(ctx, key, nil)
			wantCode(t, err, "", http.StatusNotFound)
			if resp, err := c.Object.Delete(ctx, key); err != nil || resp.StatusCode != http.StatusNoContent {
				t.Errorf("DELETE of a missing key: %v, want 204", err)
			}
		})
	}
}

func TestEmptyObject(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	putBytes(t, c, "empty", nil)
	got, resp := getBytes(t, c, "empty", nil)
	if len(got) != 0 || resp.Header.Get("x-cos-hash-crc64ecma") != "0" || resp.Header.Get("ETag") != `"d41d8cd98f00b204e9800998ecf8427e"` {
		t.Errorf("empty object: %d bytes, headers %v", len(got), resp.Header)
	}
	_, err := c.Object.Get(context.Background(), "empty", &cos.ObjectGetOptions{Range: "bytes=0-0"})
	wantCode(t, err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
}

func TestObjectMetadata(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	meta := http.Header{}
	meta.Set("x-cos-meta-digest", "sha256:abc")
	_, err := c.Object.Put(ctx, "m", strings.NewReader("hello"), &cos.ObjectPutOptions{ObjectPutHeaderOptions: &cos.ObjectPutHeaderOptions{
		ContentType: "text/plain", XCosMetaXXX: &meta, XCosStorageClass: "STANDARD_IA",
		XCosServerSideEncryption: "AES256", CacheControl: "no-cache",
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Object.Head(ctx, "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Content-Type": "text/plain", "X-Cos-Meta-Digest": "sha256:abc", "X-Cos-Storage-Class": "STANDARD_IA",
		"X-Cos-Server-Side-Encryption": "AES256", "Cache-Control": "no-cache", "X-Cos-Hash-Crc64ecma": "11177612005948864433",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("HEAD %s = %q, want %q", name, got, want)
		}
	}
}

func TestConditionalGet(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	resp := putBytes(t, c, "k", []byte("data"))
	etag := resp.Header.Get("ETag")
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		opt    *cos.ObjectGetOptions
		status int
	}{
		{"If-Match hit", withHeader("If-Match", etag), 200},
		{"If-Match miss", withHeader("If-Match", `"nope"`), 412},
		{"If-None-Match hit", withHeader("If-None-Match", etag), 304},
		{"If-None-Match miss", withHeader("If-None-Match", `"nope"`), 200},
		{"If-Modified-Since future", &cos.ObjectGetOptions{IfModifiedSince: future}, 304},
		{"If-Modified-Since past", &cos.ObjectGetOptions{IfModifiedSince: past}, 200},
		{"If-Unmodified-Since past", withHeader("If-Unmodified-Since", past), 412},
		{"If-Unmodified-Since future", withHeader("If-Unmodified-Since", future), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Object.Get(ctx, "k", tt.opt)
			status := 0
			if err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			} else {
				_, status = cosCode(err)
			}
			if status != tt.status {
				t.Errorf("status = %d (err %v), want %d", status, err, tt.status)
			}
		})
	}
}

func TestHeadBucketAndHostRouting(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	resp, err := c.Bucket.Head(ctx)
	if err != nil || resp.Header.Get("x-cos-bucket-region") != DefaultRegion {
		t.Fatalf("HEAD bucket: %v %v", err, resp)
	}
	// The same server reached under the bucket's real host name.
	c.Host = srv.BucketHost()
	putBytes(t, c, "via-host", []byte("x"))
	// A host naming an unknown bucket.
	other := newClient(t, srv)
	other.Host = "other-1250000000.cos." + DefaultRegion + ".myqcloud.com"
	_, err = other.Object.Get(ctx, "via-host", nil)
	wantCode(t, err, "NoSuchBucket", http.StatusNotFound)
	if _, err := other.Bucket.Put(ctx, nil); err != nil {
		t.Fatalf("PUT bucket: %v", err)
	}
	_, err = other.Bucket.Put(ctx, nil)
	wantCode(t, err, "BucketAlreadyOwnedByYou", http.StatusConflict)
	putBytes(t, other, "via-host", []byte("other"))
	got, _ := getBytes(t, c, "via-host", nil)
	if string(got) != "x" {
		t.Errorf("buckets are not separate: got %q", got)
	}
	// A COS host naming a region but no bucket routes no bucket or object
	// request (GET Service aside), as an IP or localhost does.
	for _, host := range []string{"cos-internal." + DefaultRegion + ".tencentcos.cn", "cos." + DefaultRegion + ".myqcloud.com", "service.cos.myqcloud.com"} {
		bare := newClient(t, srv)
		bare.Host = host
		_, err := bare.Bucket.Head(ctx)
		wantCode(t, err, "", http.StatusBadRequest)
		_, err = bare.Object.Get(ctx, "via-host", nil)
		wantCode(t, err, "InvalidURI", http.StatusBadRequest)
	}
}

func withHeader(name, value string) *cos.ObjectGetOptions {
	h := http.Header{}
	h.Set(name, value)
	return &cos.ObjectGetOptions{XOptionHeader: &h}
}

// TestRangeRFC9110 pins the answers to Range values COS documents nothing
// for: a syntactically invalid range (last before first, no digits, an
// unknown unit) is ignored and the whole object sent with 200, as RFC 9110
// §14.2 allows; a range that starts beyond the object is 416 InvalidRange
// (documented) with Content-Range "bytes */size".
func TestRangeRFC9110(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	data := []byte("0123456789")
	putBytes(t, c, "r", data)
	for _, v := range []string{"bytes=5-2", "bytes=x-3", "bytes=-", "items=0-1", "bytes=+1-2"} {
		got, resp := getBytes(t, c, "r", &cos.ObjectGetOptions{Range: v})
		if resp.StatusCode != http.StatusOK || string(got) != string(data) || resp.Header.Get("Content-Range") != "" {
			t.Errorf("Range %q: %d %q, Content-Range %q; want 200 and the whole object", v, resp.StatusCode, got, resp.Header.Get("Content-Range"))
		}
	}
	got, resp := getBytes(t, c, "r", &cos.ObjectGetOptions{Range: "bytes=2-4"})
	if resp.StatusCode != http.StatusPartialContent || string(got) != "234" {
		t.Errorf("bytes=2-4: %d %q", resp.StatusCode, got)
	}
	for _, v := range []string{"bytes=10-", "bytes=10-20", "bytes=-0"} {
		_, err := c.Object.Get(context.Background(), "r", &cos.ObjectGetOptions{Range: v})
		wantCode(t, err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
		var e *cos.ErrorResponse
		if errors.As(err, &e) && e.Response.Header.Get("Content-Range") != "bytes */10" {
			t.Errorf("Range %q: Content-Range %q", v, e.Response.Header.Get("Content-Range"))
		}
	}
}
