// Package costest is a Tencent Cloud COS (Cloud Object Storage) XML-API
// emulator for tests, benchmarks and local development.
//
// A Handler is a plain http.Handler that speaks the COS wire protocol as the
// official Go SDK (github.com/tencentyun/cos-go-sdk-v5) uses it: virtual-host
// bucket routing, the q-sign HMAC-SHA1 request signature (Authorization
// header, presigned URLs, temporary keys with session tokens), COS error XML,
// quoted MD5 ETags, x-cos-hash-crc64ecma checksums, v1 object listing with
// marker and delimiter, multipart uploads, server-side copies and appendable
// objects, with the size limits and error codes COS applies. A download
// honours x-cos-traffic-limit (header or presigned query parameter) and
// Stats.TrafficLimits counts the downloads served at a limit.
//
// It also answers the AWS S3-compatible requests COS takes on the same
// endpoints (sigv4.go): AWS Signature Version 4 in the Authorization header
// or a presigned query, x-amz-* headers for their x-cos-* counterparts,
// ListObjectsV2, S3's error codes, and path-style addressing
// (<endpoint>/<bucket>/<key>) for buckets created before 2024
// (Options.BucketCreated), so AWS SDKs and the upstream s3-aws storage
// driver can be pointed at it.
//
// Objects live in memory (Options.Dir empty) or on disk under Options.Dir,
// where objects and in-progress multipart uploads survive a restart. Large
// objects stream to and from disk, so memory does not grow with object size.
//
// The emulator can inject faults (latency, per-connection bandwidth caps,
// 500/503 answers, dropped connections, 200 answers carrying an <Error>, and
// listing lag) and counts requests by operation (Stats), so tests can measure
// how many requests a client makes and how it recovers.
//
// NewServer starts the handler on a listener, in the manner of
// httptest.NewServer, and Server.Client returns an SDK client configured for
// it, in the manner of httptest.Server.Client:
//
//	srv, err := costest.NewServer(costest.Options{})
//	...
//	defer srv.Close()
//	client := srv.Client() // *cos.Client: BucketURL srv.URL, ServiceURL srv.ServiceURL
//
// A client built by hand uses srv.URL as its BucketURL and srv.ServiceURL as
// its ServiceURL (GET Service, listing buckets, has its own endpoint on COS
// too: service.cos.myqcloud.com). Tencent's Node.js SDK is configured the
// same way: Domain is the host of URL, ServiceDomain the host of ServiceURL,
// Protocol "http:".
//
// A request whose Host is not a COS bucket host (such as 127.0.0.1:PORT) is
// served from the default bucket, Options.Bucket.
package costest
