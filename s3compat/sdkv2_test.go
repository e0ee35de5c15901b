package s3compat

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/registry-cos/cos/costest"
)

func v2Client(endpoint string, hc *http.Client, optFns ...func(*s3.Options)) *s3.Client {
	opts := s3.Options{
		Region:       costest.DefaultRegion,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(costest.DefaultSecretID, costest.DefaultSecretKey, ""),
		Retryer:      aws.NopRetryer{},
		// What config.LoadDefaultConfig sets: flexible checksums on.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	}
	if hc != nil {
		opts.HTTPClient = hc
	}
	return s3.New(opts, optFns...)
}

func v2Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// addContentMD5 is what a client of COS adds to DELETE Multiple Objects
// since AWS SDKs stopped sending Content-MD5 (they send x-amz-checksum-*,
// which COS ignores).
var addContentMD5 = middleware.BuildMiddlewareFunc("ContentMD5", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	if req, ok := in.Request.(*smithyhttp.Request); ok && req.GetStream() != nil {
		body, err := io.ReadAll(req.GetStream())
		if err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, err
		}
		sum := md5.Sum(body)
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum[:]))
		if req, err = req.SetStream(bytes.NewReader(body)); err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, err
		}
		in.Request = req
	}
	return next.HandleBuild(ctx, in)
})

// TestAWSSDKv2 drives AWS SDK for Go v2 with its defaults (flexible
// checksums on) through put, get, list, multipart, copy, delete and
// presigned URLs over HTTP.
func TestAWSSDKv2(t *testing.T) {
	srv := startEmulator(t)
	ctx := context.Background()
	c := v2Client(srv.URL, nil)
	bucket := aws.String(srv.Bucket)
	small := []byte("hello from aws-sdk-go-v2")

	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: bucket, Key: aws.String("v2/small"), Body: bytes.NewReader(small), Metadata: map[string]string{"color": "green"},
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("v2/small")})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(small)) || head.Metadata["color"] != "green" {
		t.Fatalf("HeadObject: %+v %v", head, err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("v2/small")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, small) {
		t.Fatalf("GetObject: %q", b)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: aws.String("missing")}); err == nil {
		t.Fatalf("HeadObject of a missing key passed")
	}
	var nsk *types.NoSuchKey
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("missing")}); !errors.As(err, &nsk) {
		t.Fatalf("GetObject of a missing key: %v", err)
	}

	// Multipart by hand: two parts, the first at the 5 MiB S3 minimum.
	large := randomBytes(7<<20, 2)
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String("v2/large")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, chunk := range [][]byte{large[:5<<20], large[5<<20:]} {
		n := int32(i + 1)
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String("v2/large"), UploadId: mp.UploadId, PartNumber: &n, Body: bytes.NewReader(chunk)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: &n})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: bucket, Key: aws.String("v2/large"), UploadId: mp.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: aws.String("v2/copy"), CopySource: aws.String(srv.Bucket + "/v2/large")}); err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	cp, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("v2/copy")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(cp.Body); !bytes.Equal(b, large) {
		t.Fatalf("copy differs")
	}

	var keys []string
	pages := 0
	pg := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: bucket, Prefix: aws.String("v2/"), MaxKeys: aws.Int32(2)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		pages++
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if want := "v2/copy v2/large v2/small"; strings.Join(keys, " ") != want || pages != 2 {
		t.Fatalf("listed %v in %d pages, want %s in 2", keys, pages, want)
	}

	// Presigned GET.
	ps, err := s3.NewPresignClient(c).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("v2/small")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(ps.URL); err != nil || resp.StatusCode != 200 || !bytes.Equal(readBody(resp), small) {
		t.Fatalf("presigned GET: %v %v", resp, err)
	}

	// DeleteObjects: the SDK sends x-amz-checksum-crc32 and no Content-MD5,
	// which COS refuses; with Content-MD5 added it works.
	objects := &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("v2/copy")}, {Key: aws.String("v2/large")}}}
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: objects})
	if v2Code(err) != "MissingContentMD5" {
		t.Fatalf("DeleteObjects without Content-MD5: %v", err)
	}
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: objects}, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error { return st.Build.Add(addContentMD5, middleware.After) })
	})
	if err != nil || len(del.Deleted) != 2 {
		t.Fatalf("DeleteObjects with Content-MD5: %+v %v", del, err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: aws.String("v2/small")}); err != nil {
		t.Fatal(err)
	}
	left, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})
	if err != nil || aws.ToInt32(left.KeyCount) != 0 {
		t.Fatalf("after deletes: %+v %v", left, err)
	}
}

// TestAWSSDKv2OverTLS: over HTTPS AWS SDK for Go v2 streams uploads as
// aws-chunked with a trailing checksum by default, which COS does not
// take; with RequestChecksumCalculation "when required" (the setting
// Tencent-compatible clients use) the body goes whole and the upload works.
func TestAWSSDKv2OverTLS(t *testing.T) {
	h, err := costest.NewHandler(costest.Options{BucketCreated: oldBucket})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	ctx := context.Background()
	data := randomBytes(100000, 3)

	c := v2Client(ts.URL, ts.Client())
	// A body the SDK cannot seek, as a stream being uploaded is.
	stream := struct{ io.Reader }{bytes.NewReader(data)}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(costest.DefaultBucket), Key: aws.String("tls"), Body: stream, ContentLength: aws.Int64(int64(len(data)))})
	if v2Code(err) != "NotImplemented" {
		t.Fatalf("aws-chunked PutObject: %v, want NotImplemented", err)
	}
	c = v2Client(ts.URL, ts.Client(), func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(costest.DefaultBucket), Key: aws.String("tls"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("PutObject when required: %v", err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(costest.DefaultBucket), Key: aws.String("tls")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, data) {
		t.Fatalf("object differs")
	}
}
