package s3compat

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
	"github.com/aws/aws-sdk-go/service/s3/s3manager"

	"github.com/registry-cos/cos/costest"
)

// oldBucket dates the emulator's bucket before 2024: COS lets only such
// buckets be addressed path-style, as an SDK must address a local emulator
// whose address names no bucket.
var oldBucket = time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)

func startEmulator(t *testing.T) *costest.Server {
	t.Helper()
	srv, err := costest.NewServer(costest.Options{BucketCreated: oldBucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func randomBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func v1Client(t *testing.T, srv *costest.Server, secret string) *s3.S3 {
	t.Helper()
	sess, err := session.NewSession(&aws.Config{
		Credentials:      credentials.NewStaticCredentials(srv.SecretID, secret, ""),
		Endpoint:         aws.String(srv.URL),
		Region:           aws.String(srv.Region),
		S3ForcePathStyle: aws.Bool(true),
		MaxRetries:       aws.Int(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s3.New(sess)
}

func v1Code(err error) string {
	var ae awserr.Error
	if errors.As(err, &ae) {
		return ae.Code()
	}
	return ""
}

// TestAWSSDKv1 drives AWS SDK for Go v1, unchanged but for its endpoint,
// through put, get, list, multipart, copy, delete and presigned URLs.
func TestAWSSDKv1(t *testing.T) {
	srv := startEmulator(t)
	c := v1Client(t, srv, srv.SecretKey)
	bucket := aws.String(srv.Bucket)
	small := []byte("hello from aws-sdk-go v1")

	if _, err := c.PutObject(&s3.PutObjectInput{
		Bucket: bucket, Key: aws.String("dir/small"), Body: bytes.NewReader(small),
		Metadata: map[string]*string{"Color": aws.String("blue")}, ContentType: aws.String("text/plain"),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	head, err := c.HeadObject(&s3.HeadObjectInput{Bucket: bucket, Key: aws.String("dir/small")})
	if err != nil || aws.Int64Value(head.ContentLength) != int64(len(small)) || aws.StringValue(head.Metadata["Color"]) != "blue" ||
		aws.StringValue(head.ContentType) != "text/plain" {
		t.Fatalf("HeadObject: %v %v", head, err)
	}
	got, err := c.GetObject(&s3.GetObjectInput{Bucket: bucket, Key: aws.String("dir/small"), Range: aws.String("bytes=6-9")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	if b, _ := io.ReadAll(got.Body); string(b) != "from" || aws.StringValue(got.ContentRange) != "bytes 6-9/24" {
		t.Fatalf("ranged GetObject: %q %v", b, aws.StringValue(got.ContentRange))
	}
	_, err = c.GetObject(&s3.GetObjectInput{Bucket: bucket, Key: aws.String("missing")})
	if v1Code(err) != s3.ErrCodeNoSuchKey {
		t.Fatalf("GetObject of a missing key: %v", err)
	}

	// Multipart through the SDK's uploader: 12 MiB in 5 MiB parts.
	large := randomBytes(12<<20, 1)
	up := s3manager.NewUploaderWithClient(c, func(u *s3manager.Uploader) { u.PartSize = 5 << 20; u.Concurrency = 2 })
	if _, err := up.Upload(&s3manager.UploadInput{Bucket: bucket, Key: aws.String("dir/large"), Body: bytes.NewReader(large)}); err != nil {
		t.Fatalf("multipart Upload: %v", err)
	}
	lh, err := c.HeadObject(&s3.HeadObjectInput{Bucket: bucket, Key: aws.String("dir/large")})
	if err != nil || aws.Int64Value(lh.ContentLength) != int64(len(large)) || !strings.HasSuffix(aws.StringValue(lh.ETag), `-3"`) {
		t.Fatalf("multipart object: %v %v", lh, err)
	}
	buf := aws.NewWriteAtBuffer(nil)
	dl := s3manager.NewDownloaderWithClient(c, func(d *s3manager.Downloader) { d.PartSize = 5 << 20 })
	if _, err := dl.Download(buf, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("dir/large")}); err != nil || !bytes.Equal(buf.Bytes(), large) {
		t.Fatalf("ranged Download: %v", err)
	}

	// Server-side copies: CopyObject, and UploadPartCopy of a range.
	if _, err := c.CopyObject(&s3.CopyObjectInput{Bucket: bucket, Key: aws.String("copy/small"), CopySource: aws.String(srv.Bucket + "/dir/small")}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	mp, err := c.CreateMultipartUpload(&s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("copy/large")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []*s3.CompletedPart
	for i, r := range []string{"bytes=0-5242879", "bytes=5242880-12582911"} {
		pc, err := c.UploadPartCopy(&s3.UploadPartCopyInput{
			Bucket: bucket, Key: aws.String("copy/large"), UploadId: mp.UploadId, PartNumber: aws.Int64(int64(i + 1)),
			CopySource: aws.String(srv.Bucket + "/dir/large"), CopySourceRange: aws.String(r),
		})
		if err != nil {
			t.Fatalf("UploadPartCopy %s: %v", r, err)
		}
		parts = append(parts, &s3.CompletedPart{ETag: pc.CopyPartResult.ETag, PartNumber: aws.Int64(int64(i + 1))})
	}
	if _, err := c.CompleteMultipartUpload(&s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: aws.String("copy/large"), UploadId: mp.UploadId,
		MultipartUpload: &s3.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	cl, err := c.GetObject(&s3.GetObjectInput{Bucket: bucket, Key: aws.String("copy/large")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(cl.Body); !bytes.Equal(b, large) {
		t.Fatalf("copied multipart object differs")
	}

	// An upload left open shows in ListMultipartUploads and ListParts.
	open, _ := c.CreateMultipartUpload(&s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("open/data")})
	if _, err := c.UploadPart(&s3.UploadPartInput{Bucket: bucket, Key: aws.String("open/data"), UploadId: open.UploadId, PartNumber: aws.Int64(1), Body: bytes.NewReader(small)}); err != nil {
		t.Fatal(err)
	}
	ups, err := c.ListMultipartUploads(&s3.ListMultipartUploadsInput{Bucket: bucket, Prefix: aws.String("open/")})
	if err != nil || len(ups.Uploads) != 1 {
		t.Fatalf("ListMultipartUploads: %v %v", ups, err)
	}
	lp, err := c.ListParts(&s3.ListPartsInput{Bucket: bucket, Key: aws.String("open/data"), UploadId: open.UploadId})
	if err != nil || len(lp.Parts) != 1 || aws.Int64Value(lp.Parts[0].Size) != int64(len(small)) {
		t.Fatalf("ListParts: %v %v", lp, err)
	}
	if _, err := c.AbortMultipartUpload(&s3.AbortMultipartUploadInput{Bucket: bucket, Key: aws.String("open/data"), UploadId: open.UploadId}); err != nil {
		t.Fatal(err)
	}

	// ListObjectsV2, paged by the SDK's paginator.
	var keys []string
	pages := 0
	err = c.ListObjectsV2Pages(&s3.ListObjectsV2Input{Bucket: bucket, MaxKeys: aws.Int64(2)}, func(p *s3.ListObjectsV2Output, last bool) bool {
		pages++
		for _, o := range p.Contents {
			keys = append(keys, aws.StringValue(o.Key))
		}
		return true
	})
	if want := "copy/large copy/small dir/large dir/small"; err != nil || strings.Join(keys, " ") != want || pages != 2 {
		t.Fatalf("ListObjectsV2: %v in %d pages (%v), want %s", keys, pages, err, want)
	}
	// ListObjects (v1) still works for SDKs that use it.
	l1, err := c.ListObjects(&s3.ListObjectsInput{Bucket: bucket, Prefix: aws.String("dir/"), Delimiter: aws.String("/")})
	if err != nil || len(l1.Contents) != 2 {
		t.Fatalf("ListObjects: %v %v", l1, err)
	}

	// Presigned GET and PUT URLs, used by plain HTTP clients.
	req, _ := c.GetObjectRequest(&s3.GetObjectInput{Bucket: bucket, Key: aws.String("dir/small")})
	getURL, err := req.Presign(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(getURL); err != nil || resp.StatusCode != 200 || string(readBody(resp)) != string(small) {
		t.Fatalf("presigned GET: %v %v", resp, err)
	}
	req, _ = c.PutObjectRequest(&s3.PutObjectInput{Bucket: bucket, Key: aws.String("presigned/put")})
	putURL, err := req.Presign(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	preq, _ := http.NewRequest("PUT", putURL, bytes.NewReader(small))
	if resp, err := http.DefaultClient.Do(preq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned PUT: %v %v", resp, err)
	}

	// DeleteObjects (the SDK sends Content-MD5) and DeleteObject.
	del, err := c.DeleteObjects(&s3.DeleteObjectsInput{Bucket: bucket, Delete: &s3.Delete{Objects: []*s3.ObjectIdentifier{
		{Key: aws.String("copy/large")}, {Key: aws.String("copy/small")},
	}}})
	if err != nil || len(del.Deleted) != 2 {
		t.Fatalf("DeleteObjects: %v %v", del, err)
	}
	if _, err := c.DeleteObject(&s3.DeleteObjectInput{Bucket: bucket, Key: aws.String("presigned/put")}); err != nil {
		t.Fatal(err)
	}
	left, _ := c.ListObjectsV2(&s3.ListObjectsV2Input{Bucket: bucket})
	if aws.Int64Value(left.KeyCount) != 2 {
		t.Fatalf("after deletes: %v", left)
	}

	// A wrong secret is refused as S3 refuses it.
	bad := v1Client(t, srv, "wrong")
	if _, err := bad.HeadBucket(&s3.HeadBucketInput{Bucket: bucket}); err == nil {
		t.Fatalf("HeadBucket with a wrong secret passed")
	}
	if _, err := bad.GetObject(&s3.GetObjectInput{Bucket: bucket, Key: aws.String("dir/small")}); v1Code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("GetObject with a wrong secret: %v", err)
	}
}

func readBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}
