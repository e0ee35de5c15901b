// Package tencentcdn is a storage middleware for the CNCF Distribution
// registry that redirects blob pulls to a Tencent Cloud CDN domain in
// front of the COS bucket, signed with the CDN's own URL authentication
// (types A, B, C and D), as upstream's cloudfront middleware does for
// Amazon CloudFront. The bucket can then stay private behind the CDN's
// origin-pull authentication: no COS signature has to survive the CDN.
//
// Importing the package registers it:
//
//	middleware:
//	  storage:
//	    - name: tencentcdn
//	      options:
//	        baseurl: https://registry-cdn.example.com
//	        authtype: a
//	        key: <the CDN's authentication key>
//
// Clients in the cos driver's internalcidrs are left to the driver, which
// redirects them to the bucket's private-network host.
package tencentcdn

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	storagemiddleware "github.com/distribution/distribution/v3/registry/storage/driver/middleware"
)

// Name is the name the middleware registers under.
const Name = "tencentcdn"

func init() {
	if err := storagemiddleware.Register(Name, newMiddleware); err != nil {
		panic(err)
	}
}

// Limits of the CDN console (228/41623): keys are 6 to 40 letters and
// digits; parameter names 1 to 100 letters, digits and underscores; the
// validity at most 630720000 s.
var (
	keyPattern   = regexp.MustCompile(`^[A-Za-z0-9]{6,40}$`)
	paramPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,100}$`)
)

const maxExpiry = 630720000 * time.Second

// keyer is what the middleware needs of the driver below it: the COS key
// of a registry path, which is the path of the object on a CDN whose
// origin is the bucket. The cos driver has it.
type keyer interface {
	ObjectKey(path string) string
}

// internalNetworks is the cos driver's choice of the bucket's
// private-network host for clients in its internalcidrs.
type internalNetworks interface {
	FromInternalNetwork(r *http.Request) bool
}

// middleware redirects blob GET and HEAD to signed CDN URLs.
type middleware struct {
	storagedriver.StorageDriver
	keyer  keyer
	signer signer
	// expiry moves a URL's timestamp into the future: the CDN accepts a
	// URL until timestamp + its console validity.
	expiry time.Duration
	now    func() time.Time
}

// options lists the accepted options.
var options = []string{"baseurl", "authtype", "key", "backupkey", "expiry", "signparam", "timeparam"}

func newMiddleware(_ context.Context, driver storagedriver.StorageDriver, opts map[string]any) (storagedriver.StorageDriver, error) {
	k, ok := driver.(keyer)
	if !ok {
		return nil, fmt.Errorf("tencentcdn: the storage driver %q has no COS object keys: the middleware works with the cos driver", driver.Name())
	}
	get := func(name string) (string, error) {
		for key, v := range opts {
			if strings.EqualFold(key, name) {
				switch v := v.(type) {
				case string:
					return strings.TrimSpace(v), nil
				case nil:
					return "", nil
				default:
					if name == "key" || name == "backupkey" {
						return "", fmt.Errorf("tencentcdn: option %s must be a string", name)
					}
					return fmt.Sprint(v), nil
				}
			}
		}
		return "", nil
	}
	for key := range opts {
		if !slices.Contains(options, strings.ToLower(key)) {
			sorted := append([]string(nil), options...)
			sort.Strings(sorted)
			return nil, fmt.Errorf("tencentcdn: unknown option %q (accepted: %s)", key, strings.Join(sorted, ", "))
		}
	}
	values := map[string]string{}
	for _, name := range options {
		v, err := get(name)
		if err != nil {
			return nil, err
		}
		values[name] = v
	}

	m := &middleware{StorageDriver: driver, keyer: k, now: time.Now}
	base, err := url.Parse(values["baseurl"])
	switch {
	case values["baseurl"] == "":
		return nil, fmt.Errorf("tencentcdn: option baseurl is required: the CDN domain, such as https://registry-cdn.example.com")
	case err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		(base.Path != "" && base.Path != "/") || base.RawQuery != "" || base.User != nil:
		return nil, fmt.Errorf("tencentcdn: option baseurl %q is not a CDN domain: want scheme and host only, such as https://registry-cdn.example.com", values["baseurl"])
	}
	base.Path = ""
	m.signer.base = base

	switch t := strings.ToLower(values["authtype"]); t {
	case "a", "b", "c", "d":
		m.signer.authType = authType(t[0])
	case "":
		return nil, fmt.Errorf("tencentcdn: option authtype is required: a, b, c or d, the CDN's authentication type (TypeA to TypeD)")
	default:
		return nil, fmt.Errorf("tencentcdn: option authtype %q is not supported: want a, b, c or d", values["authtype"])
	}

	// A key is never named in an error: it is a secret.
	if values["key"] == "" {
		return nil, fmt.Errorf("tencentcdn: option key is required: the CDN's authentication key")
	}
	for _, name := range []string{"key", "backupkey"} {
		if v := values[name]; v != "" && !keyPattern.MatchString(v) {
			return nil, fmt.Errorf("tencentcdn: option %s is not a CDN authentication key: want 6 to 40 letters and digits", name)
		}
	}
	// The CDN accepts the primary and the backup key alike. A backup key
	// here is the one being rotated in, so it signs: rotate by adding the
	// new key as the backup key in the CDN console, then here; later make
	// it the primary key in both places.
	m.signer.key = values["key"]
	if values["backupkey"] != "" {
		m.signer.key = values["backupkey"]
	}

	if v := values["expiry"]; v != "" {
		if m.expiry, err = time.ParseDuration(v); err != nil || m.expiry < 0 || m.expiry > maxExpiry {
			return nil, fmt.Errorf("tencentcdn: option expiry %q is not a duration from 0 to %v", v, maxExpiry)
		}
	}

	m.signer.signParam, m.signer.timeParam = "sign", "t"
	for _, p := range []struct {
		name string
		dst  *string
	}{{"signparam", &m.signer.signParam}, {"timeparam", &m.signer.timeParam}} {
		if v := values[p.name]; v != "" {
			if !paramPattern.MatchString(v) {
				return nil, fmt.Errorf("tencentcdn: option %s %q is not a parameter name: want 1 to 100 letters, digits and underscores", p.name, v)
			}
			*p.dst = v
		}
	}
	if m.signer.signParam == m.signer.timeParam {
		return nil, fmt.Errorf("tencentcdn: options signparam and timeparam are both %q: they must differ", m.signer.signParam)
	}
	return m, nil
}

// RedirectURL returns the signed CDN URL of path for GET and HEAD, and
// leaves clients in the driver's internal networks, and other methods, to
// the driver.
func (m *middleware) RedirectURL(r *http.Request, path string) (string, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return m.StorageDriver.RedirectURL(r, path)
	}
	if in, ok := m.StorageDriver.(internalNetworks); ok && in.FromInternalNetwork(r) {
		return m.StorageDriver.RedirectURL(r, path)
	}
	uri := (&url.URL{Path: "/" + m.keyer.ObjectKey(path)}).EscapedPath()
	ts := m.now().Add(m.expiry)
	if m.signer.authType == typeB {
		// Type B's timestamp counts minutes: round up, so that the URL
		// lives at least as long as asked.
		ts = ts.Add(time.Minute - time.Nanosecond).Truncate(time.Minute)
	}
	return m.signer.sign(uri, ts, randomString()), nil
}

// randomString is type A's rand: 0 to 100 letters and digits. A fresh one
// per URL; the CDN leaves the parameter out of its cache key.
func randomString() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}
