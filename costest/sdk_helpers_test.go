package costest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// The tests in this file drive the Go SDK's high-level helpers (Upload,
// Download, MultiCopy, the presigned URL forms) against the emulator, as an
// application would: each helper combines several COS operations and checks
// their answers (ETags, CRC-64, listings) itself.

const mib = 1 << 20

// writeTemp writes data to a file of the test's temporary directory.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSDKUploadResumesFromCheckpoint uploads a file with Object.Upload and
// CheckPoint: the SDK finds an interrupted upload of the key (List
// Multipart Uploads), checks the parts already there (List Parts, their
// ETags against the file's MD5s) and sends only the missing ones. A part
// whose content differs makes it start a new upload instead.
func TestSDKUploadResumesFromCheckpoint(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	ctx := context.Background()
	data := randomBytes(3*mib+mib/2, 1) // four 1 MiB parts, the last half-full
	path := writeTemp(t, "upload.bin", data)
	opt := &cos.MultiUploadOptions{PartSize: 1, ThreadPoolSize: 2, CheckPoint: true}

	// Fresh upload.
	if _, _, err := c.Object.Upload(ctx, "fresh", path, opt); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if got, _ := getBytes(t, c, "fresh", nil); !bytes.Equal(got, data) {
		t.Fatalf("uploaded object differs (%d bytes)", len(got))
	}

	// An interrupted upload: parts 1 and 3 arrived, 2 and 4 did not.
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "resumed", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		part := data[(n-1)*mib : n*mib]
		if _, err := c.Object.UploadPart(ctx, "resumed", init.UploadID, n, bytes.NewReader(part), nil); err != nil {
			t.Fatal(err)
		}
	}
	srv.ResetStats()
	if _, _, err := c.Object.Upload(ctx, "resumed", path, opt); err != nil {
		t.Fatalf("resumed Upload: %v", err)
	}
	st := srv.Stats()
	if st.Count(opInitiateMultipartUpload) != 0 || st.Count(opUploadPart) != 2 || st.Count(opListParts) != 1 {
		t.Errorf("resume made %v; want no Initiate, 2 UploadPart, 1 ListParts", st.Requests)
	}
	if got, _ := getBytes(t, c, "resumed", nil); !bytes.Equal(got, data) {
		t.Fatalf("resumed object differs (%d bytes)", len(got))
	}

	// An interrupted upload whose part 2 holds other bytes is not resumed.
	init, _, err = c.Object.InitiateMultipartUpload(ctx, "stale", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Object.UploadPart(ctx, "stale", init.UploadID, 2, bytes.NewReader(randomBytes(mib, 2)), nil); err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	if _, _, err := c.Object.Upload(ctx, "stale", path, opt); err != nil {
		t.Fatalf("Upload over a stale upload: %v", err)
	}
	if st := srv.Stats(); st.Count(opInitiateMultipartUpload) != 1 || st.Count(opUploadPart) != 4 {
		t.Errorf("stale resume made %v; want a new upload of 4 parts", st.Requests)
	}
	if got, _ := getBytes(t, c, "stale", nil); !bytes.Equal(got, data) {
		t.Fatalf("object uploaded over a stale upload differs")
	}
}

// TestSDKDownloadResumesFromCheckpoint downloads with Object.Download and
// CheckPoint. The SDK compares its checkpoint file with HEAD's
// Content-Length, ETag, Last-Modified and CRC-64 and fetches only the
// ranges not yet done; it then checks the file's CRC-64 against the
// object's.
func TestSDKDownloadResumesFromCheckpoint(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	ctx := context.Background()
	data := randomBytes(3*mib+100, 3)
	putBytes(t, c, "big", data)
	dir := t.TempDir()
	opt := &cos.MultiDownloadOptions{PartSize: 1, ThreadPoolSize: 2, CheckPoint: true}

	whole := filepath.Join(dir, "whole.bin")
	if _, err := c.Object.Download(ctx, "big", whole, opt); err != nil {
		t.Fatalf("Download: %v", err)
	}
	if got, _ := os.ReadFile(whole); !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs (%d bytes)", len(got))
	}
	if _, err := os.Stat(whole + ".cosresumabletask"); !os.IsNotExist(err) {
		t.Errorf("checkpoint file left after a complete download: %v", err)
	}

	// An interrupted download: the first MiB is in the file and recorded
	// in the checkpoint, which names the object as HEAD describes it.
	resumed := filepath.Join(dir, "resumed.bin")
	if err := os.WriteFile(resumed, data[:mib], 0o600); err != nil {
		t.Fatal(err)
	}
	head, err := c.Object.Head(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := json.Marshal(cos.MultiDownloadCPInfo{
		Size: int64(len(data)), ETag: head.Header.Get("ETag"), CRC64: head.Header.Get("x-cos-hash-crc64ecma"),
		LastModified: head.Header.Get("Last-Modified"), DownloadedBlocks: []cos.DownloadedBlock{{From: 0, To: mib - 1}},
	})
	if err := os.WriteFile(resumed+".cosresumabletask", cp, 0o600); err != nil {
		t.Fatal(err)
	}
	srv.ResetStats()
	if _, err := c.Object.Download(ctx, "big", resumed, opt); err != nil {
		t.Fatalf("resumed Download: %v", err)
	}
	if n := srv.Stats().Count(opGetObject); n != 3 {
		t.Errorf("resumed download made %d ranged GETs, want 3 (the parts not done)", n)
	}
	if got, _ := os.ReadFile(resumed); !bytes.Equal(got, data) {
		t.Fatalf("resumed file differs (%d bytes)", len(got))
	}
}

// TestSDKMultiCopy copies with Object.MultiCopy: a source up to 5 GiB is
// one PUT Object - Copy; a larger one is Initiate, Upload Part - Copy per
// range and Complete, whose CRC-64 the SDK compares with the source's. The
// large source is assembled from copied parts, so no test data is 5 GiB.
func TestSDKMultiCopy(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	ctx := context.Background()
	small := randomBytes(5*mib, 4)
	putBytes(t, c, "src/small", small)
	// MultiCopy HEADs the source through the source's own URL
	// ("http://" + sourceURL), so the source host must be one the client
	// reaches: the server's address, which the emulator reads as the
	// request's own bucket.
	host := strings.TrimPrefix(srv.URL, "http://")

	if _, _, err := c.Object.MultiCopy(ctx, "dst/small", host+"/src/small", nil); err != nil {
		t.Fatalf("MultiCopy of 5 MiB: %v", err)
	}
	if got, _ := getBytes(t, c, "dst/small", nil); !bytes.Equal(got, small) {
		t.Fatal("copied small object differs")
	}
	if n := srv.Stats().Count(opCopyObject); n != 1 {
		t.Errorf("small MultiCopy made %d PUT Object - Copy, want 1", n)
	}

	// 5 MiB → 320 MiB → 5440 MiB, by Upload Part - Copy of whole objects.
	assemble := func(dst, src string, parts int) {
		t.Helper()
		init, _, err := c.Object.InitiateMultipartUpload(ctx, dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		opt := &cos.CompleteMultipartUploadOptions{}
		for n := 1; n <= parts; n++ {
			res, _, err := c.Object.CopyPart(ctx, dst, init.UploadID, n, host+"/"+src, nil)
			if err != nil {
				t.Fatalf("CopyPart %d of %s: %v", n, dst, err)
			}
			opt.Parts = append(opt.Parts, cos.Object{PartNumber: n, ETag: res.ETag})
		}
		if _, _, err := c.Object.CompleteMultipartUpload(ctx, dst, init.UploadID, opt); err != nil {
			t.Fatalf("Complete %s: %v", dst, err)
		}
	}
	assemble("src/medium", "src/small", 64)
	assemble("src/large", "src/medium", 17)
	srcHead, err := c.Object.Head(ctx, "src/large", nil)
	if err != nil || srcHead.ContentLength <= 5<<30 {
		t.Fatalf("large source: %v, %d bytes", err, srcHead.ContentLength)
	}

	srv.ResetStats()
	if _, _, err := c.Object.MultiCopy(ctx, "dst/large", host+"/src/large", &cos.MultiCopyOptions{PartSize: 1024, ThreadPoolSize: 2}); err != nil {
		t.Fatalf("MultiCopy of %d bytes: %v", srcHead.ContentLength, err)
	}
	st := srv.Stats()
	if st.Count(opInitiateMultipartUpload) != 1 || st.Count(opUploadPartCopy) != 6 || st.Count(opCompleteMultipartUpload) != 1 {
		t.Errorf("large MultiCopy made %v; want Initiate, 6 Upload Part - Copy, Complete", st.Requests)
	}
	dstHead, err := c.Object.Head(ctx, "dst/large", nil)
	if err != nil {
		t.Fatal(err)
	}
	if dstHead.ContentLength != srcHead.ContentLength || dstHead.Header.Get("x-cos-hash-crc64ecma") != srcHead.Header.Get("x-cos-hash-crc64ecma") {
		t.Errorf("copy: %d bytes, CRC %s; source %d bytes, CRC %s", dstHead.ContentLength, dstHead.Header.Get("x-cos-hash-crc64ecma"),
			srcHead.ContentLength, srcHead.Header.Get("x-cos-hash-crc64ecma"))
	}
	// Spot-check bytes across a part boundary (1 GiB) of the copy.
	off := int64(1<<30) - 3
	got, _ := getBytes(t, c, "dst/large", &cos.ObjectGetOptions{Range: fmt.Sprintf("bytes=%d-%d", off, off+5)})
	want := make([]byte, 6)
	for i := range want {
		want[i] = small[(off+int64(i))%int64(len(small))]
	}
	if !bytes.Equal(got, want) {
		t.Errorf("bytes at %d: %x, want %x", off, got, want)
	}
}

// TestSDKPresignedURLForms uses every presigned URL form of the SDK for
// GET, PUT and HEAD: GetPresignedURL with explicit keys (and a session
// token passed as a signed parameter), GetPresignedURL2 and
// GetPresignedURL3 with the client's credential (which add the token
// themselves), the merged "sign" parameter, an unsigned host, a signed
// header, and an encoded delimiter.
func TestSDKPresignedURLForms(t *testing.T) {
	temp := Credential{SecretID: "AKIDtempPresign", SecretKey: "tempPresignKey", SessionToken: "presign-token"}
	srv := startServer(t, Options{Credentials: []Credential{{SecretID: DefaultSecretID, SecretKey: DefaultSecretKey}, temp}})
	perm := srv.Client()
	tokened := newClientWith(t, srv.URL, temp.SecretID, temp.SecretKey, temp.SessionToken)
	ctx := context.Background()
	const key = "pre/a b+c;d.txt"

	type form struct {
		name string
		sign func(method string) (*url.URL, error)
		// header is sent with the request (and signed by the form).
		header http.Header
		status int
		code   string
	}
	contentType := http.Header{"Content-Type": {"text/plain"}}
	forms := []form{
		{name: "URL", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL(ctx, m, key, srv.SecretID, srv.SecretKey, time.Hour, nil)
		}, status: 200},
		{name: "URL with token parameter", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL(ctx, m, key, temp.SecretID, temp.SecretKey, time.Hour,
				&cos.PresignedURLOptions{Query: &url.Values{"x-cos-security-token": {temp.SessionToken}}})
		}, status: 200},
		{name: "URL with token appended unsigned, as the Node.js SDK does", sign: func(m string) (*url.URL, error) {
			u, err := perm.Object.GetPresignedURL(ctx, m, key, temp.SecretID, temp.SecretKey, time.Hour, nil)
			if err == nil {
				u.RawQuery += "&x-cos-security-token=" + url.QueryEscape(temp.SessionToken)
			}
			return u, err
		}, status: 200},
		{name: "URL of a temporary key without its token", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL(ctx, m, key, temp.SecretID, temp.SecretKey, time.Hour, nil)
		}, status: 403, code: "AccessDenied"},
		{name: "URL, host unsigned", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL(ctx, m, key, srv.SecretID, srv.SecretKey, time.Hour, nil, false)
		}, status: 200},
		{name: "URL with a signed header", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL(ctx, m, key, srv.SecretID, srv.SecretKey, time.Hour, &cos.PresignedURLOptions{Header: &contentType})
		}, header: contentType, status: 200},
		{name: "URL2", sign: func(m string) (*url.URL, error) {
			return perm.Object.GetPresignedURL2(ctx, m, key, time.Hour, nil)
		}, status: 200},
		{name: "URL2 with token", sign: func(m string) (*url.URL, error) {
			return tokened.Object.GetPresignedURL2(ctx, m, key, time.Hour, nil)
		}, status: 200},
		{name: "URL2 with token, merged sign", sign: func(m string) (*url.URL, error) {
			return tokened.Object.GetPresignedURL2(ctx, m, key, time.Hour, &cos.PresignedURLOptions{SignMerged: true})
		}, status: 200},
		{name: "URL3 with token, delimiter encoded", sign: func(m string) (*url.URL, error) {
			return tokened.Object.GetPresignedURL3(ctx, m, key, time.Hour, &cos.PresignedURLOptions{EncodeDelimiter: true})
		}, status: 200},
	}
	for i, f := range forms {
		for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodHead} {
			t.Run(f.name+"/"+method, func(t *testing.T) {
				u, err := f.sign(method)
				if err != nil {
					t.Fatal(err)
				}
				body := "form " + strconv.Itoa(i)
				var req *http.Request
				if method == http.MethodPut {
					req, _ = http.NewRequest(method, u.String(), strings.NewReader(body))
				} else {
					req, _ = http.NewRequest(method, u.String(), nil)
				}
				for k, vs := range f.header {
					req.Header[k] = vs
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(resp)
				// HEAD answers carry no body, hence no code.
				if resp.StatusCode != f.status || (f.code != "" && method != http.MethodHead && !strings.Contains(got, "<Code>"+f.code+"</Code>")) {
					t.Fatalf("%s: %d %s, want %d %s", u, resp.StatusCode, got, f.status, f.code)
				}
				if f.status != 200 {
					return
				}
				// Every form PUTs first, so GET reads what it wrote.
				sum := md5.Sum([]byte(body))
				if resp.Header.Get("ETag") != quote(fmt.Sprintf("%x", sum)) {
					t.Errorf("ETag %s, want the MD5 of %q", resp.Header.Get("ETag"), body)
				}
				if method == http.MethodGet && got != body {
					t.Errorf("GET body %q, want %q", got, body)
				}
			})
		}
	}
}
