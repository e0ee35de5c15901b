package cos

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestRedirectURL presigns GET and HEAD only.
func TestRedirectURL(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	require.NoError(t, d.PutContent(ctx, "/blob", []byte("0123456789")))
	for _, method := range []string{"GET", "HEAD"} {
		r, _ := httpRequest(method)
		u, err := d.RedirectURL(r, "/blob")
		require.NoError(t, err)
		resp, err := httpDo(method, u)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, "%s %s", method, u)
		require.EqualValues(t, 10, resp.ContentLength)
	}
	r, _ := httpRequest("PUT")
	u, err := d.RedirectURL(r, "/blob")
	require.NoError(t, err)
	require.Empty(t, u)
}

// TestNewReportsStartupErrors checks the one-sentence start-up errors.
func TestNewReportsStartupErrors(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	tests := []struct {
		name string
		tune func(*Parameters)
		want string
	}{
		{"missing bucket", func(p *Parameters) { p.Bucket = "nothere-1250000000" }, "does not exist"},
		{"unknown secret id", func(p *Parameters) { p.SecretID = "AKIDunknown" }, "InvalidAccessKeyId"},
		{"wrong secret key", func(p *Parameters) { p.SecretKey = "wrong" }, "SignatureDoesNotMatch"},
		{"unreachable", func(p *Parameters) { p.Endpoint = "http://127.0.0.1:1"; p.MaxRetries = 0 }, "cannot reach"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := serverParameters(srv)
			tc.tune(&p)
			_, err := New(context.Background(), p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), p.SecretKey, "secret in error")
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func httpRequest(method string) (*http.Request, error) {
	return http.NewRequest(method, "http://registry.example/v2/x/blobs/sha256:0", nil)
}

func httpDo(method, url string) (*http.Response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, resp.Body.Close()
}

// TestEndpointForms: copy sources always name the bucket's region host;
// with acceleration only object data goes to the acceleration host.
func TestEndpointForms(t *testing.T) {
	base := func() Parameters {
		p := DefaultParameters()
		p.Bucket, p.Region = "registry-1250000000", "ap-guangzhou"
		return p
	}
	const canonical = "registry-1250000000.cos.ap-guangzhou.myqcloud.com"
	cases := map[string]struct {
		tune               func(*Parameters)
		api, bucket, fails string
	}{
		"region":                       {tune: func(p *Parameters) {}, api: canonical, bucket: canonical},
		"accelerate":                   {tune: func(p *Parameters) { p.Accelerate = true }, api: "registry-1250000000.cos.accelerate.myqcloud.com", bucket: canonical},
		"custom domain":                {tune: func(p *Parameters) { p.Endpoint = "https://cdn.example.com" }, api: "cdn.example.com", bucket: "cdn.example.com"},
		"bucket host, region derived":  {tune: func(p *Parameters) { p.Endpoint, p.Region = "https://"+canonical, "" }, api: canonical, bucket: canonical},
		"accelerate without region":    {tune: func(p *Parameters) { p.Accelerate, p.Region = true, "" }, fails: "region"},
		"custom domain without region": {tune: func(p *Parameters) { p.Endpoint, p.Region = "https://cdn.example.com", "" }, fails: "region"},
	}
	for name, c := range cases {
		p := base()
		c.tune(&p)
		_, e, err := p.validated()
		if c.fails != "" {
			require.ErrorContains(t, err, c.fails, name)
			continue
		}
		require.NoError(t, err, name)
		require.Equal(t, c.api, e.api.Host, name)
		require.Equal(t, c.bucket, e.bucketAPI.Host, name)
		require.Equal(t, canonical, e.copySourceHost, name)
	}
}
