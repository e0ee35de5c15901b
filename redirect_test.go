package cos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestRedirectsOfInternalClients: the driver's own redirects send a client
// in internalcidrs (by its address, X-Forwarded-For or X-Real-Ip) to
// internalendpoint, and every other client to redirectendpoint.
func TestRedirectsOfInternalClients(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.RedirectEndpoint = "https://public.example.com"
		p.InternalCIDRs = []string{"10.0.0.0/8", "fd00::/8"}
		p.InternalEndpoint = srv.URL
	})
	require.NoError(t, d.PutContent(context.Background(), "/blob", []byte("0123456789")))
	for _, tc := range []struct {
		remoteAddr, forwardedFor, realIP string
		internal                         bool
	}{
		{remoteAddr: "10.1.2.3:4000", internal: true},
		{remoteAddr: "[fd00::1]:4000", internal: true},
		{remoteAddr: "203.0.113.9:4000"},
		{remoteAddr: "127.0.0.1:4000", forwardedFor: "10.9.9.9, 127.0.0.1", internal: true},
		{remoteAddr: "10.1.2.3:4000", forwardedFor: "198.51.100.1"},
		{remoteAddr: "127.0.0.1:4000", realIP: "10.0.0.7", internal: true},
		{remoteAddr: "127.0.0.1:4000", forwardedFor: "not-an-ip", realIP: "198.51.100.2"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v2/x/blobs/sha256:00", nil)
		r.RemoteAddr = tc.remoteAddr
		if tc.forwardedFor != "" {
			r.Header.Set("X-Forwarded-For", tc.forwardedFor)
		}
		if tc.realIP != "" {
			r.Header.Set("X-Real-Ip", tc.realIP)
		}
		u, err := d.RedirectURL(r, "/blob")
		require.NoError(t, err)
		want := "https://public.example.com/"
		if tc.internal {
			want = srv.URL + "/"
		}
		require.True(t, strings.HasPrefix(u, want), "%+v: redirected to %s, want %s", tc, u, want)
		if tc.internal {
			resp, err := http.Get(u)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "the internal redirect is signed for its host")
		}
	}
}

// TestDefaultInternalEndpoint: without internalendpoint, internal clients
// go to the bucket's cos-internal host, which Tencent resolves only inside
// its network.
func TestDefaultInternalEndpoint(t *testing.T) {
	p := DefaultParameters()
	p.Bucket, p.Region = "registry-1250000000", "ap-guangzhou"
	p.InternalCIDRs = []string{"10.0.0.0/8"}
	_, e, err := p.validated()
	require.NoError(t, err)
	require.Equal(t, "https://registry-1250000000.cos-internal.ap-guangzhou.tencentcos.cn", e.internal.String())
}

// TestTrafficLimitOnRedirects: the redirect URL carries the limit in bit/s
// as a signed query parameter.
func TestTrafficLimitOnRedirects(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.TrafficLimit = 100 * kib })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	u, err := d.RedirectURL(r, "/blob")
	require.NoError(t, err)
	q, _ := url.Parse(u)
	require.Equal(t, "819200", q.Query().Get("x-cos-traffic-limit"))
	require.Contains(t, q.Query().Get("q-url-param-list"), "x-cos-traffic-limit")
}
