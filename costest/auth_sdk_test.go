package costest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// presign returns a presigned URL for key.
func presign(t *testing.T, c *cos.Client, srv *Server, method, key string, opt *cos.PresignedURLOptions) string {
	t.Helper()
	var o any // the SDK dereferences a typed nil
	if opt != nil {
		o = opt
	}
	u, err := c.Object.GetPresignedURL(context.Background(), method, key, srv.SecretID, srv.SecretKey, time.Hour, o)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

func authTime(start, end time.Duration) *cos.AuthTime {
	now := time.Now()
	return &cos.AuthTime{SignStartTime: now.Add(start), SignEndTime: now.Add(end), KeyStartTime: now.Add(start), KeyEndTime: now.Add(end)}
}

// doPlain sends an unsigned-by-transport request and returns status, the
// COS error code found in the body, and the body.
func doPlain(t *testing.T, method, rawURL string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, rawURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	code := ""
	if i := strings.Index(body, "<Code>"); i >= 0 {
		code = body[i+6 : i+6+strings.Index(body[i+6:], "<")]
	}
	return resp.StatusCode, code, body
}

func TestPresignedURLs(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	key := "dir/a b+c.txt"
	putBytes(t, c, key, []byte("presigned"))
	tests := []struct {
		name   string
		method string // method sent
		url    string
		status int
		code   string
	}{
		{"GET", "GET", presign(t, c, srv, "GET", key, nil), 200, ""},
		{"HEAD", "HEAD", presign(t, c, srv, "HEAD", key, nil), 200, ""},
		{"merged sign parameter", "GET", presign(t, c, srv, "GET", key, &cos.PresignedURLOptions{SignMerged: true}), 200, ""},
		{"extra signed query", "GET", presign(t, c, srv, "GET", key, &cos.PresignedURLOptions{Query: &url.Values{"response-content-type": {"text/plain"}}}), 200, ""},
		{"GET URL used for PUT", "PUT", presign(t, c, srv, "GET", key, nil), 403, "SignatureDoesNotMatch"},
		{"expired", "GET", presign(t, c, srv, "GET", key, &cos.PresignedURLOptions{AuthTime: authTime(-2*time.Hour, -time.Hour)}), 403, "AccessDenied"},
		{"start too far ahead", "GET", presign(t, c, srv, "GET", key, &cos.PresignedURLOptions{AuthTime: authTime(time.Hour, 2*time.Hour)}), 403, "RequestTimeTooSkewed"},
		{"unsigned", "GET", srv.URL + "/dir/a%20b%2Bc.txt", 403, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, body := doPlain(t, tt.method, tt.url)
			if status != tt.status || code != tt.code {
				t.Fatalf("status %d code %q, want %d %q; body %s", status, code, tt.status, tt.code, body)
			}
			if tt.status == 200 && tt.method == "GET" && body != "presigned" {
				t.Errorf("body = %q", body)
			}
			if tt.code == "SignatureDoesNotMatch" && !strings.Contains(body, "<StringToSign>") {
				t.Errorf("SignatureDoesNotMatch must echo StringToSign: %s", body)
			}
		})
	}
	// Changing a signed parameter breaks the signature.
	u := presign(t, c, srv, "GET", key, &cos.PresignedURLOptions{Query: &url.Values{"response-content-type": {"text/plain"}}})
	u = strings.Replace(u, "response-content-type=text%2Fplain", "response-content-type=text%2Fhtml", 1)
	if status, code, _ := doPlain(t, "GET", u); status != 403 || code != "SignatureDoesNotMatch" {
		t.Errorf("tampered parameter: %d %s", status, code)
	}
}

func TestAuthFailures(t *testing.T) {
	srv := startServer(t, Options{})
	ctx := context.Background()
	_, err := newClientWith(t, srv.URL, "AKIDunknown", "x", "").Object.Get(ctx, "k", nil)
	wantCode(t, err, "InvalidAccessKeyId", http.StatusForbidden)
	_, err = newClientWith(t, srv.URL, srv.SecretID, "wrong-key", "").Object.Get(ctx, "k", nil)
	wantCode(t, err, "SignatureDoesNotMatch", http.StatusForbidden)
	// A signature over a different Host fails: host is signed.
	c := newClient(t, srv)
	c.Host = "elsewhere.example"
	_, err = c.Object.Get(ctx, "k", nil)
	code, status := cosCode(err)
	if code != "NoSuchKey" || status != 404 {
		t.Errorf("a custom Host is signed as sent, so it must verify: %v", err)
	}
	// A malformed Authorization header.
	req, _ := http.NewRequest("GET", srv.URL+"/k", nil)
	req.Header.Set("Authorization", "q-sign-algorithm=md5&q-ak=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 403 {
		t.Errorf("malformed Authorization: %v %v", err, resp)
	}
}

func TestSessionTokens(t *testing.T) {
	creds := []Credential{
		{SecretID: "AKIDtemp", SecretKey: "tempkey", SessionToken: "token-1", Expiry: time.Now().Add(time.Hour)},
		{SecretID: "AKIDold", SecretKey: "oldkey", SessionToken: "token-2", Expiry: time.Now().Add(-time.Minute)},
	}
	srv := startServer(t, Options{Credentials: creds})
	ctx := context.Background()
	c := newClientWith(t, srv.URL, "AKIDtemp", "tempkey", "token-1")
	putBytes(t, c, "k", []byte("v"))

	_, err := newClientWith(t, srv.URL, "AKIDtemp", "tempkey", "").Object.Get(ctx, "k", nil)
	wantCode(t, err, "AccessDenied", http.StatusForbidden)
	_, err = newClientWith(t, srv.URL, "AKIDtemp", "tempkey", "token-2").Object.Get(ctx, "k", nil)
	wantCode(t, err, "AccessDenied", http.StatusForbidden)
	_, err = newClientWith(t, srv.URL, "AKIDold", "oldkey", "token-2").Object.Get(ctx, "k", nil)
	wantCode(t, err, "ExpiredToken", http.StatusBadRequest)

	// GetPresignedURL2 puts the token in the query and signs it.
	u, err := c.Object.GetPresignedURL2(ctx, http.MethodGet, "k", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status, code, body := doPlain(t, "GET", u.String()); status != 200 || body != "v" {
		t.Errorf("presigned with token: %d %s %s", status, code, body)
	}
}

// TestPresignedURLRawSemicolon sends presigned URLs written as COS's
// documentation and the Node.js SDK write them, with a raw ';' in
// q-sign-time and q-key-time, as well as the Go SDK's %3B form. Go's
// url.ParseQuery drops pairs holding a ';', which made the raw form fail
// with "missing q-sign-time".
func TestPresignedURLRawSemicolon(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	putBytes(t, c, "semi", []byte("raw"))
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		escaped := presign(t, c, srv, method, "semi", nil)
		if strings.Count(escaped, "%3B") != 2 {
			t.Fatalf("the SDK's URL has not two %%3B: %s", escaped)
		}
		raw := strings.ReplaceAll(escaped, "%3B", ";")
		for name, u := range map[string]string{"%3B": escaped, "raw ;": raw} {
			status, code, body := doPlain(t, method, u)
			if status != http.StatusOK || (method == http.MethodGet && body != "raw") {
				t.Errorf("%s with %s: %d %s %q", method, name, status, code, body)
			}
		}
	}
	// A raw ';' in q-header-list, between two signed headers.
	h := http.Header{"Content-Type": {"text/plain"}}
	u := presign(t, c, srv, http.MethodGet, "semi", &cos.PresignedURLOptions{Header: &h})
	if !strings.Contains(u, "q-header-list=content-type%3Bhost") {
		t.Fatalf("the SDK's URL does not sign two headers: %s", u)
	}
	req, _ := http.NewRequest(http.MethodGet, strings.ReplaceAll(u, "%3B", ";"), nil)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != http.StatusOK || body != "raw" {
		t.Errorf("raw ; in q-header-list: %d %s", resp.StatusCode, body)
	}
	// A raw ';' inside another signed parameter's value is that value's.
	u = presign(t, c, srv, http.MethodGet, "semi", &cos.PresignedURLOptions{
		Query: &url.Values{"response-content-disposition": {"attachment;filename=a.txt"}},
	})
	req, _ = http.NewRequest(http.MethodGet, strings.ReplaceAll(u, "%3B", ";"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != "attachment;filename=a.txt" {
		t.Errorf("raw ; in a signed parameter: %d, Content-Disposition %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
}
