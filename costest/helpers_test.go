package costest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// startServer runs an emulator for one test.
func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newClient is an SDK client for srv, the way the driver builds one.
func newClient(t testing.TB, srv *Server) *cos.Client {
	t.Helper()
	return newClientWith(t, srv.URL, srv.SecretID, srv.SecretKey, "")
}

func newClientWith(t testing.TB, rawURL, id, key, token string) *cos.Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return cos.NewClient(&cos.BaseURL{BucketURL: u}, &http.Client{
		Transport: &cos.AuthorizationTransport{SecretID: id, SecretKey: key, SessionToken: token,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	})
}

// cosCode returns the COS error code and HTTP status of an SDK error.
func cosCode(err error) (string, int) {
	var e *cos.ErrorResponse
	if errors.As(err, &e) {
		status := 0
		if e.Response != nil {
			status = e.Response.StatusCode
		}
		return e.Code, status
	}
	return "", 0
}

// wantCode fails unless err is a COS error with the given code and status.
func wantCode(t testing.TB, err error, code string, status int) {
	t.Helper()
	gotCode, gotStatus := cosCode(err)
	if gotCode != code || gotStatus != status {
		t.Fatalf("error = %v (code %q, status %d), want %s %d", err, gotCode, gotStatus, code, status)
	}
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func putBytes(t testing.TB, c *cos.Client, key string, data []byte) *cos.Response {
	t.Helper()
	resp, err := c.Object.Put(context.Background(), key, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("Put %q: %v", key, err)
	}
	return resp
}

func getBytes(t testing.TB, c *cos.Client, key string, opt *cos.ObjectGetOptions) ([]byte, *cos.Response) {
	t.Helper()
	resp, err := c.Object.Get(context.Background(), key, opt)
	if err != nil {
		t.Fatalf("Get %q: %v", key, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("Get %q: reading body: %v", key, err)
	}
	return data, resp
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
