package costest

import (
	"context"
	"net/http"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// TestBucketConfigThroughSDK: the SDK's GetVersioning, GetLifecycle and
// GetAccelerate read what Options set, and PutVersioning, PutLifecycle,
// PutAccelerate and DeleteLifecycle change it.
func TestBucketConfigThroughSDK(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()

	v, _, err := c.Bucket.GetVersioning(ctx)
	if err != nil || v.Status != "" {
		t.Fatalf("GetVersioning of a new bucket = %+v, %v; want an empty Status", v, err)
	}
	_, _, err = c.Bucket.GetLifecycle(ctx)
	wantCode(t, err, "NoSuchLifecycleConfiguration", http.StatusNotFound)
	a, _, err := c.Bucket.GetAccelerate(ctx)
	if err != nil || a.Status != "Suspended" {
		t.Fatalf("GetAccelerate of a new bucket = %+v, %v; want Suspended", a, err)
	}

	if _, err := c.Bucket.PutVersioning(ctx, &cos.BucketPutVersionOptions{Status: "Enabled"}); err != nil {
		t.Fatalf("PutVersioning: %v", err)
	}
	if _, err := c.Bucket.PutAccelerate(ctx, &cos.BucketPutAccelerateOptions{Status: "Enabled", Type: "COS"}); err != nil {
		t.Fatalf("PutAccelerate: %v", err)
	}
	_, err = c.Bucket.PutLifecycle(ctx, &cos.BucketPutLifecycleOptions{Rules: []cos.BucketLifecycleRule{
		{ID: "expire", Status: "Enabled", Filter: &cos.BucketLifecycleFilter{Prefix: "logs/"}, Expiration: &cos.BucketLifecycleExpiration{Days: 30}},
		{ID: "abort", Status: "Enabled", Filter: &cos.BucketLifecycleFilter{Prefix: "registry/"},
			AbortIncompleteMultipartUpload: &cos.BucketLifecycleAbortIncompleteMultipartUpload{DaysAfterInitiation: 3}},
	}})
	if err != nil {
		t.Fatalf("PutLifecycle: %v", err)
	}
	v, _, err = c.Bucket.GetVersioning(ctx)
	if err != nil || v.Status != "Enabled" {
		t.Fatalf("GetVersioning after PutVersioning = %+v, %v; want Enabled", v, err)
	}
	a, _, err = c.Bucket.GetAccelerate(ctx)
	if err != nil || a.Status != "Enabled" {
		t.Fatalf("GetAccelerate after PutAccelerate = %+v, %v; want Enabled", a, err)
	}
	lc, _, err := c.Bucket.GetLifecycle(ctx)
	if err != nil || len(lc.Rules) != 1 || lc.Rules[0].AbortIncompleteMultipartUpload == nil ||
		lc.Rules[0].AbortIncompleteMultipartUpload.DaysAfterInitiation != 3 || lc.Rules[0].Filter == nil || lc.Rules[0].Filter.Prefix != "registry/" {
		t.Fatalf("GetLifecycle after PutLifecycle = %+v, %v; want the abort rule on registry/ after 3 days", lc, err)
	}
	if got := srv.CurrentBucketConfig(); got.AbortIncompleteUploadDays != 3 || got.Versioning != "Enabled" || !got.Accelerate {
		t.Fatalf("BucketConfig after the writes = %+v", got)
	}

	if _, err := c.Bucket.DeleteLifecycle(ctx); err != nil {
		t.Fatalf("DeleteLifecycle: %v", err)
	}
	_, _, err = c.Bucket.GetLifecycle(ctx)
	wantCode(t, err, "NoSuchLifecycleConfiguration", http.StatusNotFound)

	_, err = c.Bucket.PutVersioning(ctx, &cos.BucketPutVersionOptions{Status: "On"})
	wantCode(t, err, "MalformedXML", http.StatusBadRequest)
}

// TestMisbehaviorThroughSDK: each misbehavior breaks exactly its rule.
func TestMisbehaviorThroughSDK(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		putBytes(t, c, k, []byte(k))
	}

	srv.SetMisbehavior(Misbehavior{OmitCRC64: true})
	c.Conf.EnableCRC = false // the SDK would refuse the answers itself
	if resp := putBytes(t, c, "d", []byte("d")); resp.Header.Get("x-cos-hash-crc64ecma") != "" {
		t.Fatal("OmitCRC64: PUT still answers x-cos-hash-crc64ecma")
	}
	if _, resp := getBytes(t, c, "a", nil); resp.Header.Get("x-cos-hash-crc64ecma") != "" {
		t.Fatal("OmitCRC64: GET still answers x-cos-hash-crc64ecma")
	}

	srv.SetMisbehavior(Misbehavior{UnorderedListing: true})
	res, _, err := c.Bucket.Get(ctx, nil)
	if err != nil || len(res.Contents) != 4 || res.Contents[0].Key != "d" {
		t.Fatalf("UnorderedListing: listing = %+v, %v; want d first", res, err)
	}

	srv.SetMisbehavior(Misbehavior{Deny: []string{"GetObject"}})
	_, err = c.Object.Get(ctx, "a", nil)
	wantCode(t, err, "AccessDenied", http.StatusForbidden)
	if _, err := c.Object.Head(ctx, "a", nil); err != nil {
		t.Fatalf("Deny GetObject also denied HEAD: %v", err)
	}

	srv.SetMisbehavior(Misbehavior{RefuseLongSuffixRange: true})
	_, err = c.Object.Get(ctx, "a", &cos.ObjectGetOptions{Range: "bytes=-2"})
	wantCode(t, err, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
	if body, resp := getBytes(t, c, "a", &cos.ObjectGetOptions{Range: "bytes=-1"}); string(body) != "a" || resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("RefuseLongSuffixRange: a suffix within the object = %d %q, want 206 \"a\"", resp.StatusCode, body)
	}

	stale := &http.Header{"If-Match": []string{`"0123456789abcdef0123456789abcdef"`}}
	srv.SetMisbehavior(Misbehavior{IgnoreIfMatch: true})
	if body, _ := getBytes(t, c, "a", &cos.ObjectGetOptions{XOptionHeader: stale}); string(body) != "a" {
		t.Fatalf("IgnoreIfMatch: GET with a stale If-Match = %q, want \"a\"", body)
	}
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := init.UploadID
	_, _, err = c.Object.CopyPart(ctx, "b", id, 1, srv.BucketHost()+"/a", &cos.ObjectCopyPartOptions{XCosCopySourceIfMatch: `"0123456789abcdef0123456789abcdef"`})
	wantCode(t, err, "PreconditionFailed", http.StatusPreconditionFailed)

	srv.SetMisbehavior(Misbehavior{IgnoreCopySourceIfMatch: true})
	_, err = c.Object.Get(ctx, "a", &cos.ObjectGetOptions{XOptionHeader: stale})
	wantCode(t, err, "PreconditionFailed", http.StatusPreconditionFailed)
	if _, _, err := c.Object.CopyPart(ctx, "b", id, 1, srv.BucketHost()+"/a", &cos.ObjectCopyPartOptions{XCosCopySourceIfMatch: `"0123456789abcdef0123456789abcdef"`}); err != nil {
		t.Fatalf("IgnoreCopySourceIfMatch: part copy with a stale ETag: %v", err)
	}
	if _, _, err := c.Object.CopyPart(ctx, "b", id, 2, srv.BucketHost()+"/b", nil); err != nil {
		t.Fatalf("part copy from the upload's own key: %v", err)
	}

	srv.SetMisbehavior(Misbehavior{RefuseSelfPartCopy: true})
	_, _, err = c.Object.CopyPart(ctx, "b", id, 2, srv.BucketHost()+"/b", nil)
	wantCode(t, err, "InvalidRequest", http.StatusBadRequest)
	if _, _, err := c.Object.CopyPart(ctx, "b", id, 3, srv.BucketHost()+"/a", nil); err != nil {
		t.Fatalf("RefuseSelfPartCopy: part copy from another key: %v", err)
	}

	srv.SetMisbehavior(Misbehavior{})
	c.Conf.EnableCRC = true
	if resp := putBytes(t, c, "e", []byte("e")); resp.Header.Get("x-cos-hash-crc64ecma") == "" {
		t.Fatal("after SetMisbehavior(Misbehavior{}) PUT still omits x-cos-hash-crc64ecma")
	}
}

// TestGetBucketLocation: GET Bucket location answers the bucket's region
// (it was answered as a listing before), read by the Go SDK's GetLocation.
func TestGetBucketLocation(t *testing.T) {
	srv := startServer(t, Options{Region: "ap-shanghai"})
	res, _, err := newClient(t, srv).Bucket.GetLocation(context.Background())
	if err != nil || res.Location != "ap-shanghai" {
		t.Fatalf("GetLocation: %+v %v", res, err)
	}
	if n := srv.Stats().Requests[opGetBucketLocation]; n != 1 {
		t.Fatalf("%d GetBucketLocation requests counted", n)
	}
}
