package tencentcdn

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"strconv"
	"time"
)

// Tencent CDN's URL authentication ("CDN 鉴权配置", product 228): the CDN
// checks a URL's signature with the key set in its console (a primary and
// an optional backup key) and refuses it (403) once timestamp + the
// console's validity (鉴权URL有效时长) has passed. Every type signs the
// request path (uri, starting with "/", without the query) with MD5:
//
//	A  /uri?sign=timestamp-rand-uid-md5(uri-timestamp-rand-uid-key)    timestamp decimal Unix seconds (228/41623)
//	B  /timestamp/md5(key timestamp uri)/uri                          timestamp YYYYMMDDHHMM, UTC+8 (228/41871)
//	C  /md5(key uri timestamp)/timestamp/uri                          timestamp hexadecimal Unix seconds (228/35224)
//	D  /uri?sign=md5(key uri timestamp)&t=timestamp                   timestamp decimal Unix seconds (228/41625)
//
// The signature parameter of A and D and the timestamp parameter of D are
// named in the console ("sign" and "t" by default). TestSignMatchesTencentExamples
// holds each type to the worked examples of Tencent's pages.

// authType is one of Tencent CDN's URL authentication types.
type authType byte

const (
	typeA authType = 'a'
	typeB authType = 'b'
	typeC authType = 'c'
	typeD authType = 'd'
)

// beijing is UTC+8, the zone of type B's timestamps. A fixed zone: the
// machine may have no time zone database.
var beijing = time.FixedZone("UTC+8", 8*60*60)

// signer signs URLs for one CDN configuration.
type signer struct {
	base      *url.URL // scheme and host of the CDN domain
	authType  authType
	key       string
	signParam string // A and D
	timeParam string // D
}

// sign returns the URL of uri (an escaped path starting with "/") on the
// CDN, signed at timestamp ts; rand is type A's random string.
func (s *signer) sign(uri string, ts time.Time, rand string) string {
	u := *s.base
	unix := strconv.FormatInt(ts.Unix(), 10)
	switch s.authType {
	case typeA:
		hash := md5hex(uri + "-" + unix + "-" + rand + "-0-" + s.key)
		u.RawQuery = s.signParam + "=" + unix + "-" + rand + "-0-" + hash
		u.RawPath = uri
	case typeB:
		stamp := ts.In(beijing).Format("200601021504")
		u.RawPath = "/" + stamp + "/" + md5hex(s.key+stamp+uri) + uri
	case typeC:
		stamp := strconv.FormatInt(ts.Unix(), 16)
		u.RawPath = "/" + md5hex(s.key+uri+stamp) + "/" + stamp + uri
	case typeD:
		u.RawQuery = s.signParam + "=" + md5hex(s.key+uri+unix) + "&" + s.timeParam + "=" + unix
		u.RawPath = uri
	}
	u.Path, _ = url.PathUnescape(u.RawPath)
	return u.String()
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
