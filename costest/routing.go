package costest

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// unsupportedSubresources are COS subresources the emulator does not
// implement. Answering them as if they were plain object or bucket requests
// would mislead a client (GET /key?acl returning the object), so they get
// 501 NotImplemented.
var unsupportedSubresources = []string{
	"acl", "cors", "lifecycle", "policy", "tagging", "versions", "versioning", "website",
	"referer", "logging", "inventory", "restore", "select", "replication", "domain",
	"encryption", "intelligenttiering", "object-lock", "retention", "legal-hold", "torrent",
	"notification", "accelerate", "origin",
}

// operationOf classifies a request the way COS routes it: on the host (the
// service endpoint answers GET Service), on the method, on whether a key is
// present, on subresource query keys and on the x-cos-copy-source header.
// service is true for requests that reached Server.ServiceURL.
func operationOf(r *http.Request, q url.Values, service bool) string {
	if service || namesNoBucket(r.Host) {
		if r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "") {
			return opGetService
		}
		return opUnknown
	}
	if op := bucketConfigOperation(r); op != "" {
		return op
	}
	for _, name := range unsupportedSubresources {
		if q.Has(name) {
			return opUnknown
		}
	}
	bucketLevel := r.URL.Path == "/" || r.URL.Path == ""
	copySource := r.Header.Get("x-cos-copy-source") != ""
	if bucketLevel {
		switch r.Method {
		case http.MethodHead:
			return opHeadBucket
		case http.MethodPut:
			return opPutBucket
		case http.MethodGet:
			if q.Has("uploads") {
				return opListMultipartUploads
			}
			return opListObjects
		case http.MethodPost:
			if q.Has("delete") {
				return opDeleteMultipleObjects
			}
		}
		return opUnknown
	}
	switch r.Method {
	case http.MethodPut:
		if q.Has("partNumber") || q.Has("uploadId") {
			if copySource {
				return opUploadPartCopy
			}
			return opUploadPart
		}
		if copySource {
			return opCopyObject
		}
		return opPutObject
	case http.MethodGet:
		if q.Has("uploadId") {
			return opListParts
		}
		return opGetObject
	case http.MethodHead:
		return opHeadObject
	case http.MethodDelete:
		if q.Has("uploadId") {
			return opAbortMultipartUpload
		}
		return opDeleteObject
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return opInitiateMultipartUpload
		case q.Has("uploadId"):
			return opCompleteMultipartUpload
		case q.Has("append"):
			return opAppendObject
		}
	}
	return opUnknown
}

// bucketHostPattern matches COS bucket hosts: name-appid.cos[-internal|
// -website].region.(myqcloud.com|tencentcos.cn); the port is stripped first.
var bucketHostPattern = regexp.MustCompile(`^([a-z0-9-]+-[0-9]+)\.cos(-internal|-website)?\.([a-z0-9-]+)\.(myqcloud\.com|tencentcos\.cn)$`)

// bucketFromHost returns the bucket and region a Host names; ok is false for
// any other host (an IP, localhost, a custom domain), which the emulator
// serves from its default bucket.
func bucketFromHost(host string) (bucket, region string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	m := bucketHostPattern.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", "", false
	}
	return m[1], m[3], true
}

// serviceHostPattern matches the hosts of GET Service: service.cos.<domain>
// for every bucket, cos.<region>.<domain> for one region's (API page "GET
// Service (List Buckets)"; the Go and Node.js SDKs use the same two hosts).
var serviceHostPattern = regexp.MustCompile(`^(service\.cos|cos\.([a-z0-9-]+))\.(myqcloud\.com|tencentcos\.cn)$`)

// regionHostPattern matches the COS hosts that name a region but no
// bucket: the service hosts and cos-internal.<region>.tencentcos.cn. COS
// finds the bucket in the host name, so it cannot route a bucket or object
// request there (a driver configured with S3's regionendpoint style, or
// with the internal domain without the bucket, sends such requests).
var regionHostPattern = regexp.MustCompile(`^(service\.cos|cos(-internal)?\.[a-z0-9-]+)\.(myqcloud\.com|tencentcos\.cn)$`)

// namesNoBucket reports whether a Host is a COS host without a bucket.
// An IP, localhost or any other host is served from the default bucket.
func namesNoBucket(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return regionHostPattern.MatchString(strings.ToLower(host))
}

// isServiceHost reports whether a Host is a GET Service endpoint.
func isServiceHost(host string) bool {
	_, ok := serviceRegion(host)
	return ok
}

// serviceRegion returns the region a service host restricts GET Service
// to ("" for service.cos.myqcloud.com).
func serviceRegion(host string) (region string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	m := serviceHostPattern.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", false
	}
	return m[2], true
}

// bucketHost is the virtual-hosted name of a bucket.
func bucketHost(bucket, region string) string {
	return bucket + ".cos." + region + ".myqcloud.com"
}
