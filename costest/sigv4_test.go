package costest

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSigV4Vectors pins the SigV4 canonicalisation and key derivation to
// the examples of Amazon's "Signature Calculations for the Authorization
// Header" and "Query String Authentication" pages (S3 API reference).
func TestSigV4Vectors(t *testing.T) {
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	emptySHA := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	at := time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, method, target string
		headers              map[string]string
		signed               []string
		payload              string
		want                 string
	}{
		{
			name: "GET Object", method: "GET", target: "/test.txt",
			headers: map[string]string{"Range": "bytes=0-9", "X-Amz-Content-Sha256": emptySHA, "X-Amz-Date": "20130524T000000Z"},
			signed:  []string{"host", "range", "x-amz-content-sha256", "x-amz-date"}, payload: emptySHA,
			want: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
		},
		{
			name: "PUT Object", method: "PUT", target: "/test$file.text",
			headers: map[string]string{
				"Date": "Fri, 24 May 2013 00:00:00 GMT", "X-Amz-Date": "20130524T000000Z", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
				"X-Amz-Content-Sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
			},
			signed:  []string{"date", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-storage-class"},
			payload: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
			want:    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
		},
		{
			name: "GET Bucket lifecycle", method: "GET", target: "/?lifecycle",
			headers: map[string]string{"X-Amz-Content-Sha256": emptySHA, "X-Amz-Date": "20130524T000000Z"},
			signed:  []string{"host", "x-amz-content-sha256", "x-amz-date"}, payload: emptySHA,
			want: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
		},
		{
			name: "GET Bucket (list objects)", method: "GET", target: "/?max-keys=2&prefix=J",
			headers: map[string]string{"X-Amz-Content-Sha256": emptySHA, "X-Amz-Date": "20130524T000000Z"},
			signed:  []string{"host", "x-amz-content-sha256", "x-amz-date"}, payload: emptySHA,
			want: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
		},
		{
			name: "presigned GET", method: "GET",
			target: "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host",
			signed: []string{"host"}, payload: unsignedPayload,
			want: "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://examplebucket.s3.amazonaws.com"+tt.target, nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			f := &sigV4Fields{date: "20130524", region: "us-east-1", service: "s3", signedHeaders: tt.signed, amzDate: at}
			_, sts := sigV4StringToSign(req, parseQuery(req.URL.RawQuery), f, tt.payload)
			if got := sigV4Signature(secret, f, sts); got != tt.want {
				t.Errorf("signature = %s, want %s\n%s", got, tt.want, sts)
			}
		})
	}
}

// signV4 signs req in the Authorization header as of now, with every
// x-amz-* and content-md5 header signed.
func signV4(req *http.Request, id, secret string, now time.Time, payloadHash string) {
	req.Header.Set("X-Amz-Date", now.UTC().Format(sigV4TimeFormat))
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	signed := []string{"host"}
	for name := range req.Header {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-amz-") || n == "content-md5" {
			signed = append(signed, n)
		}
	}
	slices.Sort(signed)
	f := &sigV4Fields{date: now.UTC().Format("20060102"), region: DefaultRegion, service: "s3", signedHeaders: signed, amzDate: now.UTC()}
	_, sts := sigV4StringToSign(req, parseQuery(req.URL.RawQuery), f, payloadHash)
	req.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s/%s/s3/aws4_request, SignedHeaders=%s, Signature=%s",
		sigV4Algorithm, id, f.date, f.region, strings.Join(signed, ";"), sigV4Signature(secret, f, sts)))
}

// presignV4 adds a SigV4 query signature valid from now for expires.
func presignV4(req *http.Request, id, secret string, now time.Time, expires time.Duration, extra url.Values) {
	f := &sigV4Fields{date: now.UTC().Format("20060102"), region: DefaultRegion, service: "s3", signedHeaders: []string{"host"}, amzDate: now.UTC()}
	q := parseQuery(req.URL.RawQuery)
	for k, vs := range extra {
		q[k] = vs
	}
	q.Set("X-Amz-Algorithm", sigV4Algorithm)
	q.Set("X-Amz-Credential", id+"/"+f.date+"/"+f.region+"/s3/aws4_request")
	q.Set("X-Amz-Date", now.UTC().Format(sigV4TimeFormat))
	q.Set("X-Amz-Expires", fmt.Sprint(int(expires.Seconds())))
	q.Set("X-Amz-SignedHeaders", "host")
	_, sts := sigV4StringToSign(req, q, f, unsignedPayload)
	q.Set("X-Amz-Signature", sigV4Signature(secret, f, sts))
	req.URL.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
}

// storedObject finds an object of the default bucket.
func storedObject(h *Handler, key string) (*objectRecord, error) {
	o, release, err := h.store.openObject(DefaultBucket, key)
	if err == nil {
		release()
	}
	return o, err
}

// s3Handler is a memory emulator whose default bucket predates 2024, so
// path-style requests reach it.
func s3Handler(t *testing.T, opts Options) *Handler {
	t.Helper()
	if opts.BucketCreated.IsZero() {
		opts.BucketCreated = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)
	}
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// serveV4 builds a path-style request for the default bucket, signs it
// with the default key and serves it.
func serveV4(t *testing.T, h *Handler, method, target string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1/"+DefaultBucket+target, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(body))
	return fuzzServe(t, h, req)
}

func TestSigV4Header(t *testing.T) {
	h := s3Handler(t, Options{})
	data := []byte("hello, s3")
	if rec := serveV4(t, h, "PUT", "/a/b.txt", data, nil); rec.Code != 200 || rec.Header().Get("ETag") == "" {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	if rec := serveV4(t, h, "GET", "/a/b.txt", nil, nil); rec.Code != 200 || rec.Body.String() != string(data) {
		t.Fatalf("GET: %d %q", rec.Code, rec.Body)
	}
	// A key needing escapes signs its encoded path.
	if rec := serveV4(t, h, "PUT", "/sp%20ace+plus/%E6%97%A5", data, nil); rec.Code != 200 {
		t.Fatalf("PUT escaped key: %d %s", rec.Code, rec.Body)
	}
	if _, err := storedObject(h, "sp ace+plus/日"); err != nil {
		t.Fatalf("escaped key not stored under its decoded name: %v", err)
	}

	unsigned := httptest.NewRequest("PUT", "http://127.0.0.1/"+DefaultBucket+"/unsigned", bytes.NewReader(data))
	signV4(unsigned, DefaultSecretID, DefaultSecretKey, time.Now(), unsignedPayload)
	if rec := fuzzServe(t, h, unsigned); rec.Code != 200 {
		t.Fatalf("UNSIGNED-PAYLOAD PUT: %d %s", rec.Code, rec.Body)
	}

	refused := []struct {
		name   string
		mutate func(*http.Request)
		status int
		code   string
	}{
		{"wrong secret", func(r *http.Request) { signV4(r, DefaultSecretID, "wrong", time.Now(), sha256Hex(data)) }, 403, "SignatureDoesNotMatch"},
		{"unknown key", func(r *http.Request) { signV4(r, "AKIDnobody", DefaultSecretKey, time.Now(), sha256Hex(data)) }, 403, "InvalidAccessKeyId"},
		{"skewed back", func(r *http.Request) {
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now().Add(-20*time.Minute), sha256Hex(data))
		}, 403, "RequestTimeTooSkewed"},
		{"skewed ahead", func(r *http.Request) {
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now().Add(20*time.Minute), sha256Hex(data))
		}, 403, "RequestTimeTooSkewed"},
		{"body not the signed one", func(r *http.Request) {
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex([]byte("other")))
		}, 400, "XAmzContentSHA256Mismatch"},
		{"aws-chunked", func(r *http.Request) {
			r.Header.Set("Content-Encoding", "aws-chunked")
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now(), "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		}, 501, "NotImplemented"},
		{"signed aws-chunked", func(r *http.Request) {
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		}, 501, "NotImplemented"},
		{"no x-amz-content-sha256", func(r *http.Request) {
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now(), "")
		}, 400, "InvalidRequest"},
		{"signed header changed", func(r *http.Request) {
			r.Header.Set("X-Amz-Meta-A", "1")
			signV4(r, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(data))
			r.Header.Set("X-Amz-Meta-A", "2")
		}, 403, "SignatureDoesNotMatch"},
		{"no Credential", func(r *http.Request) {
			r.Header.Set("Authorization", sigV4Algorithm+" SignedHeaders=host, Signature=00")
		}, 400, "AuthorizationHeaderMalformed"},
		{"Signature Version 2", func(r *http.Request) { r.Header.Set("Authorization", "AWS "+DefaultSecretID+":c2ln") }, 501, "NotImplemented"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "http://127.0.0.1/"+DefaultBucket+"/refused", bytes.NewReader(data))
			tt.mutate(req)
			rec := fuzzServe(t, h, req)
			wantAnswer(t, req, rec, tt.status, tt.code)
			if _, err := storedObject(h, "refused"); err == nil {
				t.Fatalf("a refused PUT stored the object")
			}
		})
	}
}

// TestSigV4Unsupported: S3 features COS does not have are refused, never
// answered as a plainer request.
func TestSigV4Unsupported(t *testing.T) {
	h := s3Handler(t, Options{})
	serveV4(t, h, "PUT", "/o", []byte("whole object"), nil)
	for _, target := range []string{"/o?partNumber=1", "/o?tagging", "/?versions", "/?acl"} {
		req := httptest.NewRequest("GET", "http://127.0.0.1/"+DefaultBucket+target, nil)
		signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(nil))
		wantAnswer(t, req, fuzzServe(t, h, req), 501, "NotImplemented")
	}
}

func TestSigV4Presign(t *testing.T) {
	h := s3Handler(t, Options{})
	data := []byte("presigned")
	serveV4(t, h, "PUT", "/p", data, nil)
	get := func(now time.Time, expires time.Duration, tamper func(*http.Request)) (*http.Request, *httptest.ResponseRecorder) {
		req := httptest.NewRequest("GET", "http://127.0.0.1/"+DefaultBucket+"/p", nil)
		presignV4(req, DefaultSecretID, DefaultSecretKey, now, expires, nil)
		if tamper != nil {
			tamper(req)
		}
		return req, fuzzServe(t, h, req)
	}
	if _, rec := get(time.Now(), time.Minute, nil); rec.Code != 200 || rec.Body.String() != string(data) {
		t.Fatalf("presigned GET: %d %s", rec.Code, rec.Body)
	}
	// Signed an hour ago for two: still valid, however skewed.
	if _, rec := get(time.Now().Add(-time.Hour), 2*time.Hour, nil); rec.Code != 200 {
		t.Fatalf("presigned GET signed an hour ago: %d %s", rec.Code, rec.Body)
	}
	req, rec := get(time.Now().Add(-2*time.Minute), time.Minute, nil)
	wantAnswer(t, req, rec, 403, "AccessDenied")
	if !strings.Contains(rec.Body.String(), "Request has expired") {
		t.Fatalf("expired URL: %s", rec.Body)
	}
	req, rec = get(time.Now(), 8*24*time.Hour, nil)
	wantAnswer(t, req, rec, 400, "AuthorizationQueryParametersError")
	req, rec = get(time.Now(), time.Minute, func(r *http.Request) { r.URL.Path = "/" + DefaultBucket + "/other" })
	wantAnswer(t, req, rec, 403, "SignatureDoesNotMatch")
	req, rec = get(time.Now(), time.Minute, func(r *http.Request) { r.URL.RawQuery += "&response-content-type=text%2Fhtml" })
	wantAnswer(t, req, rec, 403, "SignatureDoesNotMatch")
}

func TestSigV4SessionToken(t *testing.T) {
	h := s3Handler(t, Options{Credentials: []Credential{{SecretID: "tmpid", SecretKey: "tmpkey", SessionToken: "tok"}}})
	put := func(token string) (*http.Request, *httptest.ResponseRecorder) {
		req := httptest.NewRequest("PUT", "http://127.0.0.1/"+DefaultBucket+"/t", strings.NewReader("x"))
		if token != "" {
			req.Header.Set("X-Amz-Security-Token", token)
		}
		signV4(req, "tmpid", "tmpkey", time.Now(), sha256Hex([]byte("x")))
		return req, fuzzServe(t, h, req)
	}
	if _, rec := put("tok"); rec.Code != 200 {
		t.Fatalf("with token: %d %s", rec.Code, rec.Body)
	}
	for _, tok := range []string{"", "other"} {
		req, rec := put(tok)
		wantAnswer(t, req, rec, 403, "AccessDenied")
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1/"+DefaultBucket+"/t", nil)
	presignV4(req, "tmpid", "tmpkey", time.Now(), time.Minute, url.Values{"X-Amz-Security-Token": {"tok"}})
	if rec := fuzzServe(t, h, req); rec.Code != 200 || rec.Body.String() != "x" {
		t.Fatalf("presigned with token: %d %s", rec.Code, rec.Body)
	}
}

// TestSigV4Addressing: virtual-hosted requests always reach the bucket;
// path-style ones only a bucket created before 2024.
func TestSigV4Addressing(t *testing.T) {
	for _, tt := range []struct {
		name    string
		created time.Time
		host    string
		path    string
		status  int
		code    string
	}{
		{"path-style, old bucket", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "127.0.0.1:9000", "/" + DefaultBucket + "/k", 200, ""},
		{"path-style on the region endpoint", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "cos.ap-guangzhou.myqcloud.com", "/" + DefaultBucket + "/k", 200, ""},
		{"path-style, new bucket", time.Time{}, "127.0.0.1:9000", "/" + DefaultBucket + "/k", 403, "PathStyleDomainForbidden"},
		{"path-style, no such bucket", time.Time{}, "127.0.0.1:9000", "/other-1250000000/k", 404, "NoSuchBucket"},
		{"path-style, not a bucket name", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "127.0.0.1:9000", "/Not_A_Bucket/k", 404, "NoSuchBucket"},
		{"path-style, upper case", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "127.0.0.1:9000", "/" + strings.ToUpper(DefaultBucket) + "/k", 404, "NoSuchBucket"},
		{"path-style PUT Bucket of a bad name", time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), "127.0.0.1:9000", "/Bad_Name", 400, "InvalidBucketName"},
		{"virtual-hosted, new bucket", time.Time{}, bucketHost(DefaultBucket, DefaultRegion), "/k", 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHandler(Options{BucketCreated: tt.created})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			req := httptest.NewRequest("PUT", "http://"+tt.host+tt.path, strings.NewReader("v"))
			signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex([]byte("v")))
			rec := fuzzServe(t, h, req)
			wantAnswer(t, req, rec, tt.status, tt.code)
			_, err = storedObject(h, "k")
			if stored := err == nil; stored != (tt.status == 200) {
				t.Fatalf("stored = %v after %d", stored, rec.Code)
			}
		})
	}
	// GetBucketLocation, as S3 tools ask before anything else, and the
	// Go SDK's GetLocation.
	h0 := s3Handler(t, Options{Region: "ap-beijing"})
	if rec := serveV4(t, h0, "GET", "/?location", nil, nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "<LocationConstraint>ap-beijing</LocationConstraint>") {
		t.Fatalf("GetBucketLocation: %d %s", rec.Code, rec.Body)
	}
	// ListBuckets on the endpoint itself.
	h := s3Handler(t, Options{})
	req := httptest.NewRequest("GET", "http://127.0.0.1:9000/", nil)
	signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(nil))
	if rec := fuzzServe(t, h, req); rec.Code != 200 || !strings.Contains(rec.Body.String(), "<Name>"+DefaultBucket+"</Name>") {
		t.Fatalf("ListBuckets: %d %s", rec.Code, rec.Body)
	}
}

// TestSigV4AmzHeaders: x-amz-* headers act as their x-cos-* counterparts,
// and answers to SigV4 requests name metadata x-amz-*.
func TestSigV4AmzHeaders(t *testing.T) {
	h := s3Handler(t, Options{})
	data := randomBytes(3000, 5)
	rec := serveV4(t, h, "PUT", "/src", data, map[string]string{
		"X-Amz-Meta-Color": "blue", "X-Amz-Storage-Class": "STANDARD_IA", "X-Amz-Server-Side-Encryption": "cos/kms",
		"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "kms-1", "X-Amz-Acl": "private", "Content-Type": "text/plain",
	})
	if rec.Code != 200 || rec.Header().Get("X-Amz-Server-Side-Encryption") != "cos/kms" ||
		rec.Header().Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "kms-1" {
		t.Fatalf("PUT: %d %v", rec.Code, rec.Header())
	}
	if o, _ := storedObject(h, "src"); o.Meta.Headers["X-Cos-Server-Side-Encryption-Cos-Kms-Key-Id"] != "kms-1" {
		t.Fatalf("stored headers %v", o.Meta.Headers)
	}
	rec = serveV4(t, h, "HEAD", "/src", nil, nil)
	if rec.Header().Get("X-Amz-Meta-Color") != "blue" || rec.Header().Get("X-Amz-Storage-Class") != "STANDARD_IA" || rec.Header().Get("X-Cos-Meta-Color") != "" {
		t.Fatalf("HEAD over SigV4: %v", rec.Header())
	}
	// A q-sign reader sees the same object in COS's names.
	req := httptest.NewRequest("HEAD", "http://127.0.0.1/src", nil)
	if rec := signAndServe(t, h, req); rec.Header().Get("X-Cos-Meta-Color") != "blue" || rec.Header().Get("X-Cos-Storage-Class") != "STANDARD_IA" {
		t.Fatalf("HEAD over q-sign: %v", rec.Header())
	}

	// CopyObject with S3's copy source form, a condition and REPLACE.
	o, _ := storedObject(h, "src")
	rec = serveV4(t, h, "PUT", "/dst", nil, map[string]string{
		"X-Amz-Copy-Source": "/" + DefaultBucket + "/src", "X-Amz-Copy-Source-If-Match": quote(o.ETag),
		"X-Amz-Metadata-Directive": "REPLACE", "X-Amz-Meta-Shape": "round",
	})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<CopyObjectResult>") {
		t.Fatalf("CopyObject: %d %s", rec.Code, rec.Body)
	}
	rec = serveV4(t, h, "GET", "/dst", nil, nil)
	if !bytes.Equal(rec.Body.Bytes(), data) || rec.Header().Get("X-Amz-Meta-Shape") != "round" || rec.Header().Get("X-Amz-Meta-Color") != "" {
		t.Fatalf("copied object: %d %v", rec.Code, rec.Header())
	}
	req = httptest.NewRequest("PUT", "http://127.0.0.1/"+DefaultBucket+"/dst2", nil)
	req.Header.Set("X-Amz-Copy-Source", DefaultBucket+"/src")
	req.Header.Set("X-Amz-Copy-Source-If-Match", `"0000"`)
	signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(nil))
	wantAnswer(t, req, fuzzServe(t, h, req), 412, "PreconditionFailed")

	// Upload Part - Copy with a range.
	rec = serveV4(t, h, "POST", "/mp?uploads", nil, nil)
	var init initiateResult
	if err := xml.Unmarshal(rec.Body.Bytes(), &init); err != nil || init.UploadID == "" {
		t.Fatalf("initiate: %d %s", rec.Code, rec.Body)
	}
	rec = serveV4(t, h, "PUT", "/mp?partNumber=1&uploadId="+init.UploadID, nil, map[string]string{
		"X-Amz-Copy-Source": DefaultBucket + "/src", "X-Amz-Copy-Source-Range": "bytes=10-19",
	})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<CopyPartResult>") {
		t.Fatalf("UploadPartCopy: %d %s", rec.Code, rec.Body)
	}
	_, parts, _ := h.store.upload(DefaultBucket, "mp", init.UploadID)
	if len(parts) != 1 || parts[0].Size != 10 {
		t.Fatalf("copied part: %+v", parts)
	}
}

// TestSigV4DeleteObjects: multi-object delete needs Content-MD5, as COS
// asks of AWS SDKs that send only x-amz-checksum-*.
func TestSigV4DeleteObjects(t *testing.T) {
	h := s3Handler(t, Options{})
	for _, k := range []string{"d/1", "d/2"} {
		serveV4(t, h, "PUT", "/"+k, []byte(k), nil)
	}
	body := []byte(`<Delete><Object><Key>d/1</Key></Object><Object><Key>d/2</Key></Object></Delete>`)
	req := httptest.NewRequest("POST", "http://127.0.0.1/"+DefaultBucket+"/?delete", bytes.NewReader(body))
	req.Header.Set("X-Amz-Checksum-Crc32", "AAAAAA==")
	req.Header.Set("X-Amz-Sdk-Checksum-Algorithm", "CRC32")
	signV4(req, DefaultSecretID, DefaultSecretKey, time.Now(), sha256Hex(body))
	wantAnswer(t, req, fuzzServe(t, h, req), 400, "MissingContentMD5")
	sum := md5.Sum(body)
	rec := serveV4(t, h, "POST", "/?delete", body, map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(sum[:])})
	var res deleteResult
	if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Deleted) != 2 {
		t.Fatalf("DeleteObjects: %d %s", rec.Code, rec.Body)
	}
}

func TestListObjectsV2(t *testing.T) {
	h := s3Handler(t, Options{})
	keys := []string{"a/1", "a/2", "b", "c/x/1", "c/y", "d"}
	for _, k := range keys {
		serveV4(t, h, "PUT", "/"+k, []byte(k), nil)
	}
	list := func(query string) listBucketV2Result {
		t.Helper()
		rec := serveV4(t, h, "GET", "/?list-type=2&"+query, nil, nil)
		var res listBucketV2Result
		if err := xml.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != 200 {
			t.Fatalf("list %s: %d %s", query, rec.Code, rec.Body)
		}
		return res
	}
	var got []string
	token := ""
	pages := 0
	for {
		q := "delimiter=%2F&max-keys=2"
		if token != "" {
			q += "&continuation-token=" + url.QueryEscape(token)
		}
		res := list(q)
		pages++
		if res.KeyCount != len(res.Contents)+len(res.CommonPrefixes) || res.ContinuationToken != token {
			t.Fatalf("page %+v", res)
		}
		for _, p := range res.CommonPrefixes {
			got = append(got, p.Prefix)
		}
		for _, c := range res.Contents {
			if c.Owner != nil {
				t.Fatalf("owner listed without fetch-owner")
			}
			got = append(got, c.Key)
		}
		if !res.IsTruncated {
			break
		}
		token = res.NextContinuationToken
	}
	slices.Sort(got)
	if want := []string{"a/", "b", "c/", "d"}; !slices.Equal(got, want) || pages != 2 {
		t.Fatalf("listed %v in %d pages, want %v in 2", got, pages, want)
	}
	res := list("start-after=c%2Fx%2F1&fetch-owner=true")
	if len(res.Contents) != 2 || res.Contents[0].Key != "c/y" || res.Contents[0].Owner == nil || res.StartAfter != "c/x/1" {
		t.Fatalf("start-after: %+v", res)
	}
	rec := serveV4(t, h, "GET", "/?list-type=2&continuation-token=%25%25", nil, nil)
	if rec.Code != 400 {
		t.Fatalf("bad token: %d", rec.Code)
	}
	// A q-sign request stays one with X-Amz-* parameters in its query.
	req0 := httptest.NewRequest("GET", "http://127.0.0.1/a%2F1?X-Amz-Algorithm=x", nil)
	if rec := signAndServe(t, h, req0); rec.Code != 200 || rec.Body.String() != "a/1" {
		t.Fatalf("q-sign GET with X-Amz-Algorithm in its query: %d %s", rec.Code, rec.Body)
	}
	// q-sign requests keep GET Bucket (v1), whatever list-type says.
	req := httptest.NewRequest("GET", "http://127.0.0.1/?list-type=2&max-keys=1", nil)
	if rec := signAndServe(t, h, req); !strings.Contains(rec.Body.String(), "<Marker>") || strings.Contains(rec.Body.String(), "KeyCount") {
		t.Fatalf("q-sign list-type=2: %s", rec.Body)
	}
}

// FuzzSigV4 fuzzes the SigV4 parser: the Authorization header and the
// presigned query. Seeds include valid signatures, which must pass; nothing
// unsigned may.
func FuzzSigV4(f *testing.F) {
	now := time.Now()
	target := "http://" + bucketHost(DefaultBucket, DefaultRegion) + "/obj"
	valid := httptest.NewRequest("GET", target, nil)
	signV4(valid, DefaultSecretID, DefaultSecretKey, now, sha256Hex(nil))
	presigned := httptest.NewRequest("GET", target, nil)
	presignV4(presigned, DefaultSecretID, DefaultSecretKey, now, time.Hour, nil)
	date := now.UTC().Format(sigV4TimeFormat)
	for _, s := range []struct {
		auth, query string
	}{
		{valid.Header.Get("Authorization"), ""},
		{"", presigned.URL.RawQuery},
		{sigV4Algorithm + " Credential=" + DefaultSecretID + "/" + date[:8] + "/r/s3/aws4_request, SignedHeaders=host, Signature=00", ""},
		{sigV4Algorithm + " Credential=a/b/c, SignedHeaders=, Signature=", ""},
		{sigV4Algorithm + " Credential=" + DefaultSecretID + "/99999999/r/s3/aws4_request,SignedHeaders=host;;x,Signature=zz", ""},
		{sigV4Algorithm, ""}, {"AWS ", ""}, {"AWS4-HMAC-SHA256,,,==", ""},
		{"", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Date=x&X-Amz-Expires=-1&X-Amz-SignedHeaders=host&X-Amz-Signature=00"},
		{"", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + DefaultSecretID + "%2F" + date[:8] + "%2Fr%2Fs3%2Faws4_request&X-Amz-Date=" + date + "&X-Amz-Expires=99999999999999999999&X-Amz-SignedHeaders=host&X-Amz-Signature=00"},
		{"", "X-Amz-Algorithm=HMAC"},
	} {
		f.Add(s.auth, s.query, date, sha256Hex(nil))
	}
	f.Fuzz(func(t *testing.T, auth, query, amzDate, contentSHA string) {
		if strings.ContainsAny(auth+amzDate+contentSHA, "\r\n") {
			return
		}
		h := newFuzzHandler(t)
		req := httptest.NewRequest("GET", target, nil)
		req.URL.RawQuery = query
		if auth != "" {
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Amz-Date", amzDate)
			req.Header.Set("X-Amz-Content-Sha256", contentSHA)
		}
		rec := fuzzServe(t, h, req)
		code := checkAnswer(t, req, rec)
		switch code {
		case "", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed",
			"AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "NotImplemented", "InvalidRequest",
			"InvalidArgument", "PathStyleDomainForbidden", "ExpiredToken":
		default:
			t.Fatalf("auth %q query %q: %d %q", auth, query, rec.Code, code)
		}
		if code == "" && !bytes.Equal(rec.Body.Bytes(), fuzzObjects["obj"]) {
			t.Fatalf("auth %q query %q: %d with the wrong body", auth, query, rec.Code)
		}
		if code == "" && !strings.Contains(auth, "Signature=") && !strings.Contains(query, "X-Amz-Signature=") {
			t.Fatalf("auth %q query %q passed without a signature", auth, query)
		}
	})
}
