package costest

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

func TestCopyObject(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "http://")
	data := randomBytes(2<<20, 4)
	meta := http.Header{}
	meta.Set("x-cos-meta-a", "1")
	_, err := c.Object.Put(ctx, "src dir/obj+1", bytes.NewReader(data), &cos.ObjectPutOptions{ObjectPutHeaderOptions: &cos.ObjectPutHeaderOptions{XCosMetaXXX: &meta, ContentType: "text/x"}})
	if err != nil {
		t.Fatal(err)
	}
	// Copy directive keeps metadata; the local host means this bucket.
	res, _, err := c.Object.Copy(ctx, "dst/copy", host+"/src dir/obj+1", nil)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if res.ETag == "" || res.CRC64 == "" {
		t.Errorf("copy result = %+v", res)
	}
	got, resp := getBytes(t, c, "dst/copy", nil)
	if !bytes.Equal(got, data) || resp.Header.Get("X-Cos-Meta-A") != "1" || resp.Header.Get("Content-Type") != "text/x" {
		t.Errorf("copied object: %d bytes, headers %v", len(got), resp.Header)
	}
	// Replaced takes the request's metadata; the bucket-host form works.
	_, _, err = c.Object.Copy(ctx, "dst/replaced", srv.BucketHost()+"/src dir/obj+1", &cos.ObjectCopyOptions{
		ObjectCopyHeaderOptions: &cos.ObjectCopyHeaderOptions{XCosMetadataDirective: "Replaced", ContentType: "text/y"},
	})
	if err != nil {
		t.Fatalf("Copy Replaced: %v", err)
	}
	resp, err = c.Object.Head(ctx, "dst/replaced", nil)
	if err != nil || resp.Header.Get("X-Cos-Meta-A") != "" || resp.Header.Get("Content-Type") != "text/y" {
		t.Errorf("replaced object: %v %v", err, resp.Header)
	}
	// Deleting the source leaves the copy intact (shared data is counted).
	c.Object.Delete(ctx, "src dir/obj+1")
	if got, _ := getBytes(t, c, "dst/copy", nil); !bytes.Equal(got, data) {
		t.Errorf("copy changed after its source was deleted")
	}

	tests := []struct {
		name, source string
		opt          *cos.ObjectCopyOptions
		code         string
		status       int
	}{
		{"missing source", host + "/nope", nil, "NoSuchCopySource", 404},
		{"missing source bucket", "nope-1250000000.cos.ap-guangzhou.myqcloud.com/x", nil, "NoSuchBucket", 404},
		{"onto itself without Replaced", host + "/dst/copy", nil, "InvalidRequest", 400},
		{"bad directive", host + "/dst/copy", &cos.ObjectCopyOptions{ObjectCopyHeaderOptions: &cos.ObjectCopyHeaderOptions{XCosMetadataDirective: "REPLACE"}}, "InvalidArgument", 400},
		{"source If-Match fails", host + "/dst/copy", &cos.ObjectCopyOptions{ObjectCopyHeaderOptions: &cos.ObjectCopyHeaderOptions{XCosCopySourceIfMatch: `"x"`}}, "PreconditionFailed", 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := "dst/other"
			if tt.name == "onto itself without Replaced" {
				dst = "dst/copy"
			}
			_, _, err := c.Object.Copy(ctx, dst, tt.source, tt.opt)
			wantCode(t, err, tt.code, tt.status)
		})
	}
}

func TestUploadPartCopy(t *testing.T) {
	srv := startServer(t, Options{Dir: t.TempDir()})
	c := newClient(t, srv)
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "http://")
	data := randomBytes(3<<20, 5)
	putBytes(t, c, "big", data)
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "joined", nil)
	if err != nil {
		t.Fatal(err)
	}
	src := host + "/" + url.PathEscape("big")
	r1, _, err := c.Object.CopyPart(ctx, "joined", init.UploadID, 1, src, &cos.ObjectCopyPartOptions{XCosCopySourceRange: "bytes=0-1048575"})
	if err != nil {
		t.Fatalf("CopyPart 1: %v", err)
	}
	r2, _, err := c.Object.CopyPart(ctx, "joined", init.UploadID, 2, src, &cos.ObjectCopyPartOptions{XCosCopySourceRange: "bytes=1048576-3145727"})
	if err != nil {
		t.Fatalf("CopyPart 2: %v", err)
	}
	_, _, err = c.Object.CompleteMultipartUpload(ctx, "joined", init.UploadID, &cos.CompleteMultipartUploadOptions{Parts: []cos.Object{
		{PartNumber: 1, ETag: r1.ETag}, {PartNumber: 2, ETag: r2.ETag},
	}})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got, _ := getBytes(t, c, "joined", nil); !bytes.Equal(got, data) {
		t.Errorf("object built from copied parts differs from its source")
	}
	_, _, err = c.Object.CopyPart(ctx, "joined", "nope", 1, src, nil)
	wantCode(t, err, "NoSuchUpload", 404)
	init2, _, _ := c.Object.InitiateMultipartUpload(ctx, "j2", nil)
	_, _, err = c.Object.CopyPart(ctx, "j2", init2.UploadID, 1, src, &cos.ObjectCopyPartOptions{XCosCopySourceRange: "bytes=0-3145728"})
	wantCode(t, err, "InvalidArgument", 400)
}

func TestDeleteMultipleObjects(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	for _, k := range []string{"a&b<c", "x/y", "z"} {
		putBytes(t, c, k, []byte(k))
	}
	res, _, err := c.Object.DeleteMulti(ctx, &cos.ObjectDeleteMultiOptions{Objects: []cos.Object{{Key: "a&b<c"}, {Key: "x/y"}, {Key: "missing"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DeletedObjects) != 3 || len(res.Errors) != 0 {
		t.Errorf("verbose result = %+v", res)
	}
	res, _, err = c.Object.DeleteMulti(ctx, &cos.ObjectDeleteMultiOptions{Quiet: true, Objects: []cos.Object{{Key: "z"}}})
	if err != nil || len(res.DeletedObjects) != 0 {
		t.Errorf("quiet result = %+v, %v", res, err)
	}
	if lr, _, _ := c.Bucket.Get(ctx, nil); len(lr.Contents) != 0 {
		t.Errorf("objects left: %+v", lr.Contents)
	}
	many := make([]cos.Object, 1001)
	for i := range many {
		many[i].Key = "k"
	}
	_, _, err = c.Object.DeleteMulti(ctx, &cos.ObjectDeleteMultiOptions{Objects: many})
	wantCode(t, err, "MalformedXML", 400)
}
