package tencentcdn_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	_ "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
	_ "github.com/registry-cos/cos/tencentcdn"
)

// cdnStandIn plays a Tencent CDN domain whose origin is the emulator's
// private bucket: it checks each request's URL authentication as the CDN
// pages describe it (written here apart from the middleware's signer),
// refuses a bad or expired one with 403, and pulls the object from the
// bucket with the bucket's credentials (origin-pull authentication).
type cdnStandIn struct {
	*httptest.Server
	authType string
	keys     []string      // the console's primary and backup keys
	validity time.Duration // the console's 鉴权URL有效时长
	origin   *costest.Server
	served   atomic.Int64 // requests authenticated and served
	refused  atomic.Int64
}

func newCDNStandIn(t *testing.T, origin *costest.Server, authType string, keys ...string) *cdnStandIn {
	c := &cdnStandIn{authType: authType, keys: keys, validity: time.Hour, origin: origin}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// authenticate returns the origin path of an authenticated request, or "".
func (c *cdnStandIn) authenticate(r *http.Request) string {
	path := r.URL.EscapedPath()
	q := r.URL.Query()
	var uri string
	var issued time.Time
	var check func(key string) bool
	switch c.authType {
	case "a": // ?sign=timestamp-rand-uid-md5(uri-timestamp-rand-uid-key)
		parts := strings.Split(q.Get("sign"), "-")
		if len(parts) != 4 {
			return ""
		}
		unix, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return ""
		}
		uri, issued = path, time.Unix(unix, 0)
		check = func(key string) bool {
			return parts[3] == md5hex(uri+"-"+parts[0]+"-"+parts[1]+"-"+parts[2]+"-"+key)
		}
	case "b": // /YYYYMMDDHHMM(UTC+8)/md5(key timestamp uri)/uri
		parts := strings.SplitN(path, "/", 4)
		if len(parts) != 4 {
			return ""
		}
		at, err := time.ParseInLocation("200601021504", parts[1], time.FixedZone("CST", 8*3600))
		if err != nil {
			return ""
		}
		uri, issued = "/"+parts[3], at
		check = func(key string) bool { return parts[2] == md5hex(key+parts[1]+uri) }
	case "c": // /md5(key uri hex-timestamp)/hex-timestamp/uri
		parts := strings.SplitN(path, "/", 4)
		if len(parts) != 4 {
			return ""
		}
		unix, err := strconv.ParseInt(parts[2], 16, 64)
		if err != nil {
			return ""
		}
		uri, issued = "/"+parts[3], time.Unix(unix, 0)
		check = func(key string) bool { return parts[1] == md5hex(key+uri+parts[2]) }
	case "d": // ?sign=md5(key uri timestamp)&t=timestamp
		unix, err := strconv.ParseInt(q.Get("t"), 10, 64)
		if err != nil {
			return ""
		}
		uri, issued = path, time.Unix(unix, 0)
		check = func(key string) bool { return q.Get("sign") == md5hex(key+uri+q.Get("t")) }
	}
	if issued.Add(c.validity).Before(time.Now()) {
		return ""
	}
	for _, key := range c.keys {
		if check(key) {
			return uri
		}
	}
	return ""
}

func (c *cdnStandIn) serve(w http.ResponseWriter, r *http.Request) {
	uri := c.authenticate(r)
	if uri == "" {
		c.refused.Add(1)
		http.Error(w, "authentication failed", http.StatusForbidden)
		return
	}
	key := strings.TrimPrefix(uri, "/")
	resp, err := c.origin.Client().Object.Get(r.Context(), key, nil)
	if err != nil {
		http.Error(w, "origin pull: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	c.served.Add(1)
	w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
	_, _ = io.Copy(w, resp.Body)
}

// startRegistry starts a redirecting registry on the emulator with the
// tencentcdn middleware of options in front of the driver.
func startRegistry(t *testing.T, emulator *costest.Server, driverParams map[string]any, options configuration.Parameters) *registrytest.Registry {
	params := testenv.DriverParameters(emulator)
	for k, v := range driverParams {
		params[k] = v
	}
	config := registrytest.Config(t, registrytest.Options{Parameters: params, Redirect: true})
	config.Middleware = map[string][]configuration.Middleware{"storage": {{Name: "tencentcdn", Options: options}}}
	return registrytest.Start(t, config)
}

func pushBlob(t *testing.T, reg *registrytest.Registry, content []byte) digest.Digest {
	dgst := digest.FromBytes(content)
	if err := registrytest.PushBlob(context.Background(), http.DefaultClient, reg.URL, "library/app", bytes.NewReader(content), int64(len(content)), dgst); err != nil {
		t.Fatal(err)
	}
	return dgst
}

// TestBlobPullsThroughTheCDN pulls a blob through the registry with each
// authentication type: the registry redirects to the CDN domain, the
// stand-in accepts the signature and serves the bucket's bytes.
func TestBlobPullsThroughTheCDN(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	content := testenv.RandomBytes(300<<10, 26)
	for _, authType := range []string{"a", "b", "c", "d"} {
		t.Run(authType, func(t *testing.T) {
			cdn := newCDNStandIn(t, emulator, authType, "primaryKey26")
			reg := startRegistry(t, emulator, map[string]any{"rootdirectory": "/reg"}, configuration.Parameters{
				"baseurl": cdn.URL, "authtype": strings.ToUpper(authType), "key": "primaryKey26",
			})
			dgst := pushBlob(t, reg, content)
			var got bytes.Buffer
			n, redirected, err := registrytest.FetchBlob(context.Background(), http.DefaultClient, reg.URL, "library/app", dgst, &got)
			if err != nil {
				t.Fatalf("pull through the CDN (redirected to %s): %v", redirected, err)
			}
			if !strings.HasPrefix(redirected, cdn.URL+"/") {
				t.Fatalf("redirected to %q, want the CDN domain %s", redirected, cdn.URL)
			}
			if n != int64(len(content)) || !bytes.Equal(got.Bytes(), content) {
				t.Fatalf("got %d bytes through the CDN, want the %d pushed", n, len(content))
			}
			if cdn.served.Load() != 1 || cdn.refused.Load() != 0 {
				t.Fatalf("the CDN served %d and refused %d requests, want 1 and 0", cdn.served.Load(), cdn.refused.Load())
			}
			// A signature that does not match is refused.
			tampered := strings.Replace(redirected, dgst.Encoded()[:8], strings.Repeat("0", 8), 1)
			resp, err := http.Get(tampered)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("a tampered URL got %d from the CDN, want 403", resp.StatusCode)
			}
		})
	}
}

// TestBackupKeySigns: with a backup key, URLs are signed with it (the key
// being rotated in): a CDN that has it as its backup key accepts them, one
// that knows only the primary key refuses them.
func TestBackupKeySigns(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	content := testenv.RandomBytes(100<<10, 27)
	rotated := newCDNStandIn(t, emulator, "a", "oldKey123", "newKey456")
	stale := newCDNStandIn(t, emulator, "a", "oldKey123")
	for _, tc := range []struct {
		cdn    *cdnStandIn
		status int
	}{{rotated, http.StatusOK}, {stale, http.StatusForbidden}} {
		reg := startRegistry(t, emulator, nil, configuration.Parameters{
			"baseurl": tc.cdn.URL, "authtype": "a", "key": "oldKey123", "backupkey": "newKey456",
		})
		dgst := pushBlob(t, reg, content)
		_, redirected, err := registrytest.FetchBlob(context.Background(), http.DefaultClient, reg.URL, "library/app", dgst, io.Discard)
		if tc.status == http.StatusOK && err != nil {
			t.Fatalf("CDN with the backup key: %v", err)
		}
		if tc.status == http.StatusForbidden && (err == nil || !strings.Contains(err.Error(), "403")) {
			t.Fatalf("CDN without the backup key: got %v, want a 403 (redirected to %s)", err, redirected)
		}
	}
}

// TestInternalClientsGoToTheBucket: a client in the driver's internalcidrs
// (by the registry's X-Forwarded-For) is redirected to the bucket's
// private-network endpoint, not to the CDN; others go to the CDN.
func TestInternalClientsGoToTheBucket(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	cdn := newCDNStandIn(t, emulator, "d", "primaryKey26")
	reg := startRegistry(t, emulator, map[string]any{
		"internalcidrs": "10.0.0.0/8, 172.16.0.0/12", "internalendpoint": emulator.URL,
		"redirectendpoint": "https://public.example.com",
	}, configuration.Parameters{"baseurl": cdn.URL, "authtype": "d", "key": "primaryKey26"})
	content := testenv.RandomBytes(70<<10, 28)
	dgst := pushBlob(t, reg, content)
	for _, tc := range []struct {
		forwardedFor string
		wantPrefix   string
	}{
		{"10.2.3.4", emulator.URL + "/"},
		{"172.20.0.9, 10.0.0.1", emulator.URL + "/"},
		{"203.0.113.7", cdn.URL + "/"},
		{"", cdn.URL + "/"}, // the test's own 127.0.0.1
	} {
		req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/library/app/blobs/"+dgst.String(), nil)
		if tc.forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", tc.forwardedFor)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, tc.wantPrefix) {
			t.Fatalf("client %q: %d to %q, want a redirect under %s", tc.forwardedFor, resp.StatusCode, loc, tc.wantPrefix)
		}
		got, err := http.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if got.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
			t.Fatalf("client %q: GET %s: %d with %d bytes, want the %d pushed", tc.forwardedFor, loc, got.StatusCode, len(body), len(content))
		}
	}
}

func TestMain(m *testing.M) {
	// The registry logs every request; keep test output to what failed.
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}
