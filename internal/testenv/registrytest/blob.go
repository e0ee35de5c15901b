package registrytest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
)

// StartUpload opens a blob upload in repo (POST /v2/<repo>/blobs/uploads/,
// answered 202) and returns its absolute location.
func StartUpload(ctx context.Context, client *http.Client, base, repo string) (string, error) {
	resp, err := uploadRequest(ctx, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted)
	if err != nil {
		return "", fmt.Errorf("opening an upload: %w", err)
	}
	return location(resp)
}

// PatchUpload sends size bytes of body to the upload at location (PATCH,
// answered 202). With offset >= 0 the request carries the Content-Range of
// a chunked upload starting there; with offset < 0 none, as a client
// streaming the whole blob sends it. It returns the next location and the
// Range header the registry answered.
func PatchUpload(ctx context.Context, client *http.Client, loc string, body io.Reader, size, offset int64) (next, rng string, err error) {
	header := http.Header{}
	if offset >= 0 {
		header.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+size-1))
	}
	resp, err := uploadRequest(ctx, client, http.MethodPatch, loc, body, size, header, http.StatusAccepted)
	if err != nil {
		return "", "", fmt.Errorf("sending %d bytes: %w", size, err)
	}
	next, err = location(resp)
	return next, resp.Header.Get("Range"), err
}

// FinishUpload commits the upload at location with PUT ?digest=dgst, with
// size bytes of body as its last chunk (body nil for none), and checks the
// answer: 201 with Docker-Content-Digest dgst.
func FinishUpload(ctx context.Context, client *http.Client, loc string, dgst digest.Digest, body io.Reader, size int64) error {
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", dgst.String())
	u.RawQuery = q.Encode()
	resp, err := uploadRequest(ctx, client, http.MethodPut, u.String(), body, size, nil, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("committing the upload: %w", err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst.String() {
		return fmt.Errorf("committing the upload: Docker-Content-Digest %q, want %q", got, dgst)
	}
	return nil
}

// PushBlob uploads one blob the way docker does a large layer: POST to
// open an upload, one PATCH streaming the whole body, PUT ?digest= to
// commit. An empty dgst means the digest is not known in advance: the body
// is hashed as it is sent.
func PushBlob(ctx context.Context, client *http.Client, base, repo string, body io.Reader, size int64, dgst digest.Digest) error {
	h := sha256.New()
	if dgst == "" {
		body = io.TeeReader(body, h)
	}
	loc, err := StartUpload(ctx, client, base, repo)
	if err != nil {
		return err
	}
	if loc, _, err = PatchUpload(ctx, client, loc, body, size, -1); err != nil {
		return err
	}
	if dgst == "" {
		dgst = digest.NewDigest(digest.SHA256, h)
	}
	return FinishUpload(ctx, client, loc, dgst, nil, 0)
}

// FetchBlob GETs a blob of repo through the registry and copies it to w,
// following a redirect to the storage when the registry sends one. It
// returns how many bytes came and the URL it was redirected to ("" when
// the registry served the blob itself). The content is not checked.
func FetchBlob(ctx context.Context, client *http.Client, base, repo string, dgst digest.Digest, w io.Writer) (n int64, redirected string, err error) {
	// The redirect is followed here, not by the client, so that it is seen.
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	target := base + "/v2/" + repo + "/blobs/" + dgst.String()
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return 0, redirected, err
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			return 0, redirected, err
		}
		if hop == 0 && resp.StatusCode == http.StatusTemporaryRedirect {
			resp.Body.Close()
			redirected = resp.Header.Get("Location")
			target = redirected
			continue
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, redirected, fmt.Errorf("GET %s: %s", target, answer(resp))
		}
		n, err = io.Copy(w, resp.Body)
		return n, redirected, err
	}
}

// uploadRequest sends one request of the upload protocol and checks its
// status. A request with a body says it is application/octet-stream, as
// clients do.
func uploadRequest(ctx context.Context, client *http.Client, method, target string, body io.Reader, size int64, header http.Header, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s, want %d", method, target, answer(resp), want)
	}
	// Read the (short) body, so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return resp, nil
}

// answer describes a response that was not the one wanted: its status and
// the start of its body.
func answer(resp *http.Response) string {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return strings.TrimSpace(resp.Status + ": " + string(msg))
}

// location is the absolute Location of an answer.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location header", resp.Request.Method, resp.Request.URL)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("%s %s: bad Location %q: %v", resp.Request.Method, resp.Request.URL, loc, err)
	}
	return u.String(), nil
}
