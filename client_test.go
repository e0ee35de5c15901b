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

// TestEndpointForms: every endpoint form, and where each kind of
// request goes. Copy sources are always the bucket's region host, which
// COS wants in x-cos-copy-source; bucket-level requests never go to the
// acceleration host.
func TestEndpointForms(t *testing.T) {
	const b = "registry-1250000000"
	tests := []struct {
		name string
		tune func(*Parameters)
		// want: api, bucket-level, copy source, redirect, Host header
		api, bucketAPI, copySource, redirect, hostHeader string
		err                                              string
	}{
		{name: "region", tune: func(p *Parameters) {},
			api: "https://" + b + ".cos.ap-guangzhou.myqcloud.com", bucketAPI: "https://" + b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "https://" + b + ".cos.ap-guangzhou.myqcloud.com"},
		{name: "region, insecure", tune: func(p *Parameters) { p.Secure = false },
			api: "http://" + b + ".cos.ap-guangzhou.myqcloud.com", bucketAPI: "http://" + b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "http://" + b + ".cos.ap-guangzhou.myqcloud.com"},
		{name: "accelerate", tune: func(p *Parameters) { p.Accelerate = true },
			api: "https://" + b + ".cos.accelerate.myqcloud.com", bucketAPI: "https://" + b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "https://" + b + ".cos.accelerate.myqcloud.com"},
		{name: "accelerate without region", tune: func(p *Parameters) { p.Accelerate = true; p.Region = "" },
			err: "parameter region is required with accelerate"},
		{name: "accelerate with endpoint", tune: func(p *Parameters) { p.Accelerate = true; p.Endpoint = "https://cos.example.com" },
			err: "endpoint and accelerate exclude each other"},
		{name: "custom domain", tune: func(p *Parameters) { p.Endpoint = "https://cos.example.com" },
			api: "https://cos.example.com", bucketAPI: "https://cos.example.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "https://cos.example.com"},
		{name: "custom domain without region", tune: func(p *Parameters) { p.Endpoint = "https://cos.example.com"; p.Region = "" },
			err: `parameter region is required with endpoint "https://cos.example.com"`},
		{name: "tencentcos.cn host names its region", tune: func(p *Parameters) { p.Endpoint = "https://" + b + ".cos.ap-shanghai.tencentcos.cn"; p.Region = "" },
			api: "https://" + b + ".cos.ap-shanghai.tencentcos.cn", bucketAPI: "https://" + b + ".cos.ap-shanghai.tencentcos.cn",
			copySource: b + ".cos.ap-shanghai.myqcloud.com", redirect: "https://" + b + ".cos.ap-shanghai.tencentcos.cn"},
		{name: "myqcloud.com host names its region", tune: func(p *Parameters) { p.Endpoint = "https://" + b + ".cos.ap-guangzhou.myqcloud.com"; p.Region = "" },
			api: "https://" + b + ".cos.ap-guangzhou.myqcloud.com", bucketAPI: "https://" + b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "https://" + b + ".cos.ap-guangzhou.myqcloud.com"},
		{name: "internal domain names its region", tune: func(p *Parameters) {
			p.Endpoint = "https://" + b + ".cos-internal.ap-beijing.tencentcos.cn"
			p.Region = ""
		},
			api: "https://" + b + ".cos-internal.ap-beijing.tencentcos.cn", bucketAPI: "https://" + b + ".cos-internal.ap-beijing.tencentcos.cn",
			copySource: b + ".cos.ap-beijing.myqcloud.com", redirect: "https://" + b + ".cos-internal.ap-beijing.tencentcos.cn"},
		{name: "another bucket's host names no region", tune: func(p *Parameters) {
			p.Endpoint = "https://other-1250000000.cos.ap-shanghai.myqcloud.com"
			p.Region = ""
		},
			err: "parameter region is required with endpoint"},
		{name: "acceleration host as endpoint names no region", tune: func(p *Parameters) { p.Endpoint = "https://" + b + ".cos.accelerate.myqcloud.com"; p.Region = "" },
			err: "parameter region is required with endpoint"},
		{name: "internal region host without the bucket", tune: func(p *Parameters) { p.Endpoint = "https://cos-internal.ap-guangzhou.tencentcos.cn" },
			err: `endpoint "https://cos-internal.ap-guangzhou.tencentcos.cn" is a COS region host, which names no bucket`},
		{name: "S3-style region endpoint", tune: func(p *Parameters) { p.Endpoint = "https://cos.ap-guangzhou.myqcloud.com" },
			err: "is a COS region host, which names no bucket"},
		{name: "service host", tune: func(p *Parameters) { p.Endpoint = "https://service.cos.myqcloud.com" },
			err: "is a COS region host, which names no bucket"},
		{name: "local endpoint", tune: func(p *Parameters) { p.Endpoint = "http://127.0.0.1:9000" },
			api: "http://127.0.0.1:9000", bucketAPI: "http://127.0.0.1:9000", hostHeader: b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "http://127.0.0.1:9000"},
		{name: "local endpoint without region", tune: func(p *Parameters) { p.Endpoint = "http://localhost:9000"; p.Region = "" },
			err: "parameter region is required with endpoint"},
		{name: "redirect endpoint", tune: func(p *Parameters) { p.RedirectEndpoint = "https://cdn.example.com" },
			api: "https://" + b + ".cos.ap-guangzhou.myqcloud.com", bucketAPI: "https://" + b + ".cos.ap-guangzhou.myqcloud.com",
			copySource: b + ".cos.ap-guangzhou.myqcloud.com", redirect: "https://cdn.example.com"},
		{name: "no region, no endpoint", tune: func(p *Parameters) { p.Region = "" },
			err: "parameter region is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParameters()
			p.Bucket, p.Region = b, "ap-guangzhou"
			tc.tune(&p)
			e, err := resolveEndpoints(p)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.api, e.api.String(), "api")
			require.Equal(t, tc.bucketAPI, e.bucketAPI.String(), "bucket-level requests")
			require.Equal(t, tc.copySource, e.copySourceHost, "copy source")
			require.Equal(t, tc.redirect, e.redirect.String(), "redirects")
			require.Equal(t, tc.hostHeader, e.hostHeader, "Host header")
		})
	}
}
