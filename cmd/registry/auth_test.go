package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestHTPasswdInFrontOfRedirects configures htpasswd auth as an operator
// would, with blob redirects on and presigned URLs valid for 2s. Without
// credentials or with a wrong password every endpoint answers 401, blob
// downloads included, so no presigned URL is handed out; with the right
// password a blob GET redirects to a presigned URL that opens that blob
// only (the emulator refuses it for another key) and expires as configured.
func TestHTPasswdInFrontOfRedirects(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := testenv.WriteFile(t, "htpasswd", "ops:"+string(hash)+"\n")
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	const expiry = 2 * time.Second
	reg := startRegistry(t, emulator, registryOptions{Redirect: true, HTPasswd: htpasswd, RedirectExpiry: expiry})

	blob, other := testenv.RandomBytes(4096, 1), testenv.RandomBytes(4096, 2)
	dgst, otherDgst := digest.FromBytes(blob), digest.FromBytes(other)
	for _, b := range [][]byte{blob, other} {
		if err := haUploadBlob(authClient("ops", "s3cret"), reg.URL, "sec/app", b, false); err != nil {
			t.Fatalf("uploading with the right password: %v", err)
		}
	}

	endpoints := []struct{ method, path string }{
		{http.MethodGet, "/v2/"},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodGet, "/v2/sec/app/tags/list"},
		{http.MethodGet, "/v2/sec/app/manifests/latest"},
		{http.MethodHead, "/v2/sec/app/manifests/latest"},
		{http.MethodPut, "/v2/sec/app/manifests/latest"},
		{http.MethodDelete, "/v2/sec/app/manifests/latest"},
		{http.MethodGet, "/v2/sec/app/blobs/" + dgst.String()},
		{http.MethodHead, "/v2/sec/app/blobs/" + dgst.String()},
		{http.MethodDelete, "/v2/sec/app/blobs/" + dgst.String()},
		{http.MethodPost, "/v2/sec/app/blobs/uploads/"},
		{http.MethodPost, "/v2/sec/other/blobs/uploads/?mount=" + dgst.String() + "&from=sec/app"},
	}
	for _, who := range []struct{ name, user, password string }{{"no credentials", "", ""}, {"wrong password", "ops", "wrong"}, {"unknown user", "eve", "s3cret"}} {
		for _, e := range endpoints {
			req, _ := http.NewRequest(e.method, reg.URL+e.path, nil)
			if who.user != "" {
				req.SetBasicAuth(who.user, who.password)
			}
			resp, err := noRedirectClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
				t.Errorf("%s: %s %s answered %d (Location %q), want 401 and no redirect", who.name, e.method, e.path, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}

	req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/sec/app/blobs/"+dgst.String(), nil)
	req.SetBasicAuth("ops", "s3cret")
	resp, err := noRedirectClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("GET blob with the right password: %d, want 307", resp.StatusCode)
	}
	presigned := resp.Header.Get("Location")
	if status := getStatus(t, presigned); status != http.StatusOK {
		t.Fatalf("the presigned URL answered %d, want 200", status)
	}
	// The same signature on the other blob's key: refused.
	u, _ := url.Parse(presigned)
	blobDir := func(d digest.Digest) string { return "/" + d.Encoded()[:2] + "/" + d.Encoded() + "/" }
	u.Path = strings.Replace(u.Path, blobDir(dgst), blobDir(otherDgst), 1)
	u.RawPath = ""
	if !strings.Contains(u.Path, blobDir(otherDgst)) {
		t.Fatalf("no digest in the presigned path %s", presigned)
	}
	if status := getStatus(t, u.String()); status != http.StatusForbidden {
		t.Errorf("the presigned URL of %s, pointed at %s, answered %d, want 403", dgst, otherDgst, status)
	}
	time.Sleep(expiry + 1500*time.Millisecond) // q-sign-time has one-second resolution
	if status := getStatus(t, presigned); status != http.StatusForbidden {
		t.Errorf("the presigned URL answered %d %v after it expired, want 403", status, expiry)
	}
}

// authClient sends every request with basic auth.
func authClient(user, password string) *http.Client {
	return &http.Client{Transport: basicAuth{user, password}}
}

type basicAuth struct{ user, password string }

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(b.user, b.password)
	return http.DefaultTransport.RoundTrip(req)
}

// getStatus returns the status of a GET without following redirects.
func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := noRedirectClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
