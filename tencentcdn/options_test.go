package tencentcdn

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// keyedDriver is an in-memory driver with COS object keys.
type keyedDriver struct{ *inmemory.Driver }

func (keyedDriver) ObjectKey(path string) string { return "root" + path }

// TestOptionsAreChecked: each bad option is refused with an error naming
// it, and never the key.
func TestOptionsAreChecked(t *testing.T) {
	good := map[string]any{"baseurl": "https://cdn.example.com", "authtype": "a", "key": "secretKey1"}
	tests := []struct {
		name string
		set  map[string]any
		want string
	}{
		{"no baseurl", map[string]any{"baseurl": nil}, "option baseurl is required"},
		{"baseurl without scheme", map[string]any{"baseurl": "cdn.example.com"}, `baseurl "cdn.example.com" is not a CDN domain`},
		{"baseurl with a path", map[string]any{"baseurl": "https://cdn.example.com/x"}, "scheme and host only"},
		{"no authtype", map[string]any{"authtype": nil}, "option authtype is required"},
		{"authtype e", map[string]any{"authtype": "e"}, `authtype "e" is not supported`},
		{"no key", map[string]any{"key": nil}, "option key is required"},
		{"short key", map[string]any{"key": "abc"}, "option key is not a CDN authentication key"},
		{"key with symbols", map[string]any{"backupkey": "secret-Key1"}, "option backupkey is not a CDN authentication key"},
		{"expiry negative", map[string]any{"expiry": "-1s"}, `expiry "-1s" is not a duration`},
		{"expiry words", map[string]any{"expiry": "soon"}, `expiry "soon"`},
		{"same parameters", map[string]any{"signparam": "t"}, "signparam and timeparam are both"},
		{"bad parameter", map[string]any{"timeparam": "t-s"}, `timeparam "t-s" is not a parameter name`},
		{"unknown option", map[string]any{"privatekey": "x"}, `unknown option "privatekey"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{}
			for k, v := range good {
				opts[k] = v
			}
			for k, v := range tc.set {
				if v == nil {
					delete(opts, k)
				} else {
					opts[k] = v
				}
			}
			_, err := newMiddleware(context.Background(), keyedDriver{inmemory.New()}, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secretKey1") || strings.Contains(err.Error(), "secret-Key1") {
				t.Fatalf("the error names a key: %v", err)
			}
		})
	}
	if _, err := newMiddleware(context.Background(), inmemory.New(), good); err == nil || !strings.Contains(err.Error(), "works with the cos driver") {
		t.Fatalf("a driver without object keys: got %v", err)
	}
}

// TestRedirectTimestamps: expiry moves the timestamp forward, type B rounds
// up to the minute, and the path is the driver's object key.
func TestRedirectTimestamps(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 50, 20, 0, time.UTC)
	for _, tc := range []struct {
		authType, expiry string
		want             string // in the URL
	}{
		{"d", "", "t=" + "1796597420"},
		{"d", "10m", "t=1796598020"},
		{"b", "", "/202612070651/"}, // 06:50:20 UTC+8, rounded up
		{"c", "1h", "/6b15f4bc/root/docker/"},
	} {
		opts := map[string]any{"baseurl": "https://cdn.example.com", "authtype": tc.authType, "key": "secretKey1", "expiry": tc.expiry}
		sd, err := newMiddleware(context.Background(), keyedDriver{inmemory.New()}, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := sd.(*middleware)
		m.now = func() time.Time { return now }
		r := httptest.NewRequest("GET", "/v2/x/blobs/sha256:00", nil)
		u, err := m.RedirectURL(r, "/docker/registry/v2/blobs/sha256/00/00/data")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(u, tc.want) {
			t.Errorf("type %s, expiry %q: %s, want it to contain %s", tc.authType, tc.expiry, u, tc.want)
		}
		if parsed, _ := url.Parse(u); !strings.HasSuffix(parsed.Path, "/root/docker/registry/v2/blobs/sha256/00/00/data") {
			t.Errorf("type %s: path %s does not end with the object key", tc.authType, parsed.Path)
		}
	}
}
