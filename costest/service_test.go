package costest

import (
	"context"
	"net/http"
	"slices"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// TestGetService lists buckets through the SDK's Service.Get, as Tencent's
// clients do: at the service endpoint (ServiceURL, whatever the Host) and
// under the documented hosts service.cos.myqcloud.com and
// cos.<region>.myqcloud.com. A GET / there must answer
// ListAllMyBucketsResult, never the default bucket's object listing.
func TestGetService(t *testing.T) {
	srv := startServer(t, Options{})
	c := srv.Client()
	ctx := context.Background()
	putBytes(t, c, "an-object", []byte("x"))
	for _, b := range []struct{ name, region string }{{"beta-1250000000", "ap-beijing"}, {"alpha-1250000000", DefaultRegion}} {
		other := newClient(t, srv)
		other.Host = bucketHost(b.name, b.region)
		if _, err := other.Bucket.Put(ctx, nil); err != nil {
			t.Fatalf("PUT bucket %s: %v", b.name, err)
		}
	}
	names := func(res *cos.ServiceGetResult) []string {
		var out []string
		for _, b := range res.Buckets {
			out = append(out, b.Name+"@"+b.Region)
		}
		return out
	}
	all := []string{"alpha-1250000000@" + DefaultRegion, "beta-1250000000@ap-beijing", DefaultBucket + "@" + DefaultRegion}

	res, resp, err := c.Service.Get(ctx)
	if err != nil {
		t.Fatalf("Service.Get at ServiceURL: %v", err)
	}
	if got := names(res); !slices.Equal(got, all) {
		t.Errorf("Service.Get at ServiceURL = %v, want %v", got, all)
	}
	if res.Owner == nil || res.Owner.ID != "qcs::cam::uin/1250000000:uin/1250000000" || res.Owner.DisplayName != "1250000000" {
		t.Errorf("Owner = %+v", res.Owner)
	}
	if res.Buckets[0].CreationDate == "" || resp.Header.Get("x-cos-request-id") == "" {
		t.Errorf("bucket %+v, request id %q", res.Buckets[0], resp.Header.Get("x-cos-request-id"))
	}

	// The documented hosts on the main endpoint: all buckets, or one
	// region's.
	for _, tt := range []struct {
		host string
		opt  *cos.ServiceGetOptions
		want []string
	}{
		{"service.cos.myqcloud.com", nil, all},
		{"cos.ap-beijing.myqcloud.com", nil, []string{"beta-1250000000@ap-beijing"}},
		{"service.cos.myqcloud.com", &cos.ServiceGetOptions{Region: DefaultRegion}, []string{all[0], all[2]}},
		{"service.cos.myqcloud.com", &cos.ServiceGetOptions{MaxKeys: 1, Marker: "alpha-1250000000"}, all[1:2]},
	} {
		hc := newClient(t, srv)
		hc.BaseURL.ServiceURL = hc.BaseURL.BucketURL
		hc.Host = tt.host
		var opts []*cos.ServiceGetOptions
		if tt.opt != nil {
			opts = append(opts, tt.opt)
		}
		res, _, err := hc.Service.Get(ctx, opts...)
		if err != nil {
			t.Fatalf("Service.Get with Host %s %+v: %v", tt.host, tt.opt, err)
		}
		if got := names(res); !slices.Equal(got, tt.want) {
			t.Errorf("Service.Get with Host %s %+v = %v, want %v", tt.host, tt.opt, got, tt.want)
		}
		if tt.opt != nil && tt.opt.MaxKeys == 1 && (!res.IsTruncated || res.NextMarker != "beta-1250000000") {
			t.Errorf("max-keys 1: truncated %v, next marker %q", res.IsTruncated, res.NextMarker)
		}
	}

	// A host naming no service and no bucket still reaches the default
	// bucket (the driver's local set-up), and the service endpoint answers
	// nothing but GET Service.
	if got, _ := getBytes(t, c, "an-object", nil); string(got) != "x" {
		t.Errorf("object via URL: %q", got)
	}
	_, err = newClientWith(t, srv.ServiceURL, srv.SecretID, srv.SecretKey, "").Object.Get(ctx, "an-object", nil)
	wantCode(t, err, "NotImplemented", http.StatusNotImplemented)
	if n := srv.Stats().Count("GetService"); n != 5 {
		t.Errorf("GetService counted %d times, want 5", n)
	}
}
