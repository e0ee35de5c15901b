package costest

import (
	"crypto/md5"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// serveSigned signs req with the default credential and serves it on h
// without a listener.
func serveSigned(h *Handler, req *http.Request) *httptest.ResponseRecorder {
	cos.AddAuthorizationHeader(DefaultSecretID, DefaultSecretKey, "", req, cos.NewAuthTime(time.Hour))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func b64md5(s string) string {
	sum := md5.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestRequestErrors covers the error codes the SDK cannot provoke because it
// checks locally or always sends well-formed requests.
func TestRequestErrors(t *testing.T) {
	h, err := NewHandler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const deleteBody = "<Delete><Quiet>false</Quiet><Object><Key>a</Key></Object></Delete>"
	tests := []struct {
		name          string
		method, path  string
		body          string
		contentLength int64 // -1: chunked; 0: len(body)
		headers       map[string]string
		status        int
		code          string
	}{
		{"key too long", "PUT", "/" + strings.Repeat("k", 851), "x", 0, nil, 400, "KeyTooLong"},
		{"key of 850 bytes", "PUT", "/" + strings.Repeat("k", 850), "x", 0, nil, 200, ""},
		{"object over 5 GB", "PUT", "/big", "x", 5<<30 + 1, nil, 400, "EntityTooLarge"},
		{"bad Content-MD5", "PUT", "/k", "data", 0, map[string]string{"Content-MD5": b64md5("other")}, 400, "BadDigest"},
		{"malformed Content-MD5", "PUT", "/k", "data", 0, map[string]string{"Content-MD5": "zz"}, 400, "InvalidDigest"},
		{"chunked PUT", "PUT", "/chunked", "data", -1, nil, 200, ""},
		{"delete multiple without Content-MD5", "POST", "/?delete", deleteBody, 0, nil, 400, "MissingContentMD5"},
		{"delete multiple with wrong Content-MD5", "POST", "/?delete", deleteBody, 0, map[string]string{"Content-MD5": b64md5("x")}, 400, "BadDigest"},
		{"delete multiple malformed", "POST", "/?delete", "<Delete>", 0, map[string]string{"Content-MD5": b64md5("<Delete>")}, 400, "MalformedXML"},
		{"append without position", "POST", "/k?append", "x", 0, nil, 400, "InvalidArgument"},
		{"append without Content-Length", "POST", "/k?append&position=0", "x", -1, nil, 411, "MissingContentLength"},
		{"list parts without upload id", "GET", "/k?uploadId=", "", 0, nil, 400, "ListPartUploadIdIsEmpty"},
		{"negative max-keys", "GET", "/?max-keys=-1", "", 0, nil, 400, "InvalidArgument"},
		{"complete malformed", "POST", "/k?uploadId=x", "<nope", 0, nil, 400, "MalformedXML"},
		{"unsupported subresource", "GET", "/k?acl", "", 0, nil, 501, "NotImplemented"},
		{"unknown method", "PATCH", "/k", "", 0, nil, 405, "MethodNotAllowed"},
		{"range with two parts", "GET", "/chunked", "", 0, map[string]string{"Range": "bytes=0-1,2-3"}, 400, "InvalidArgument"},
		{"unknown bucket host", "GET", "/k", "", 0, map[string]string{"Host": "nope-1250000000.cos.ap-guangzhou.myqcloud.com"}, 404, "NoSuchBucket"},
		{"bucket host in another region", "GET", "/chunked", "", 0, map[string]string{"Host": DefaultBucket + ".cos.ap-beijing.myqcloud.com"}, 404, "NoSuchBucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			req := httptest.NewRequest(tt.method, "http://127.0.0.1"+tt.path, body)
			switch tt.contentLength {
			case 0:
			case -1:
				req.ContentLength = -1
			default:
				req.ContentLength = tt.contentLength
				req.Header.Set("Content-Length", "5368709121")
			}
			for k, v := range tt.headers {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			rec := serveSigned(h, req)
			resp := rec.Result()
			got := readAll(resp)
			if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(got, "<Code>"+tt.code+"</Code>")) {
				t.Fatalf("status %d body %s, want %d %s", resp.StatusCode, got, tt.status, tt.code)
			}
			if tt.code != "" && (resp.Header.Get("x-cos-trace-id") == "" || resp.Header.Get("x-cos-request-id") == "") {
				t.Errorf("error without request and trace ids: %v", resp.Header)
			}
		})
	}
}

func TestHeadErrorHasNoBody(t *testing.T) {
	h, _ := NewHandler(Options{})
	defer h.Close()
	rec := serveSigned(h, httptest.NewRequest("HEAD", "http://127.0.0.1/missing", nil))
	if rec.Code != 404 || rec.Body.Len() != 0 {
		t.Errorf("HEAD 404: status %d, %d body bytes", rec.Code, rec.Body.Len())
	}
}
