package cos

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Size units used by the parameter defaults and limits.
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// Defaults and limits of the configuration parameters.
const (
	DefaultChunkSize              = 16 * mib
	MinChunkSize                  = 5 * mib
	MaxChunkSize                  = 100 * mib
	DefaultMaxConcurrency         = 10
	DefaultRedirectExpiry         = 20 * time.Minute
	DefaultMultipartCopyThreshold = 32 * mib
	DefaultMultipartCopyChunkSize = 32 * mib
	DefaultMaxRetries             = 5
	// DefaultBufferChunks is how many chunk buffers the driver-wide upload
	// budget holds when maxbuffermemory is not set.
	DefaultBufferChunks = 8

	// COS limits (see the COS "specifications and limits" page).
	minPartSize    = 1 * mib // every part but the last
	maxPartSize    = 5 * gib
	maxSingleCopy  = 5 * gib
	maxDeleteBatch = 1000
	maxListKeys    = 1000
)

// Parameters is the typed configuration of the driver. FromParameters fills
// it from the registry's untyped configuration map; library users may build
// it directly and call New. Zero values mean "the default" for every optional
// field except Secure, which DefaultParameters sets to true.
type Parameters struct {
	// Credentials: the first link of the chain (credentials.go). SessionToken
	// is set for temporary keys. CVMRole, instead of a key pair, names the
	// CVM instance role whose keys are read from the instance metadata
	// service (CVMMetadataURL, default DefaultCVMMetadataURL). With neither,
	// the chain goes on: environment, profile file, TKE pod identity, the
	// instance role bound to this CVM.
	SecretID       string
	SecretKey      string
	SessionToken   string
	CVMRole        string
	CVMMetadataURL string
	// Profile names the section of the profile file (default "default").
	Profile string
	// RoleARN, when set, is assumed with STS AssumeRole on top of the
	// credentials found (cross-account buckets), for RoleDuration
	// (default DefaultRoleDuration) in a session named RoleSessionName
	// (default DefaultRoleSessionName).
	RoleARN         string
	RoleSessionName string
	RoleDuration    time.Duration
	// STSEndpoint is the base URL of STS (default DefaultSTSEndpoint),
	// used by TKE pod identity and RoleARN.
	STSEndpoint string

	// Bucket is the full bucket name, "name-appid".
	Bucket string
	// Region is the bucket's region, such as "ap-guangzhou".
	Region string
	// Endpoint replaces the region's default host with a full base URL
	// (private or tencentcos.cn domains, a custom domain, an emulator).
	Endpoint string
	// Accelerate uses the global acceleration host.
	Accelerate bool
	// Secure selects https for the default host.
	Secure bool
	// SkipVerify disables TLS certificate checks.
	SkipVerify bool

	// RootDirectory is the key prefix under which the registry's tree lives.
	RootDirectory string
	// ChunkSize is the multipart part size of a writer.
	ChunkSize int64
	// MaxConcurrency bounds concurrent COS requests of one driver.
	MaxConcurrency int
	// MaxBufferMemory bounds the memory of all part buffers of one driver.
	MaxBufferMemory int64
	// MaxRetries is how many times a failed request (5xx, SlowDown,
	// transport error) is retried.
	MaxRetries int

	// StorageClass is sent with every write (STANDARD when empty).
	StorageClass string
	// Encrypt turns on server-side encryption (SSE-COS, or SSE-KMS with KMSKeyID).
	Encrypt  bool
	KMSKeyID string

	// RedirectExpiry is the lifetime of presigned redirect URLs.
	RedirectExpiry time.Duration
	// RedirectEndpoint, when set, is the base URL clients are redirected
	// to (a CDN or custom domain); URLs are signed for its host.
	RedirectEndpoint string

	// MultipartCopyThreshold is the size above which Move copies in parts.
	MultipartCopyThreshold int64
	// MultipartCopyChunkSize is the part size of a multipart copy.
	MultipartCopyChunkSize int64

	// UserAgent is appended to the SDK's User-Agent.
	UserAgent string
}

// String describes the parameters with the secrets left out.
func (p Parameters) String() string {
	redacted := p
	for _, s := range []*string{&redacted.SecretKey, &redacted.SessionToken} {
		if *s != "" {
			*s = "<redacted>"
		}
	}
	type plain Parameters // no String method: no recursion
	return fmt.Sprintf("%+v", plain(redacted))
}

// GoString is String, so %#v does not print secrets either.
func (p Parameters) GoString() string { return p.String() }

// DefaultParameters returns Parameters with every default filled in.
func DefaultParameters() Parameters {
	return Parameters{
		Secure:                 true,
		ChunkSize:              DefaultChunkSize,
		MaxConcurrency:         DefaultMaxConcurrency,
		MaxBufferMemory:        DefaultBufferChunks * DefaultChunkSize,
		MaxRetries:             DefaultMaxRetries,
		RedirectExpiry:         DefaultRedirectExpiry,
		MultipartCopyThreshold: DefaultMultipartCopyThreshold,
		MultipartCopyChunkSize: DefaultMultipartCopyChunkSize,
	}
}

// parameterNames lists every accepted configuration key.
var parameterNames = []string{
	"secretid", "secretkey", "sessiontoken", "cvmrole", "cvmmetadataurl", "bucket", "region", "endpoint",
	"accelerate", "secure", "skipverify", "rootdirectory", "chunksize",
	"maxconcurrency", "maxbuffermemory", "maxretries", "storageclass",
	"encrypt", "kmskeyid", "redirectexpiry", "redirectendpoint",
	"multipartcopythreshold", "multipartcopychunksize", "useragent",
	"profile", "rolearn", "rolesessionname", "roleduration", "stsendpoint",
}

// ParameterNames returns the configuration keys the driver accepts, sorted.
func ParameterNames() []string { return sortedCopy(parameterNames) }

// storageClasses are the classes a registry can read back immediately.
// ARCHIVE and DEEP_ARCHIVE need a restore before every read, so they are refused.
var storageClasses = []string{
	"STANDARD", "STANDARD_IA", "INTELLIGENT_TIERING",
	"MAZ_STANDARD", "MAZ_STANDARD_IA", "MAZ_INTELLIGENT_TIERING",
}

var (
	bucketPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?-[0-9]+$`)
	regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// ParseParameters turns the registry's configuration map into Parameters.
// Values may arrive as any YAML type (from a file or from a
// REGISTRY_STORAGE_COS_<NAME> environment variable). Every error names the
// parameter, the value (never a secret) and what is accepted.
func ParseParameters(m map[string]any) (Parameters, error) {
	p := DefaultParameters()
	for key := range m {
		if !contains(parameterNames, strings.ToLower(key)) {
			return p, fmt.Errorf("cos: unknown parameter %q (accepted: %s)", key, strings.Join(ParameterNames(), ", "))
		}
	}
	get := func(name string) any {
		for k, v := range m {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return nil
	}
	var err error
	str := func(name string, dst *string, secret bool) {
		if err == nil {
			err = parseString(name, get(name), dst, secret)
		}
	}
	boolean := func(name string, dst *bool) {
		if err == nil {
			err = parseBool(name, get(name), dst)
		}
	}
	size := func(name string, dst *int64, min, max int64) {
		if err == nil {
			err = parseSize(name, get(name), dst, min, max)
		}
	}

	str("secretid", &p.SecretID, false)
	str("secretkey", &p.SecretKey, true)
	str("sessiontoken", &p.SessionToken, true)
	str("cvmrole", &p.CVMRole, false)
	str("cvmmetadataurl", &p.CVMMetadataURL, false)
	str("bucket", &p.Bucket, false)
	str("region", &p.Region, false)
	str("endpoint", &p.Endpoint, false)
	boolean("accelerate", &p.Accelerate)
	boolean("secure", &p.Secure)
	boolean("skipverify", &p.SkipVerify)
	str("rootdirectory", &p.RootDirectory, false)
	size("chunksize", &p.ChunkSize, MinChunkSize, MaxChunkSize)
	var concurrency, retries int64 = int64(p.MaxConcurrency), int64(p.MaxRetries)
	size("maxconcurrency", &concurrency, 1, 1000)
	size("maxretries", &retries, 0, 100)
	p.MaxConcurrency, p.MaxRetries = int(concurrency), int(retries)
	p.MaxBufferMemory = DefaultBufferChunks * p.ChunkSize
	size("maxbuffermemory", &p.MaxBufferMemory, p.ChunkSize, 64*gib)
	str("storageclass", &p.StorageClass, false)
	boolean("encrypt", &p.Encrypt)
	str("kmskeyid", &p.KMSKeyID, false)
	if err == nil {
		err = parseDuration("redirectexpiry", get("redirectexpiry"), &p.RedirectExpiry, time.Second, 7*24*time.Hour)
	}
	str("redirectendpoint", &p.RedirectEndpoint, false)
	size("multipartcopythreshold", &p.MultipartCopyThreshold, 0, maxSingleCopy)
	size("multipartcopychunksize", &p.MultipartCopyChunkSize, minPartSize, maxPartSize)
	str("useragent", &p.UserAgent, false)
	str("profile", &p.Profile, false)
	str("rolearn", &p.RoleARN, false)
	str("rolesessionname", &p.RoleSessionName, false)
	if err == nil {
		err = parseDuration("roleduration", get("roleduration"), &p.RoleDuration, minRoleDuration, maxRoleDuration)
	}
	str("stsendpoint", &p.STSEndpoint, false)
	if err != nil {
		return p, err
	}
	return p, p.Validate()
}

// Validate checks the relations between parameters and fills in derived
// defaults. New calls it.
func (p *Parameters) Validate() error {
	if p.SecretID != "" && p.SecretKey == "" {
		return fmt.Errorf("cos: parameter secretid is set but secretkey is not: set both")
	}
	if p.SecretKey != "" && p.SecretID == "" {
		return fmt.Errorf("cos: parameter secretkey is set but secretid is not: set both")
	}
	if p.SessionToken != "" && p.SecretID == "" {
		return fmt.Errorf("cos: parameter sessiontoken needs secretid and secretkey")
	}
	if p.CVMMetadataURL != "" {
		if _, err := parseBaseURL("cvmmetadataurl", p.CVMMetadataURL); err != nil {
			return err
		}
	}
	if p.CVMRole != "" && p.SecretID != "" {
		return fmt.Errorf("cos: parameters secretid and cvmrole exclude each other: set one")
	}
	if err := validateRoleParameters(p); err != nil {
		return err
	}
	if strings.TrimSpace(p.SecretID) != p.SecretID {
		return fmt.Errorf("cos: parameter secretid has leading or trailing spaces")
	}
	if strings.TrimSpace(p.SecretKey) != p.SecretKey {
		return fmt.Errorf("cos: parameter secretkey has leading or trailing spaces")
	}
	if p.Bucket == "" {
		return fmt.Errorf("cos: parameter bucket is required (the full name, \"name-appid\", such as \"registry-1250000000\")")
	}
	if !bucketPattern.MatchString(p.Bucket) {
		return fmt.Errorf("cos: parameter bucket %q is not a COS bucket name: want \"name-appid\", lowercase letters, digits and '-', such as \"registry-1250000000\"", p.Bucket)
	}
	if p.Region != "" && !regionPattern.MatchString(p.Region) {
		return fmt.Errorf("cos: parameter region %q is not a COS region: want a region ID such as \"ap-guangzhou\"", p.Region)
	}
	if p.Endpoint == "" && p.Region == "" && !p.Accelerate {
		return fmt.Errorf("cos: parameter region is required (such as \"ap-guangzhou\") unless endpoint is set")
	}
	if p.Endpoint != "" {
		u, err := parseBaseURL("endpoint", p.Endpoint)
		if err != nil {
			return err
		}
		if isLocalHost(u.Hostname()) && p.Region == "" {
			return fmt.Errorf("cos: parameter region is required with endpoint %q: requests carry the bucket's host name, which names the region", p.Endpoint)
		}
		if p.Accelerate {
			return fmt.Errorf("cos: parameters endpoint and accelerate exclude each other")
		}
	}
	if p.RedirectEndpoint != "" {
		if _, err := parseBaseURL("redirectendpoint", p.RedirectEndpoint); err != nil {
			return err
		}
	}
	if p.ChunkSize == 0 {
		p.ChunkSize = DefaultChunkSize
	}
	if p.ChunkSize < MinChunkSize || p.ChunkSize > MaxChunkSize {
		return fmt.Errorf("cos: parameter chunksize %d is out of range: want %d (5 MiB) to %d (100 MiB)", p.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if p.MaxConcurrency == 0 {
		p.MaxConcurrency = DefaultMaxConcurrency
	}
	if p.MaxConcurrency < 0 {
		return fmt.Errorf("cos: parameter maxconcurrency %d is out of range: want 1 to 1000", p.MaxConcurrency)
	}
	if p.MaxBufferMemory == 0 {
		p.MaxBufferMemory = DefaultBufferChunks * p.ChunkSize
	}
	if p.MaxBufferMemory < p.ChunkSize {
		return fmt.Errorf("cos: parameter maxbuffermemory %d is smaller than chunksize %d: want at least one chunk", p.MaxBufferMemory, p.ChunkSize)
	}
	if p.MaxRetries < 0 {
		return fmt.Errorf("cos: parameter maxretries %d is out of range: want 0 to 100", p.MaxRetries)
	}
	if p.StorageClass != "" {
		p.StorageClass = strings.ToUpper(p.StorageClass)
		if !contains(storageClasses, p.StorageClass) {
			return fmt.Errorf("cos: parameter storageclass %q is not supported: want one of %s", p.StorageClass, strings.Join(storageClasses, ", "))
		}
	}
	if p.KMSKeyID != "" && !p.Encrypt {
		return fmt.Errorf("cos: parameter kmskeyid needs encrypt: true")
	}
	if p.RedirectExpiry == 0 {
		p.RedirectExpiry = DefaultRedirectExpiry
	}
	if p.MultipartCopyChunkSize == 0 {
		p.MultipartCopyChunkSize = DefaultMultipartCopyChunkSize
	}
	if p.MultipartCopyChunkSize < minPartSize || p.MultipartCopyChunkSize > maxPartSize {
		return fmt.Errorf("cos: parameter multipartcopychunksize %d is out of range: want %d (1 MiB) to %d (5 GiB)", p.MultipartCopyChunkSize, int64(minPartSize), int64(maxPartSize))
	}
	if p.MultipartCopyThreshold < 0 || p.MultipartCopyThreshold > maxSingleCopy {
		return fmt.Errorf("cos: parameter multipartcopythreshold %d is out of range: want 0 to %d (5 GiB)", p.MultipartCopyThreshold, int64(maxSingleCopy))
	}
	if strings.ContainsAny(p.RootDirectory, "\\") {
		return fmt.Errorf("cos: parameter rootdirectory %q contains a backslash", p.RootDirectory)
	}
	return nil
}

// parseBaseURL checks that raw is an http(s) URL with a host and no path,
// query or fragment.
func parseBaseURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cos: parameter %s %q is not a base URL: want scheme and host, such as \"https://cos.example.com\"", name, raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("cos: parameter %s %q must be a scheme and host only, with no path, query or credentials", name, raw)
	}
	return u, nil
}

// isLocalHost reports whether host is an IP address or localhost: such an
// endpoint does not name the bucket, so requests carry the bucket host.
func isLocalHost(host string) bool {
	return host == "localhost" || net.ParseIP(host) != nil
}

func parseString(name string, v any, dst *string, secret bool) error {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		*dst = v
	case int, int64, uint64, float64, bool:
		*dst = fmt.Sprint(v)
	default:
		if secret {
			return fmt.Errorf("cos: parameter %s must be a string, got %s", name, kindOf(v))
		}
		return fmt.Errorf("cos: parameter %s must be a string, got %s %v", name, kindOf(v), v)
	}
	return nil
}

// kindOf names a YAML value's kind in words an operator knows.
func kindOf(v any) string {
	switch v.(type) {
	case map[any]any, map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

func parseBool(name string, v any, dst *bool) error {
	switch v := v.(type) {
	case nil:
		return nil
	case bool:
		*dst = v
		return nil
	case string:
		if v == "" {
			return nil
		}
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			switch strings.ToLower(v) {
			case "yes", "on":
				b, err = true, nil
			case "no", "off":
				b, err = false, nil
			}
		}
		if err == nil {
			*dst = b
			return nil
		}
	}
	return fmt.Errorf("cos: parameter %s %v is not a boolean: want true or false", name, v)
}

var sizeSuffixes = map[string]int64{
	"": 1, "b": 1, "k": kib, "kb": kib, "kib": kib, "m": mib, "mb": mib, "mib": mib, "g": gib, "gb": gib, "gib": gib,
}

var sizePattern = regexp.MustCompile(`^\s*([0-9]+)\s*([a-zA-Z]*)\s*$`)

// parseSize accepts integers of every YAML kind, integral floats, and
// strings with an optional binary size suffix ("16MiB", "16M", "0x10").
func parseSize(name string, v any, dst *int64, min, max int64) error {
	var n int64
	bad := func() error {
		return fmt.Errorf("cos: parameter %s %v is not a size: want an integer number of bytes from %d to %d, optionally with a suffix such as 16MiB", name, v, min, max)
	}
	switch v := v.(type) {
	case nil:
		return nil
	case int:
		n = int64(v)
	case int64:
		n = v
	case int32:
		n = int64(v)
	case uint:
		if uint64(v) > math.MaxInt64 {
			return bad()
		}
		n = int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return bad()
		}
		n = int64(v)
	case float64:
		if v != math.Trunc(v) || v > math.MaxInt64 || v < math.MinInt64 {
			return bad()
		}
		n = int64(v)
	case string:
		if v == "" {
			return nil
		}
		if i, err := strconv.ParseInt(v, 0, 64); err == nil {
			n = i
			break
		}
		m := sizePattern.FindStringSubmatch(v)
		if m == nil {
			return bad()
		}
		unit, ok := sizeSuffixes[strings.ToLower(m[2])]
		i, err := strconv.ParseInt(m[1], 10, 64)
		if !ok || err != nil || i > math.MaxInt64/unit {
			return bad()
		}
		n = i * unit
	default:
		return bad()
	}
	if n < min || n > max {
		return fmt.Errorf("cos: parameter %s %d is out of range: want %d to %d", name, n, min, max)
	}
	*dst = n
	return nil
}

func parseDuration(name string, v any, dst *time.Duration, min, max time.Duration) error {
	var d time.Duration
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("cos: parameter %s %q is not a duration: want a value such as 20m or 1h", name, v)
		}
	case int:
		d = time.Duration(v) * time.Second
	case int64:
		d = time.Duration(v) * time.Second
	case float64:
		d = time.Duration(v * float64(time.Second))
	default:
		return fmt.Errorf("cos: parameter %s %v is not a duration: want a value such as 20m or 1h", name, v)
	}
	if d < min || d > max {
		return fmt.Errorf("cos: parameter %s %v is out of range: want %v to %v", name, d, min, max)
	}
	*dst = d
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedCopy(list []string) []string {
	c := append([]string(nil), list...)
	sort.Strings(c)
	return c
}

// FromParameters builds a driver from the registry's configuration map.
func FromParameters(ctx context.Context, parameters map[string]any) (*Driver, error) {
	p, err := ParseParameters(parameters)
	if err != nil {
		return nil, err
	}
	return New(ctx, p)
}
