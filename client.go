package cos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// endpoints says where the driver's requests go, resolved once from the
// parameters (Validate checks them through the same function).
type endpoints struct {
	// api is the base URL of every API request.
	api *url.URL
	// bucketAPI is the base URL of bucket-level requests (listings,
	// multi-delete, HEAD Bucket): api, except with acceleration, which
	// Tencent documents for object uploads and downloads only.
	bucketAPI *url.URL
	// hostHeader, when set, replaces the Host of API requests: an IP or
	// localhost endpoint does not name the bucket.
	hostHeader string
	// copySourceHost names the bucket in x-cos-copy-source.
	copySourceHost string
	// redirect is the base URL of presigned redirect URLs.
	redirect *url.URL
	// internal is the base URL of the redirects of clients in
	// internalNets (nil without internalcidrs).
	internal     *url.URL
	internalNets []*net.IPNet
}

// resolveEndpoints works out the endpoints of valid parameters, or says
// which parameter makes them impossible.
func resolveEndpoints(p Parameters) (endpoints, error) {
	var e endpoints
	scheme := "https"
	if !p.Secure {
		scheme = "http"
	}
	switch {
	case p.Endpoint != "":
		u, err := parseBaseURL("endpoint", p.Endpoint)
		if err != nil {
			return e, err
		}
		if p.Accelerate {
			return e, fmt.Errorf("cos: parameters endpoint and accelerate exclude each other")
		}
		if regionHostPattern.MatchString(u.Hostname()) {
			return e, fmt.Errorf("cos: parameter endpoint %q is a COS region host, which names no bucket: COS cannot route the driver's requests there; use the bucket's own host, such as https://%s.cos-internal.<region>.tencentcos.cn, or leave endpoint empty", p.Endpoint, p.Bucket)
		}
		u.Path = ""
		e.api = u
		if isLocalHost(u.Hostname()) {
			if p.Region == "" {
				return e, fmt.Errorf("cos: parameter region is required with endpoint %q: requests carry the bucket's host name, which names the region", p.Endpoint)
			}
			// Send the bucket's own host name so the configured bucket is addressed.
			e.hostHeader = bucketHost(p.Bucket, p.Region)
		}
	case p.Accelerate:
		if p.Region == "" {
			return e, fmt.Errorf("cos: parameter region is required with accelerate: listings, deletes and copy sources use the bucket's region host")
		}
		e.api = &url.URL{Scheme: scheme, Host: p.Bucket + ".cos.accelerate.myqcloud.com"}
	case p.Region == "":
		return e, fmt.Errorf("cos: parameter region is required (such as \"ap-guangzhou\") unless endpoint is the bucket's own host")
	default:
		e.api = &url.URL{Scheme: scheme, Host: bucketHost(p.Bucket, p.Region)}
	}
	region := p.Region
	if region == "" {
		// An endpoint that is the bucket's default host names the region.
		if m := bucketHostPattern.FindStringSubmatch(e.api.Hostname()); m != nil && m[1] == p.Bucket && m[2] != "accelerate" {
			region = m[2]
		} else {
			return e, fmt.Errorf("cos: parameter region is required with endpoint %q: COS names a copy source (every Move) by <bucket>.cos.<region>.myqcloud.com", p.Endpoint)
		}
	}
	// COS names a copy source by the bucket's region host, whatever host
	// the request itself goes to (custom domain, acceleration, emulator).
	e.copySourceHost = bucketHost(p.Bucket, region)
	// Tencent documents global acceleration for object uploads and
	// downloads; bucket-level calls go to the region host.
	e.bucketAPI = e.api
	if p.Accelerate {
		e.bucketAPI = &url.URL{Scheme: scheme, Host: e.copySourceHost}
	}
	e.redirect = e.api
	if p.RedirectEndpoint != "" {
		u, err := parseBaseURL("redirectendpoint", p.RedirectEndpoint)
		if err != nil {
			return e, err
		}
		u.Path = ""
		e.redirect = u
	}
	if len(p.InternalCIDRs) > 0 {
		nets, err := parseCIDRs(p.InternalCIDRs)
		if err != nil {
			return e, err
		}
		e.internalNets = nets
		// Tencent's private-network host of the bucket: it resolves only
		// inside Tencent Cloud, to the region's internal COS addresses.
		e.internal = &url.URL{Scheme: scheme, Host: fmt.Sprintf("%s.cos-internal.%s.tencentcos.cn", p.Bucket, region)}
		if p.InternalEndpoint != "" {
			u, err := parseBaseURL("internalendpoint", p.InternalEndpoint)
			if err != nil {
				return e, err
			}
			u.Path = ""
			e.internal = u
		}
	}
	return e, nil
}

// bucketHostPattern matches a bucket's own COS host, default or internal
// (<bucket>.cos-internal.<region>.tencentcos.cn, which the docs recommend
// inside Tencent Cloud): bucket and region.
var bucketHostPattern = regexp.MustCompile(`^([a-z0-9-]+)\.cos(?:-internal)?\.([a-z0-9-]+)\.(?:myqcloud\.com|tencentcos\.cn)$`)

// regionHostPattern matches COS hosts that name a region but no bucket:
// cos.<region>.myqcloud.com (S3's regionendpoint style),
// cos-internal.<region>.tencentcos.cn, service.cos.myqcloud.com.
var regionHostPattern = regexp.MustCompile(`^(service\.cos|cos(?:-internal)?\.[a-z0-9-]+)\.(?:myqcloud\.com|tencentcos\.cn)$`)

// bucketHost is the default host of a bucket in a region.
func bucketHost(bucket, region string) string {
	return fmt.Sprintf("%s.cos.%s.myqcloud.com", bucket, region)
}

// newDriver builds the driver of validated parameters: the transport, the
// signing credentials and the SDK clients.
func newDriver(ctx context.Context, p Parameters, e endpoints) (*driver, error) {
	d := &driver{
		heads:     &headMemo{},
		params:    p,
		endpoints: e,
		root:      strings.Trim(p.RootDirectory, "/"),
		requests:  make(chan struct{}, p.MaxConcurrency),
		buffers:   newBufferPool(p.MaxBufferMemory, defaultMetrics.bufferBytes),
		metrics:   defaultMetrics,
	}
	d.background = newBackgroundWork()
	d.metrics.bufferLimit.Set(float64(p.MaxBufferMemory / pieceSize * pieceSize))
	credentials, err := newCredentialSource(ctx, p)
	if err != nil {
		return nil, err
	}
	d.credentials = credentials
	d.httpClient = &http.Client{Transport: &signingTransport{source: credentials, base: newTransport(p)}}
	d.client = d.newSDKClient(e.api)
	d.client.Host = e.hostHeader
	d.bucketClient = d.client
	if e.bucketAPI.Host != e.api.Host {
		d.bucketClient = d.newSDKClient(e.bucketAPI)
	}
	d.presign = d.newSDKClient(e.redirect)
	if p.RedirectEndpoint != "" || e.hostHeader != "" {
		// The SDK refuses base URLs that are not COS hosts.
		d.presign.DisableURLCheck()
		d.client.DisableURLCheck()
	}
	if e.internal != nil {
		d.presignInternal = d.newSDKClient(e.internal)
		d.presignInternal.DisableURLCheck()
	}
	return d, nil
}

// newSDKClient is an SDK client for base URL u on the driver's signing
// transport. The driver retries with backoff itself (retry.go), so the SDK
// tries once per call; and it checks every write's CRC64 itself
// (checkWriteCRC), so the SDK's check, a second and slower pass over each
// body, is off.
func (d *driver) newSDKClient(u *url.URL) *cossdk.Client {
	c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: u}, d.httpClient)
	c.Conf.RetryOpt.Count = 1
	c.Conf.EnableCRC = false
	c.UserAgent = strings.TrimSpace("registry-cos " + d.params.UserAgent)
	return c
}

// ProbeClient returns a new SDK client for the driver's bucket, endpoint
// and credentials that leaves COS's answers unchecked (no CRC64
// verification, one try per call), for probes such as `registry-cos
// check` that judge those answers themselves.
func (d *Driver) ProbeClient() *cossdk.Client {
	id := d.Base.StorageDriver.(*driver)
	c := id.newSDKClient(id.endpoints.api)
	c.Host = id.endpoints.hostHeader
	if c.Host != "" {
		c.DisableURLCheck()
	}
	return c
}

// newTransport is the HTTP transport of every COS request.
func newTransport(p Parameters) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4 * p.MaxConcurrency,
		MaxIdleConnsPerHost:   4 * p.MaxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// COS answers Complete and copies with keep-alive spaces once it
		// starts, so a long silence before the headers means trouble.
		ResponseHeaderTimeout: 5 * time.Minute,
		// Blobs are never stored compressed; do not let Go unzip anything.
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: p.SkipVerify}, //nolint:gosec // opt-in skipverify
	}
}

// checkBucket turns the common start-up mistakes into one plain sentence.
func (d *driver) checkBucket(ctx context.Context) error {
	err := d.do(ctx, "HeadBucket", "", func(ctx context.Context) (*cossdk.Response, error) {
		return d.bucketClient.Bucket.Head(ctx)
	})
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("bucket %q", d.params.Bucket)
	if d.params.Region != "" {
		where += fmt.Sprintf(" in region %s", d.params.Region)
	}
	status := statusOf(err)
	if status == http.StatusNotFound {
		return fmt.Errorf("cos: %s does not exist: check the bucket name (\"name-appid\") and the region", where)
	}
	if status == http.StatusForbidden || status == http.StatusBadRequest {
		// HEAD answers carry no error code; a one-key listing says which.
		code := ""
		if _, _, lerr := d.bucketClient.Bucket.Get(ctx, &cossdk.BucketGetOptions{MaxKeys: 1}); lerr != nil {
			code = codeOf(lerr)
		}
		switch code {
		case "InvalidAccessKeyId":
			return fmt.Errorf("cos: access to %s denied: secretid is not a known SecretId (InvalidAccessKeyId)", where)
		case "SignatureDoesNotMatch":
			return fmt.Errorf("cos: access to %s denied: secretkey does not match secretid (SignatureDoesNotMatch)", where)
		case "ExpiredToken":
			return fmt.Errorf("cos: access to %s denied: the session token has expired (ExpiredToken)", where)
		case "RequestTimeTooSkewed":
			return fmt.Errorf("cos: access to %s denied: this machine's clock is more than 15 minutes off (RequestTimeTooSkewed)", where)
		}
		if status == http.StatusForbidden {
			return fmt.Errorf("cos: access to %s denied: check secretid, secretkey and that the key's CAM policy allows this bucket", where)
		}
	}
	var local *localError
	if errors.As(err, &local) {
		return local.err // such as credentials that could not be had
	}
	if statusOf(err) == 0 {
		return fmt.Errorf("cos: cannot reach %s at %s: %v", where, d.client.BaseURL.BucketURL, rootCause(err))
	}
	return fmt.Errorf("cos: checking %s failed: %v", where, rootCause(err))
}
