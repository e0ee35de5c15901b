package costest

// Fuzz tests of the emulator's request parsing. Each runs its seed corpus as
// an ordinary test under `go test`; run one for real with
//
//	go test -run '^$' -fuzz '^FuzzRange$' -fuzztime 30s ./costest/
//
// Every fuzzer drives requests through a fresh Handler (so inputs do not
// depend on each other) and checks the common property of checkAnswer: the
// handler returns in time, never panics, answers no 5xx but 501
// NotImplemented, and every error is a COS <Error> document whose code
// belongs to its status. Most fuzzers add an oracle for the answer itself.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

const (
	fuzzUploadKey = "mp/dst"
	fuzzUploadID  = "fuzzupload"
)

// fuzzObjects are the objects every fuzz handler starts with.
var fuzzObjects = map[string][]byte{
	"obj":         randomBytes(1000, 11),
	"empty":       nil,
	"dir/a":       []byte("a"),
	"dir/b/c":     []byte("c"),
	"sp ace+plus": []byte("s"),
	"日本/語":        []byte("j"),
}

// fuzzParts are the parts of the upload fuzzUploadID of fuzzUploadKey.
var fuzzParts = [][]byte{[]byte("part one"), []byte("part two")}

// newFuzzHandler builds a memory emulator holding fuzzObjects and one upload
// with a fixed id and fuzzParts uploaded.
func newFuzzHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := NewHandler(Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for key, data := range fuzzObjects {
		req := httptest.NewRequest("PUT", "http://127.0.0.1/"+url.PathEscape(key), bytes.NewReader(data))
		if rec := serveSigned(h, req); rec.Code != 200 {
			t.Fatalf("fixture %q: %d %s", key, rec.Code, rec.Body)
		}
	}
	err = h.store.createUpload(&uploadRecord{
		Bucket: DefaultBucket, Key: fuzzUploadKey, UploadID: fuzzUploadID, Initiated: time.Now().UTC(),
		Meta: objectMeta{ContentType: "application/octet-stream"}, Parts: map[int]*partRecord{},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range fuzzParts {
		target := "http://127.0.0.1/" + url.PathEscape(fuzzUploadKey) + "?partNumber=" + strconv.Itoa(i+1) + "&uploadId=" + fuzzUploadID
		if rec := serveSigned(h, httptest.NewRequest("PUT", target, bytes.NewReader(p))); rec.Code != 200 {
			t.Fatalf("fixture part %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	return h
}

// errorStatus is the status each error code the emulator uses belongs to.
var errorStatus = map[string]int{
	"AccessDenied": 403, "InvalidAccessKeyId": 403, "SignatureDoesNotMatch": 403, "RequestTimeTooSkewed": 403,
	"ExpiredToken": 400, "InvalidArgument": 400, "InvalidRequest": 400, "InvalidDigest": 400, "BadDigest": 400,
	"MalformedXML": 400, "KeyTooLong": 400, "EntityTooLarge": 400, "EntityTooSmall": 400, "IncompleteBody": 400,
	"InvalidCopySource": 400, "InvalidDelimiter": 400, "InvalidPart": 400, "InvalidPartOrder": 400,
	"InvalidBucketName": 400, "ListPartUploadIdIsEmpty": 400, "MissingContentMD5": 400,
	"NoSuchKey": 404, "NoSuchBucket": 404, "NoSuchUpload": 404, "NoSuchCopySource": 404,
	"MethodNotAllowed": 405, "BucketAlreadyOwnedByYou": 409, "ObjectNotAppendable": 409, "AppendPositionErr": 409,
	"MissingContentLength": 411, "PreconditionFailed": 412, "InvalidRange": 416, "NotImplemented": 501,
	// The S3-compatible surface (sigv4.go).
	"AuthorizationHeaderMalformed": 400, "AuthorizationQueryParametersError": 400, "XAmzContentSHA256Mismatch": 400,
	"PathStyleDomainForbidden": 403,
}

// fuzzServe serves req on h, failing if the handler does not return within
// a few seconds.
func fuzzServe(t *testing.T, h *Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, req)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s %s: the handler did not return", req.Method, req.URL)
	}
	return rec
}

// signAndServe signs req with the SDK's signer (an implementation
// independent of the emulator's verifier) and serves it.
func signAndServe(t *testing.T, h *Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	cos.AddAuthorizationHeader(DefaultSecretID, DefaultSecretKey, "", req, cos.NewAuthTime(time.Hour))
	return fuzzServe(t, h, req)
}

// checkAnswer applies the common property and returns the error code ("" on
// success).
func checkAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder) string {
	t.Helper()
	status := rec.Code
	if status >= 500 && status != http.StatusNotImplemented {
		t.Fatalf("%s %q (host %q): status %d: %s", req.Method, req.URL.String(), req.Host, status, rec.Body)
	}
	if rec.Header().Get("x-cos-request-id") == "" {
		t.Fatalf("answer without x-cos-request-id")
	}
	if status < 400 {
		return ""
	}
	if req.Method == http.MethodHead {
		if rec.Body.Len() != 0 {
			t.Fatalf("HEAD error with a body")
		}
		return "(head)"
	}
	var doc errorDocument
	if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%s %q: status %d with a body that is no COS error: %v: %q", req.Method, req.URL.String(), status, err, rec.Body)
	}
	if want, ok := errorStatus[doc.Code]; !ok || want != status {
		t.Fatalf("%s %q: error code %q with status %d", req.Method, req.URL.String(), doc.Code, status)
	}
	if doc.RequestID != rec.Header().Get("x-cos-request-id") || rec.Header().Get("Content-Type") != "application/xml" {
		t.Fatalf("error document %+v does not match headers %v", doc, rec.Header())
	}
	return doc.Code
}

// wantAnswer fails unless the answer has the given status and code.
func wantAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	got := checkAnswer(t, req, rec)
	if rec.Code != status || (req.Method != http.MethodHead && got != code) {
		t.Fatalf("%s %q: got %d %q, want %d %q: %s", req.Method, req.URL.String(), rec.Code, got, status, code, rec.Body)
	}
}

var fuzzMethods = []string{"GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"}

// FuzzRequestTarget fuzzes the request line and Host: key extraction from
// the path, Host routing and subresource routing on the query. The request
// is parsed by net/http's own reader, as the server would; a request it
// refuses never reaches the handler.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range []struct {
		m            uint8
		target, host string
	}{
		{0, "/obj", "127.0.0.1:9000"},
		{0, "/", ""},
		{0, "/?prefix=dir/&delimiter=/&max-keys=1", "localhost"},
		{0, "/dir%2Fa", DefaultBucket + ".cos." + DefaultRegion + ".myqcloud.com"},
		{0, "/obj", DefaultBucket + ".cos.ap-beijing.myqcloud.com"},
		{0, "/obj", "other-1250000000.cos-internal.ap-guangzhou.tencentcos.cn:443"},
		{0, "/obj", DefaultBucket + ".cos.accelerate.myqcloud.com"},
		{0, "/obj", "REGISTRY-1250000000.COS.AP-GUANGZHOU.MYQCLOUD.COM"},
		{0, "http://x/obj?acl", "x"},
		{0, "*", ""},
		{0, "//obj", ""},
		{0, "/sp%20ace%2Bplus", ""},
		{0, "/%E6%97%A5%E6%9C%AC/%E8%AA%9E", ""},
		{0, "/mp/dst?uploadId=" + fuzzUploadID + "&max-parts=1", ""},
		{0, "/?uploads&max-uploads=0", ""},
		{1, "/new?partNumber=1&uploadId=x", ""},
		{1, "/" + strings.Repeat("k", 851), ""},
		{1, "/", "newbucket-1250000000.cos.ap-shanghai.myqcloud.com"},
		{1, "/", "Bad_Bucket-1.cos.ap-shanghai.myqcloud.com"},
		{2, "/?delete", ""},
		{2, "/k?uploads", ""},
		{2, "/mp/dst?uploadId=" + fuzzUploadID, ""},
		{2, "/k?append&position=0", ""},
		{2, "/k?append&position=x", ""},
		{2, "/k", ""},
		{3, "/obj", ""},
		{3, "/mp/dst?uploadId=" + fuzzUploadID, ""},
		{3, "/", ""},
		{4, "/", ""},
		{4, "/missing", ""},
		{5, "/obj", ""},
		{6, "/", ""},
		{0, "/obj?response-content-type=text/plain&versionId=1", ""},
		{0, "/obj?q-foo=1&sign-x=2", ""},
		{0, "/?max-keys=00000000000000000000000000001", ""},
		// Found by fuzzing: the verifier decoded the signed parameter list
		// again, turning the parameter name "%21" into "!".
		{5, "A:?!", "0"},
		{0, "/obj?%21=1&a%3Bb=2&%25=3", ""},
	} {
		f.Add(s.m, s.target, s.host)
	}
	f.Fuzz(func(t *testing.T, m uint8, target, host string) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		if strings.ContainsAny(target+host, "\r\n") || strings.ContainsAny(target, " \t") {
			return // would change the request's framing, not its content
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\n\r\nhello"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http answers 400 itself
		}
		h := newFuzzHandler(t)
		rec := signAndServe(t, h, req)
		code := checkAnswer(t, req, rec)
		if code == "SignatureDoesNotMatch" {
			t.Fatalf("%s %q: the SDK's signature was refused: %s", method, target, rec.Body)
		}

		bucket, region, named := bucketFromHost(req.Host)
		otherBucket := named && (bucket != DefaultBucket || (region != DefaultRegion && region != "accelerate"))
		bucketLevel := req.URL.Path == "" || req.URL.Path == "/"
		if otherBucket && !(method == "PUT" && bucketLevel) && code != "NotImplemented" {
			if method != "HEAD" && code != "NoSuchBucket" {
				t.Fatalf("host %q names another bucket, got %d %q", req.Host, rec.Code, code)
			}
		}
		// A plain GET of an object answers the object whose key is the
		// decoded path without its leading slash.
		if method == "GET" && !otherBucket && !bucketLevel && req.URL.RawQuery == "" {
			key := strings.TrimPrefix(req.URL.Path, "/")
			data, ok := fuzzObjects[key]
			switch {
			case ok && (rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), data)):
				t.Fatalf("GET %q (key %q): %d, %d bytes", target, key, rec.Code, rec.Body.Len())
			case !ok && key != fuzzUploadKey && rec.Code != 404:
				t.Fatalf("GET %q (key %q, no such object): %d", target, key, rec.Code)
			}
		}
	})
}

// validCount is the list parsers' rule for max-keys, max-uploads and
// max-parts: empty (the default) or a non-negative integer.
func validCount(v string) bool {
	if v == "" {
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && n >= 0
}

// FuzzListQuery fuzzes the list parameters of List Objects, List Multipart
// Uploads and List Parts, checking error codes against the documented rules
// and successful listings against the fixture keys.
func FuzzListQuery(f *testing.F) {
	for _, s := range []struct {
		op                                  uint8
		maxKeys, marker, prefix, delim, enc string
	}{
		{0, "", "", "", "", ""},
		{0, "1", "", "dir/", "/", ""},
		{0, "2", "dir/", "", "/", "url"},
		{0, "1000000000000000000000", "", "", "", ""},
		{0, "-1", "", "", "", ""},
		{0, "+3", "", "", "", ""},
		{0, "0", "", "", "", ""},
		{0, "", "", "", "//", ""},
		{0, "", "", "", "語", ""},
		{0, "", "", "", "", "URL"},
		{0, "", "zzz", "", "", ""},
		{0, "", "", "sp ace", " ", "url"},
		{1, "", "", "", "", ""},
		{1, "1", "mp/dst", "mp", "/", "url"},
		{1, "x", "", "", "", ""},
		{2, "", "", "", "", ""},
		{2, "1", "1", "", "", ""},
		{2, "1", "-1", "", "", ""},
		{2, "1", "x", "", "", "url"},
		{2, "99999999999999999999", "99999999999999999999", "", "", ""},
	} {
		f.Add(s.op, s.maxKeys, s.marker, s.prefix, s.delim, s.enc)
	}
	f.Fuzz(func(t *testing.T, op uint8, maxKeys, marker, prefix, delim, enc string) {
		h := newFuzzHandler(t)
		q := url.Values{}
		set := func(k, v string) {
			if v != "" {
				q.Set(k, v)
			}
		}
		set("encoding-type", enc)
		var path string
		var code string
		switch op % 3 {
		case 0:
			path = "/"
			set("max-keys", maxKeys)
			set("marker", marker)
			set("prefix", prefix)
			set("delimiter", delim)
			switch {
			case len(delim) > 1:
				code = "InvalidDelimiter"
			case enc != "" && enc != "url":
				code = "InvalidArgument"
			case !validCount(maxKeys):
				code = "InvalidArgument"
			}
		case 1:
			path = "/?uploads"
			set("max-uploads", maxKeys)
			set("key-marker", marker)
			set("prefix", prefix)
			set("delimiter", delim)
			switch {
			case len(delim) > 1:
				code = "InvalidDelimiter"
			case enc != "" && enc != "url":
				code = "InvalidArgument"
			case !validCount(maxKeys):
				code = "InvalidArgument"
			}
		case 2:
			path = "/" + fuzzUploadKey + "?uploadId=" + fuzzUploadID
			set("max-parts", maxKeys)
			set("part-number-marker", marker)
			switch {
			case enc != "" && enc != "url":
				code = "InvalidArgument"
			case !validCount(maxKeys):
				code = "InvalidArgument"
			case marker != "" && !validCount(marker):
				code = "InvalidArgument"
			}
		}
		target := "http://127.0.0.1" + path
		if enc := q.Encode(); enc != "" {
			if strings.Contains(target, "?") {
				target += "&" + enc
			} else {
				target += "?" + enc
			}
		}
		req := httptest.NewRequest("GET", target, nil)
		rec := signAndServe(t, h, req)
		if code != "" {
			wantAnswer(t, req, rec, 400, code)
			return
		}
		wantAnswer(t, req, rec, 200, "")
		limit := 1000
		if maxKeys != "" {
			n, _ := strconv.Atoi(maxKeys)
			limit = min(n, 1000)
		}
		decode := func(s string) string {
			if enc != "url" {
				return s
			}
			d, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("encoding-type=url name %q does not decode: %v", s, err)
			}
			return d
		}
		switch op % 3 {
		case 0:
			var res listBucketResult
			if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("listing: %v", err)
			}
			n := len(res.Contents) + len(res.CommonPrefixes)
			if n > limit || (res.IsTruncated && res.NextMarker == "") || res.MaxKeys != limit {
				t.Fatalf("listing of %d entries, limit %d, truncated %v, next %q", n, limit, res.IsTruncated, res.NextMarker)
			}
			prev := ""
			for _, o := range res.Contents {
				k := decode(o.Key)
				if _, ok := fuzzObjects[k]; !ok || !strings.HasPrefix(k, prefix) || k <= marker || k <= prev {
					t.Fatalf("listed key %q (prefix %q, marker %q, previous %q)", k, prefix, marker, prev)
				}
				if delim != "" && strings.Contains(k[len(prefix):], delim) {
					t.Fatalf("key %q listed although it rolls up under delimiter %q", k, delim)
				}
				prev = k
			}
			for _, p := range res.CommonPrefixes {
				cp := decode(p.Prefix)
				if delim == "" || !strings.HasPrefix(cp, prefix) || !strings.HasSuffix(cp, delim) || cp <= marker {
					t.Fatalf("common prefix %q (prefix %q, delimiter %q, marker %q)", cp, prefix, delim, marker)
				}
			}
		case 1:
			var res listUploadsResult
			if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("upload listing: %v", err)
			}
			if len(res.Uploads)+len(res.CommonPrefixes) > limit {
				t.Fatalf("upload listing over its limit %d", limit)
			}
			for _, u := range res.Uploads {
				if decode(u.Key) != fuzzUploadKey || u.UploadID != fuzzUploadID {
					t.Fatalf("listed upload %+v", u)
				}
			}
		case 2:
			var res listPartsResult
			if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatalf("part listing: %v", err)
			}
			m := 0
			if marker != "" {
				m, _ = strconv.Atoi(marker)
			}
			want := 0
			for i := range fuzzParts {
				if i+1 > m {
					want++
				}
			}
			if len(res.Parts) != min(want, limit) || res.IsTruncated != (want > limit) {
				t.Fatalf("part listing with marker %d, limit %d: %d parts, truncated %v", m, limit, len(res.Parts), res.IsTruncated)
			}
		}
	})
}

// refRange is an independent reading of a single-range Range header
// (RFC 9110 §14.1.2, one range only): ok is false for a malformed value
// (which GET ignores);
// satisfiable is false for a range that starts beyond the object.
func refRange(v string, size int64) (first, last int64, ok, satisfiable bool) {
	m := regexp.MustCompile(`^bytes=([0-9]*)-([0-9]*)$`).FindStringSubmatch(strings.TrimSpace(v))
	if m == nil || (m[1] == "" && m[2] == "") {
		return 0, 0, false, false
	}
	parse := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if m[1] == "" {
		n, ok := parse(m[2])
		if !ok {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		return max(size-n, 0), size - 1, true, true
	}
	first, ok1 := parse(m[1])
	last = size - 1
	if m[2] != "" {
		var ok2 bool
		last, ok2 = parse(m[2])
		if !ok2 || last < first {
			return 0, 0, false, false
		}
	}
	if !ok1 {
		return 0, 0, false, false
	}
	if first >= size {
		return 0, 0, true, false
	}
	return first, min(last, size-1), true, true
}

// FuzzRange fuzzes the Range header of GET Object against refRange.
func FuzzRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=999-", "bytes=1000-", "bytes=5-2",
		"bytes=0-99999999999999999999", "bytes=-99999999999999999999", "bytes=+1-2", "bytes=1-+2", "bytes=0-1,2-3",
		"bytes=--1", "bytes=-", "bytes= 1-2", " bytes=1-2 ", "Bytes=1-2", "items=1-2", "bytes=1-2-3", "bytes=0x1-2",
		"", // found by fuzzing (a test bug: no Range header means the whole object)
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, v string, empty bool) {
		if strings.ContainsAny(v, "\r\n") {
			return
		}
		key := "obj"
		if empty {
			key = "empty"
		}
		data := fuzzObjects[key]
		size := int64(len(data))
		h := newFuzzHandler(t)
		req := httptest.NewRequest("GET", "http://127.0.0.1/"+key, nil)
		req.Header.Set("Range", v)
		rec := signAndServe(t, h, req)
		first, last, ok, satisfiable := refRange(req.Header.Get("Range"), size)
		switch {
		case req.Header.Get("Range") == "":
			// No Range header at all: the whole object.
			wantAnswer(t, req, rec, 200, "")
			if !bytes.Equal(rec.Body.Bytes(), data) {
				t.Fatalf("GET without Range: %d bytes", rec.Body.Len())
			}
		case strings.HasPrefix(strings.TrimSpace(v), "bytes=") && strings.Contains(v, ","):
			// A list of ranges: unsupported, refused.
			wantAnswer(t, req, rec, 400, "InvalidArgument")
		case !ok:
			// A malformed range is ignored (RFC 9110 §14.2): the whole
			// object.
			wantAnswer(t, req, rec, 200, "")
			if !bytes.Equal(rec.Body.Bytes(), data) || rec.Header().Get("Content-Range") != "" {
				t.Fatalf("Range %q ignored: %d bytes, Content-Range %q", v, rec.Body.Len(), rec.Header().Get("Content-Range"))
			}
		case !satisfiable:
			wantAnswer(t, req, rec, 416, "InvalidRange")
			if got := rec.Header().Get("Content-Range"); got != "bytes */"+strconv.FormatInt(size, 10) {
				t.Fatalf("416 with Content-Range %q", got)
			}
		default:
			wantAnswer(t, req, rec, 206, "")
			wantCR := "bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + strconv.FormatInt(size, 10)
			if got := rec.Header().Get("Content-Range"); got != wantCR || !bytes.Equal(rec.Body.Bytes(), data[first:last+1]) ||
				rec.Header().Get("Content-Length") != strconv.FormatInt(last-first+1, 10) {
				t.Fatalf("Range %q: Content-Range %q (want %q), %d bytes", v, got, wantCR, rec.Body.Len())
			}
		}
	})
}

// refCopyRange is an independent reading of x-cos-copy-source-range:
// "bytes=first-last", both present, within the source.
func refCopyRange(v string, size int64) (first, n int64, ok bool) {
	if v == "" {
		return 0, size, true
	}
	m := regexp.MustCompile(`^bytes=([0-9]+)-([0-9]+)$`).FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(m[1], 10, 64)
	last, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil || last < first || last >= size {
		return 0, 0, false
	}
	return first, last - first + 1, true
}

// FuzzUploadPartQuery fuzzes partNumber and uploadId of Upload Part and
// Upload Part - Copy, and the x-cos-copy-source-range of the copy.
func FuzzUploadPartQuery(f *testing.F) {
	for _, s := range []struct {
		partNumber, uploadID, copyRange string
		copy                            bool
	}{
		{"1", fuzzUploadID, "", false},
		{"10000", fuzzUploadID, "", false},
		{"10001", fuzzUploadID, "", false},
		{"0", fuzzUploadID, "", false},
		{"-1", fuzzUploadID, "", false},
		{"", fuzzUploadID, "", false},
		{"1", "", "", false},
		{"1", "nope", "", false},
		{"99999999999999999999999", fuzzUploadID, "", false},
		{"3", fuzzUploadID, "", true},
		{"3", fuzzUploadID, "bytes=0-999", true},
		{"3", fuzzUploadID, "bytes=10-10", true},
		{"3", fuzzUploadID, "bytes=0-1000", true},
		{"3", fuzzUploadID, "bytes=5-4", true},
		{"3", fuzzUploadID, "bytes=-5", true},
		{"3", fuzzUploadID, "bytes=5-", true},
		{"3", fuzzUploadID, "bytes=+5-6", true},
		{"3", fuzzUploadID, "bytes=0-1,2-3", true},
		{"3", "nope", "bytes=0-1", true},
		{"0", fuzzUploadID, "bytes=0-1", true},
	} {
		f.Add(s.partNumber, s.uploadID, s.copyRange, s.copy)
	}
	f.Fuzz(func(t *testing.T, partNumber, uploadID, copyRange string, copy bool) {
		if strings.ContainsAny(copyRange, "\r\n") {
			return
		}
		h := newFuzzHandler(t)
		q := url.Values{}
		q.Set("partNumber", partNumber)
		q.Set("uploadId", uploadID)
		body := []byte("new part")
		if copy {
			body = nil
		}
		req := httptest.NewRequest("PUT", "http://127.0.0.1/"+fuzzUploadKey+"?"+q.Encode(), bytes.NewReader(body))
		src := fuzzObjects["obj"]
		if copy {
			req.Header.Set("x-cos-copy-source", "127.0.0.1/obj")
			if copyRange != "" {
				req.Header.Set("x-cos-copy-source-range", copyRange)
			}
		}
		rec := signAndServe(t, h, req)
		n, err := strconv.Atoi(partNumber)
		first, size, rangeOK := refCopyRange(req.Header.Get("x-cos-copy-source-range"), int64(len(src)))
		switch {
		case err != nil || n < 1 || n > 10000:
			wantAnswer(t, req, rec, 400, "InvalidArgument")
		case uploadID != fuzzUploadID:
			wantAnswer(t, req, rec, 404, "NoSuchUpload")
		case copy && !rangeOK:
			wantAnswer(t, req, rec, 400, "InvalidArgument")
		default:
			wantAnswer(t, req, rec, 200, "")
			want := body
			if copy {
				want = src[first : first+size]
			}
			crc := strconv.FormatUint(crc64.Checksum(want, crcTable), 10)
			if got := rec.Header().Get("x-cos-hash-crc64ecma"); got != crc {
				t.Fatalf("part CRC64 %s, want %s", got, crc)
			}
			_, parts, _ := h.store.upload(DefaultBucket, fuzzUploadKey, fuzzUploadID)
			for _, p := range parts {
				if p.Number == n && p.Size != int64(len(want)) {
					t.Fatalf("part %d holds %d bytes, want %d", n, p.Size, len(want))
				}
			}
		}
	})
}

// FuzzCopySource fuzzes the x-cos-copy-source header of PUT Object - Copy
// and Upload Part - Copy.
func FuzzCopySource(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1/obj", "127.0.0.1:9000/obj", DefaultBucket + ".cos." + DefaultRegion + ".myqcloud.com/obj",
		DefaultBucket + ".cos.ap-beijing.myqcloud.com/obj", "other-1250000000.cos.ap-guangzhou.myqcloud.com/obj",
		"127.0.0.1/sp%20ace%2Bplus", "127.0.0.1/sp ace+plus", "127.0.0.1/%E6%97%A5%E6%9C%AC/%E8%AA%9E",
		"127.0.0.1/obj?versionId=1", "127.0.0.1/", "/obj", "127.0.0.1", "", "http://127.0.0.1/obj",
		"127.0.0.1/%zz", "127.0.0.1/dir%2Fa", "127.0.0.1/missing", "127.0.0.1/empty", "127.0.0.1/mp/dst",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, src string, part bool) {
		if strings.ContainsAny(src, "\r\n") {
			return
		}
		h := newFuzzHandler(t)
		target := "http://127.0.0.1/dst"
		if part {
			target = "http://127.0.0.1/" + fuzzUploadKey + "?partNumber=3&uploadId=" + fuzzUploadID
		}
		req := httptest.NewRequest("PUT", target, nil)
		req.Header.Set("x-cos-copy-source", src)
		rec := signAndServe(t, h, req)
		code := checkAnswer(t, req, rec)
		v := req.Header.Get("x-cos-copy-source")
		if v == "" {
			// Without the header this is a plain (empty) PUT or Upload Part.
			wantAnswer(t, req, rec, 200, "")
			return
		}
		switch code {
		case "", "InvalidCopySource", "NoSuchCopySource", "NoSuchBucket", "InvalidRequest", "EntityTooSmall":
		default:
			t.Fatalf("copy from %q: %d %q", src, rec.Code, code)
		}
		if code != "" {
			return
		}
		// The copy succeeded: its source must be a fixture named by the
		// part after the first '/', decoded, without any ?versionId.
		rest, _, _ := strings.Cut(v, "?")
		_, rawKey, _ := strings.Cut(rest, "/")
		key, err := url.PathUnescape(rawKey)
		data, ok := fuzzObjects[key]
		if err != nil || !ok {
			t.Fatalf("copy from %q succeeded, but it names no object (%q)", src, key)
		}
		crc := strconv.FormatUint(crc64.Checksum(data, crcTable), 10)
		if got := rec.Header().Get("x-cos-hash-crc64ecma"); got != crc {
			t.Fatalf("copy of %q: CRC64 %s, want %s", key, got, crc)
		}
		if !part {
			get := httptest.NewRequest("GET", "http://127.0.0.1/dst", nil)
			if got := signAndServe(t, h, get); !bytes.Equal(got.Body.Bytes(), data) {
				t.Fatalf("copy of %q holds %d bytes, want %d", key, got.Body.Len(), len(data))
			}
		}
	})
}

// FuzzCompleteXML fuzzes the body of Complete Multipart Upload.
func FuzzCompleteXML(f *testing.F) {
	etag := func(p []byte) string { s := md5.Sum(p); return `&#34;` + hexString(s[:]) + `&#34;` }
	one := `<Part><ETag>` + etag(fuzzParts[0]) + `</ETag><PartNumber>1</PartNumber></Part>`
	two := `<Part><ETag>` + etag(fuzzParts[1]) + `</ETag><PartNumber>2</PartNumber></Part>`
	for _, s := range []string{
		`<CompleteMultipartUpload>` + two + `</CompleteMultipartUpload>`,
		`<CompleteMultipartUpload>` + one + two + `</CompleteMultipartUpload>`,
		`<CompleteMultipartUpload>` + two + one + `</CompleteMultipartUpload>`,
		`<CompleteMultipartUpload>` + one + one + `</CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><ETag>"x"</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part></CompleteMultipartUpload>`,
		`<CompleteMultipartUpload></CompleteMultipartUpload>`,
		`<Other>` + two + `</Other>`,
		`<CompleteMultipartUpload>` + two + `</CompleteMultipartUpload><trailing>`,
		`<CompleteMultipartUpload>` + two + `</CompleteMultipartUpload>garbage`,
		`<?xml version="1.0" encoding="GBK"?><CompleteMultipartUpload>` + two + `</CompleteMultipartUpload>`,
		`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<CompleteMultipartUpload>` + two + `</CompleteMultipartUpload>` + "\n",
		`<CompleteMultipartUpload>`, ``, `<`, `<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>`,
		`<CompleteMultipartUpload><Part><ETag>` + etag(fuzzParts[1]) + `</ETag><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := newFuzzHandler(t)
		req := httptest.NewRequest("POST", "http://127.0.0.1/"+fuzzUploadKey+"?uploadId="+fuzzUploadID, bytes.NewReader(body))
		rec := signAndServe(t, h, req)
		code := checkAnswer(t, req, rec)
		switch code {
		case "MalformedXML", "InvalidPart", "InvalidPartOrder", "EntityTooSmall":
			return
		case "":
		default:
			t.Fatalf("Complete with %q: %d %q", body, rec.Code, code)
		}
		var doc struct {
			XMLName xml.Name
			Parts   []struct {
				PartNumber int
			} `xml:"Part"`
		}
		if err := strictXML(body, &doc); err != nil || doc.XMLName.Local != "CompleteMultipartUpload" {
			t.Fatalf("Complete accepted a body that is no CompleteMultipartUpload document (%v): %q", err, body)
		}
		var want []byte
		for _, p := range doc.Parts {
			want = append(want, fuzzParts[p.PartNumber-1]...)
		}
		get := httptest.NewRequest("GET", "http://127.0.0.1/"+fuzzUploadKey, nil)
		if got := signAndServe(t, h, get); got.Code != 200 || !bytes.Equal(got.Body.Bytes(), want) {
			t.Fatalf("completed object: %d, %q, want %q", got.Code, got.Body, want)
		}
	})
}

// strictXML decodes one XML document and refuses anything but white space,
// comments and processing instructions after its root element.
func strictXML(body []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return err
	}
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
				return io.ErrUnexpectedEOF
			}
		default:
			return io.ErrUnexpectedEOF
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// FuzzDeleteXML fuzzes the body of Delete Multiple Objects (sent with a
// correct Content-MD5).
func FuzzDeleteXML(f *testing.F) {
	for _, s := range []string{
		`<Delete><Quiet>false</Quiet><Object><Key>obj</Key></Object><Object><Key>missing</Key></Object></Delete>`,
		`<Delete><Quiet>true</Quiet><Object><Key>dir/a</Key></Object></Delete>`,
		`<Delete><Quiet>yes</Quiet><Object><Key>obj</Key></Object></Delete>`,
		`<Delete><Object><Key></Key></Object></Delete>`,
		`<Delete><Object><Key>` + strings.Repeat("k", 851) + `</Key></Object></Delete>`,
		`<Delete></Delete>`, `<Delete>`, ``, `<Other><Object><Key>obj</Key></Object></Other>`,
		`<Delete><Object><Key>obj</Key></Object></Delete><x/>`,
		`<Delete><Object><Key>a&amp;b&lt;c</Key><VersionId>1</VersionId></Object></Delete>`,
		`<Delete><Object><Key>&#0;</Key></Object></Delete>`,
		`<Delete><Object><Key>obj</Key></Object><Object><Key>obj</Key></Object></Delete>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := newFuzzHandler(t)
		req := httptest.NewRequest("POST", "http://127.0.0.1/?delete", bytes.NewReader(body))
		sum := md5.Sum(body)
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
		rec := signAndServe(t, h, req)
		code := checkAnswer(t, req, rec)
		if code == "MalformedXML" {
			return
		}
		if code != "" {
			t.Fatalf("Delete with %q: %d %q", body, rec.Code, code)
		}
		var doc struct {
			XMLName xml.Name
			Quiet   bool
			Objects []struct{ Key string } `xml:"Object"`
		}
		if err := strictXML(body, &doc); err != nil || doc.XMLName.Local != "Delete" || len(doc.Objects) == 0 {
			t.Fatalf("Delete accepted a body that is no Delete document (%v): %q", err, body)
		}
		var res deleteResult
		if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("DeleteResult: %v", err)
		}
		if len(res.Errors)+len(res.Deleted) > len(doc.Objects) || (!doc.Quiet && len(res.Errors)+len(res.Deleted) != len(doc.Objects)) {
			t.Fatalf("%d keys, %d deleted, %d errors", len(doc.Objects), len(res.Deleted), len(res.Errors))
		}
		for _, o := range doc.Objects {
			if _, err := h.store.getObject(DefaultBucket, o.Key); err == nil {
				ok := false
				for _, e := range res.Errors {
					ok = ok || e.Key == o.Key
				}
				if !ok {
					t.Fatalf("key %q is still there and reported deleted", o.Key)
				}
			}
		}
	})
}

// FuzzAuthorization fuzzes the signature parser: the Authorization header,
// the merged "sign" query parameter of presigned URLs and separate q-* query
// parameters. Seeds include signatures made now by the SDK, which must pass.
func FuzzAuthorization(f *testing.F) {
	valid := func(target string) string {
		req := httptest.NewRequest("GET", target, nil)
		cos.AddAuthorizationHeader(DefaultSecretID, DefaultSecretKey, "", req, cos.NewAuthTime(time.Hour))
		return req.Header.Get("Authorization")
	}
	for _, s := range []string{
		valid("http://127.0.0.1/obj"),
		"q-sign-algorithm=sha1&q-ak=" + DefaultSecretID + "&q-sign-time=0;1&q-key-time=0;1&q-header-list=&q-url-param-list=&q-signature=00",
		"q-sign-algorithm=sha1&q-ak=" + DefaultSecretID + "&q-sign-time=1;0&q-key-time=1;0&q-header-list=&q-url-param-list=&q-signature=00",
		"q-sign-algorithm=sha1&q-ak=" + DefaultSecretID + "&q-sign-time=9999999999;9999999999&q-key-time=9999999999;9999999999&q-header-list=&q-url-param-list=&q-signature=00",
		"q-sign-algorithm=sha1&q-ak=" + DefaultSecretID + "&q-sign-time=-9223372036854775808;9223372036854775807&q-key-time=0;9223372036854775807&q-header-list=host;;x&q-url-param-list=;;&q-signature=00",
		"q-sign-algorithm=md5&q-ak=x", "q-ak=nobody", "", "&&&", "=", "q-sign-time=%zz", "q-sign-algorithm=sha1%26q-ak%3D1",
		"Q-SIGN-ALGORITHM=sha1&Q-AK=" + DefaultSecretID,
	} {
		for form := uint8(0); form < 3; form++ {
			f.Add(s, form)
		}
	}
	f.Fuzz(func(t *testing.T, auth string, form uint8) {
		if strings.ContainsAny(auth, "\r\n") {
			return
		}
		h := newFuzzHandler(t)
		req := httptest.NewRequest("GET", "http://127.0.0.1/obj", nil)
		switch form % 3 {
		case 0:
			req.Header.Set("Authorization", auth)
		case 1:
			req.URL.RawQuery = "sign=" + url.QueryEscape(auth)
		case 2:
			req.URL.RawQuery = auth
		}
		rec := fuzzServe(t, h, req)
		code := checkAnswer(t, req, rec)
		switch code {
		case "", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed":
		case "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "NotImplemented", "InvalidRequest", "InvalidArgument",
			"PathStyleDomainForbidden", "NoSuchBucket":
			// An AWS-style authorization (sigv4.go, fuzzed by FuzzSigV4).
			if !isSigV4(req, parseQuery(req.URL.RawQuery)) {
				t.Fatalf("auth %q (form %d): %d %q", auth, form%3, rec.Code, code)
			}
		default:
			t.Fatalf("auth %q (form %d): %d %q", auth, form%3, rec.Code, code)
		}
		if code == "" && !bytes.Equal(rec.Body.Bytes(), fuzzObjects["obj"]) {
			t.Fatalf("auth %q (form %d): %d with the wrong body", auth, form%3, rec.Code)
		}
		if code == "" && !strings.Contains(auth, "q-signature=") && !strings.Contains(strings.ToLower(auth), "q-signature") {
			t.Fatalf("auth %q without a signature passed", auth)
		}
	})
}

// TestFuzzFixtures checks that the fuzz handler starts as the fuzzers
// assume.
func TestFuzzFixtures(t *testing.T) {
	h := newFuzzHandler(t)
	for key, data := range fuzzObjects {
		req := httptest.NewRequest("GET", "http://127.0.0.1/"+url.PathEscape(key), nil)
		if rec := signAndServe(t, h, req); rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), data) {
			t.Errorf("GET %q: %d", key, rec.Code)
		}
	}
	if _, parts, err := h.store.upload(DefaultBucket, fuzzUploadKey, fuzzUploadID); err != nil || len(parts) != len(fuzzParts) {
		t.Errorf("fixture upload: %v, %d parts", err, len(parts))
	}
}
