package cos

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// RedirectURL returns a presigned GET or HEAD URL valid for redirectexpiry,
// signed for the host the client will use: the bucket's private-network
// host for a client in internalcidrs, else redirectendpoint or the
// endpoint. With trafficlimit, the URL carries x-cos-traffic-limit as a
// signed query parameter, which COS honours like the header. Other methods
// get "".
//
// COS refuses a presigned URL once the temporary key that signed it has
// expired, whatever the URL says: a key that would expire within
// redirectexpiry is renewed first, and a URL is never given a longer life
// than its key has left (keys that live shorter than redirectexpiry, or
// whose renewal fails, give shorter-lived URLs).
func (d *driver) RedirectURL(r *http.Request, path string) (string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "", nil
	}
	expiry := d.params.RedirectExpiry
	if keys, ok := d.credentials.(*renewingCredentials); ok {
		left, err := keys.validFor(r.Context(), expiry)
		if err != nil {
			return "", err
		}
		expiry = left
	}
	signer := d.presign
	if d.fromInternalNetwork(r) {
		signer = d.presignInternal
	}
	var opt any // a typed nil would be dereferenced by the SDK
	if limit := d.trafficLimit(); limit != "" {
		opt = &cossdk.PresignedURLOptions{Query: &url.Values{trafficLimitHeader: {limit}}}
	}
	u, err := signer.Object.GetPresignedURL2(r.Context(), r.Method, d.key(path), expiry, opt)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// trafficLimitHeader caps the bandwidth of one COS request, as a header or
// a query parameter, in bit/s (COS's range: 819200 to 838860800).
const trafficLimitHeader = "x-cos-traffic-limit"

// trafficLimit is the x-cos-traffic-limit value of trafficlimit, "" when
// there is none.
func (d *driver) trafficLimit() string {
	if d.params.TrafficLimit == 0 {
		return ""
	}
	return strconv.FormatInt(d.params.TrafficLimit*8, 10)
}

// fromInternalNetwork reports whether the client of r is in internalcidrs.
func (d *driver) fromInternalNetwork(r *http.Request) bool {
	if len(d.endpoints.internalNets) == 0 {
		return false
	}
	ip := clientIP(r)
	if ip == nil {
		return false
	}
	for _, n := range d.endpoints.internalNets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the client's address as the registry sees it (its access
// log, and the cloudfront middleware's ipfilteredby): the first
// X-Forwarded-For entry, else X-Real-Ip, else the connection's address.
// Only a proxy in front of the registry should be able to set these
// headers; the docs say so.
func clientIP(r *http.Request) net.IP {
	if forwarded := r.Header.Get("X-Forwarded-For"); forwarded != "" {
		first, _, _ := strings.Cut(forwarded, ",")
		if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
			return ip
		}
	}
	if ip := net.ParseIP(strings.TrimSpace(r.Header.Get("X-Real-Ip"))); ip != nil {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return net.ParseIP(host)
}

// FromInternalNetwork reports whether the client of r is in the driver's
// internalcidrs, so that a redirect for it should go to the bucket's
// private-network host (RedirectURL does): storage middlewares in front
// of the driver, such as a CDN's, hand such requests to the driver.
func (d *Driver) FromInternalNetwork(r *http.Request) bool {
	return d.Base.StorageDriver.(*driver).fromInternalNetwork(r)
}

// ObjectKey returns the COS object key of a registry path: the path under
// rootdirectory, without a leading slash. A CDN whose origin is the bucket
// serves the object at "/" + ObjectKey(path).
func (d *Driver) ObjectKey(path string) string {
	return d.Base.StorageDriver.(*driver).key(path)
}
