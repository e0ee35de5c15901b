package costest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

func putKeys(t testing.TB, c *cos.Client, keys []string) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := c.Object.Put(context.Background(), k, strings.NewReader("x"), nil); err != nil {
				t.Errorf("Put %q: %v", k, err)
			}
		}()
	}
	wg.Wait()
}

func listNames(r *cos.BucketGetResult) []string {
	var out []string
	for _, p := range r.CommonPrefixes {
		out = append(out, p+"(prefix)")
	}
	for _, o := range r.Contents {
		out = append(out, o.Key)
	}
	return out
}

func TestListObjects(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	putKeys(t, c, []string{"a", "b/1", "b/2", "b/c/3", "c", "d e", "d+e", "d%e", "日本/語", "z"})
	tests := []struct {
		name string
		opt  *cos.BucketGetOptions
		want string
		next string
	}{
		{"all", nil, "a b/1 b/2 b/c/3 c d e d%e d+e z 日本/語", ""},
		{"delimiter", &cos.BucketGetOptions{Delimiter: "/"}, "b/(prefix) 日本/(prefix) a c d e d%e d+e z", ""},
		{"prefix and delimiter", &cos.BucketGetOptions{Prefix: "b/", Delimiter: "/"}, "b/c/(prefix) b/1 b/2", ""},
		{"marker on a common prefix skips the group", &cos.BucketGetOptions{Delimiter: "/", Marker: "b/"}, "日本/(prefix) c d e d%e d+e z", ""},
		{"max-keys counts prefixes", &cos.BucketGetOptions{Delimiter: "/", MaxKeys: 2}, "b/(prefix) a", "b/"},
		{"prefix with space", &cos.BucketGetOptions{Prefix: "d e"}, "d e", ""},
		{"prefix with plus", &cos.BucketGetOptions{Prefix: "d+"}, "d+e", ""},
		{"marker", &cos.BucketGetOptions{Marker: "d e", MaxKeys: 1}, "d%e", "d%e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, err := c.Bucket.Get(ctx, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(listNames(r), " "); got != tt.want {
				t.Errorf("listing = %q, want %q", got, tt.want)
			}
			if r.NextMarker != tt.next || r.IsTruncated != (tt.next != "") {
				t.Errorf("NextMarker = %q truncated %v, want %q", r.NextMarker, r.IsTruncated, tt.next)
			}
		})
	}

	r, _, err := c.Bucket.Get(ctx, &cos.BucketGetOptions{EncodingType: "url", Prefix: "d"})
	if err != nil {
		t.Fatal(err)
	}
	var raw []string
	for _, o := range r.Contents {
		raw = append(raw, o.Key)
	}
	if got := strings.Join(raw, " "); got != "d%20e d%25e d%2Be" {
		t.Errorf("encoding-type=url keys = %q", got)
	}
	r, _, _ = c.Bucket.Get(ctx, &cos.BucketGetOptions{EncodingType: "url", Prefix: "日"})
	if len(r.Contents) != 1 || r.Contents[0].Key != "%E6%97%A5%E6%9C%AC/%E8%AA%9E" {
		t.Errorf("encoding-type=url must keep '/': %+v", r.Contents)
	}

	_, _, err = c.Bucket.Get(ctx, &cos.BucketGetOptions{Delimiter: "//"})
	wantCode(t, err, "InvalidDelimiter", http.StatusBadRequest)
	_, _, err = c.Bucket.Get(ctx, &cos.BucketGetOptions{EncodingType: "base64"})
	wantCode(t, err, "InvalidArgument", http.StatusBadRequest)
}

func TestListObjectsPageBoundaries(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	keys := make([]string, 1001)
	for i := range keys {
		keys[i] = fmt.Sprintf("k/%04d", i)
	}
	putKeys(t, c, keys[:1000])
	r, _, err := c.Bucket.Get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Contents) != 1000 || r.IsTruncated || r.NextMarker != "" {
		t.Errorf("exactly 1000 keys: got %d, truncated %v, next %q", len(r.Contents), r.IsTruncated, r.NextMarker)
	}
	putKeys(t, c, keys[1000:])
	r, _, err = c.Bucket.Get(ctx, &cos.BucketGetOptions{MaxKeys: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Contents) != 1000 || !r.IsTruncated || r.NextMarker != "k/0999" || r.MaxKeys != 1000 {
		t.Errorf("1001 keys: got %d, truncated %v, next %q, max %d", len(r.Contents), r.IsTruncated, r.NextMarker, r.MaxKeys)
	}
	r, _, err = c.Bucket.Get(ctx, &cos.BucketGetOptions{Marker: r.NextMarker})
	if err != nil || len(r.Contents) != 1 || r.Contents[0].Key != "k/1000" || r.IsTruncated {
		t.Errorf("second page: %v %+v", err, r)
	}
}

func TestListObjectsQueryEncoding(t *testing.T) {
	// Raw query strings as other clients send them: %20 and + both mean a
	// space in a form-encoded prefix, %2B is a plus.
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	putKeys(t, c, []string{"d e", "d+e"})
	hc := &http.Client{Transport: &cos.AuthorizationTransport{SecretID: srv.SecretID, SecretKey: srv.SecretKey}}
	for raw, want := range map[string]string{"prefix=d%20": "d e", "prefix=d+": "d e", "prefix=d%2B": "d+e"} {
		resp, err := hc.Get(srv.URL + "/?" + raw)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		fmt.Fprint(&body, readAll(resp))
		if resp.StatusCode != 200 || !strings.Contains(body.String(), "<Key>"+want+"</Key>") || strings.Count(body.String(), "<Key>") != 1 {
			t.Errorf("?%s: status %d body %s", raw, resp.StatusCode, body.String())
		}
	}
}
