package cos

import (
	"fmt"
	"io"
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
	// DefaultStorageClassThreshold is the smallest blob that gets the
	// configured storage class: COS bills STANDARD_IA and
	// INTELLIGENT_TIERING objects under 64 KB as 64 KB.
	DefaultStorageClassThreshold = 64 * kib
	// Upper bounds of the tunables: beyond them a value is a typo.
	maxConcurrency    = 1000
	maxRetries        = 100
	maxBufferMemory   = 64 * gib
	minRedirectExpiry = time.Second
	maxRedirectExpiry = 7 * 24 * time.Hour
	// COS's x-cos-traffic-limit range, 819200 to 838860800 bit/s, in bytes
	// per second (the unit of trafficlimit).
	minTrafficLimit = 100 * kib
	maxTrafficLimit = 100 * mib
	// DefaultBufferChunks is how many chunk buffers the driver-wide upload
	// budget holds when maxbuffermemory is not set.
	DefaultBufferChunks = 8

	// COS limits (see the COS "specifications and limits" page).
	minPartSize    = 1 * mib // every part but the last
	maxPartCount   = 10000   // part numbers 1 to 10,000
	maxPartSize    = 5 * gib
	maxSingleCopy  = 5 * gib
	maxDeleteBatch = 1000
	maxListKeys    = 1000
)

// Parameters is the typed configuration of the driver. FromParameters fills
// it from the registry's untyped configuration map; library users may build
// it directly and call New. Zero values mean "the default" for every optional
// field except Secure, which DefaultParameters sets to true, and MaxRetries,
// where zero means no retries (DefaultParameters sets DefaultMaxRetries).
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

	// StorageClass is the storage class of blob data of at least
	// StorageClassThreshold bytes (the registry's blobs/.../data objects,
	// written by a writer or a Move); every other object is written
	// STANDARD (MAZ_STANDARD when StorageClass is a MAZ_ class). Empty:
	// no class is sent and the bucket's default applies to everything.
	StorageClass string
	// StorageClassThreshold is the size from which blob data gets
	// StorageClass (default DefaultStorageClassThreshold).
	StorageClassThreshold int64
	// Encrypt turns on server-side encryption (SSE-COS, or SSE-KMS with KMSKeyID).
	Encrypt  bool
	KMSKeyID string

	// RedirectExpiry is the lifetime of presigned redirect URLs.
	RedirectExpiry time.Duration
	// RedirectEndpoint, when set, is the base URL clients are redirected
	// to (a CDN or custom domain); URLs are signed for its host.
	RedirectEndpoint string
	// InternalCIDRs are the client networks (such as the VPC of the
	// bucket's region) that are redirected to InternalEndpoint instead,
	// where downloads cost no public traffic. A client's address is the
	// registry's: the first X-Forwarded-For entry, else X-Real-Ip, else
	// the connection's.
	InternalCIDRs []string
	// InternalEndpoint is the base URL of redirects for InternalCIDRs
	// (default the bucket's private-network host,
	// <bucket>.cos-internal.<region>.tencentcos.cn).
	InternalEndpoint string
	// TrafficLimit caps the bandwidth of each download, in bytes per
	// second: the driver's reads send x-cos-traffic-limit and redirect
	// URLs carry it as a signed query parameter. Zero: no cap.
	TrafficLimit int64

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

// Format prints String in every verb (%#v, %d... included): fmt calls
// String only for %v, %s, %q, %x and %X, and prints the fields for others.
//
// Every type that holds a secret, or reaches one through an unexported
// field, formats as a description in every verb (fmt.Formatter): fmt never
// calls a method of a value reached through an unexported field, whose
// fields it prints instead (TestNoValueReachableFromTheDriverFormatsASecret).
func (p Parameters) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// DefaultParameters returns Parameters with every default filled in but
// the derived one: MaxBufferMemory stays zero, which means
// DefaultBufferChunks × ChunkSize, so that changing ChunkSize afterwards
// changes the budget with it (as chunksize does in a configuration).
func DefaultParameters() Parameters {
	p := Parameters{Secure: true, MaxRetries: DefaultMaxRetries}.withDefaults()
	p.MaxBufferMemory = 0
	return p
}

// withDefaults returns p with every zero optional field set to its
// default, derived defaults included. It is the only place that knows the
// defaults; New and ParseParameters both go through it.
func (p Parameters) withDefaults() Parameters {
	setDefault(&p.ChunkSize, DefaultChunkSize)
	setDefault(&p.MaxConcurrency, DefaultMaxConcurrency)
	setDefault(&p.MaxBufferMemory, DefaultBufferChunks*p.ChunkSize)
	setDefault(&p.RedirectExpiry, DefaultRedirectExpiry)
	setDefault(&p.MultipartCopyChunkSize, DefaultMultipartCopyChunkSize)
	setDefault(&p.MultipartCopyThreshold, DefaultMultipartCopyThreshold)
	setDefault(&p.RoleDuration, DefaultRoleDuration)
	setDefault(&p.RoleSessionName, DefaultRoleSessionName)
	setDefault(&p.StorageClassThreshold, DefaultStorageClassThreshold)
	p.StorageClass = strings.ToUpper(p.StorageClass)
	return p
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// numericRange is the accepted range of one numeric parameter.
type numericRange struct {
	name       string
	value      int64
	min, max   int64
	isDuration bool
	zeroIsOff  bool // 0 turns the feature off and is in range
}

// numericRanges lists the range of every numeric parameter of p: the one
// place that knows them. A zero value outside a range (a field left unset
// in a struct) is replaced by its default before the check.
func (p Parameters) numericRanges() []numericRange {
	duration := func(name string, v, min, max time.Duration) numericRange {
		return numericRange{name: name, value: int64(v), min: int64(min), max: int64(max), isDuration: true}
	}
	return []numericRange{
		{name: "chunksize", value: p.ChunkSize, min: MinChunkSize, max: MaxChunkSize},
		{name: "maxconcurrency", value: int64(p.MaxConcurrency), min: 1, max: maxConcurrency},
		{name: "maxbuffermemory", value: p.MaxBufferMemory, min: p.ChunkSize, max: maxBufferMemory},
		{name: "maxretries", value: int64(p.MaxRetries), min: 0, max: maxRetries},
		{name: "multipartcopythreshold", value: p.MultipartCopyThreshold, min: 1, max: maxSingleCopy},
		{name: "multipartcopychunksize", value: p.MultipartCopyChunkSize, min: minPartSize, max: maxPartSize},
		{name: "storageclassthreshold", value: p.StorageClassThreshold, min: 1, max: maxSingleCopy},
		{name: "trafficlimit", value: p.TrafficLimit, min: minTrafficLimit, max: maxTrafficLimit, zeroIsOff: true},
		duration("redirectexpiry", p.RedirectExpiry, minRedirectExpiry, maxRedirectExpiry),
		duration("roleduration", p.RoleDuration, minRoleDuration, maxRoleDuration),
	}
}

func (r numericRange) check() error {
	if (r.value >= r.min && r.value <= r.max) || (r.zeroIsOff && r.value == 0) {
		return nil
	}
	if r.isDuration {
		return fmt.Errorf("cos: parameter %s %v is out of range: want %v to %v", r.name, time.Duration(r.value), time.Duration(r.min), time.Duration(r.max))
	}
	return fmt.Errorf("cos: parameter %s %d is out of range: want %s to %s", r.name, r.value, describeSize(r.min), describeSize(r.max))
}

// describeSize writes a size as bytes, with its binary unit when it has one.
func describeSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{gib, "GiB"}, {mib, "MiB"}, {kib, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d (%d %s)", n, n/u.size, u.name)
		}
	}
	return strconv.FormatInt(n, 10)
}

// parameterNames lists every accepted configuration key.
var parameterNames = []string{
	"secretid", "secretkey", "sessiontoken", "cvmrole", "cvmmetadataurl", "bucket", "region", "endpoint",
	"accelerate", "secure", "skipverify", "rootdirectory", "chunksize",
	"maxconcurrency", "maxbuffermemory", "maxretries", "storageclass",
	"encrypt", "kmskeyid", "redirectexpiry", "redirectendpoint",
	"multipartcopythreshold", "multipartcopychunksize", "useragent",
	"profile", "rolearn", "rolesessionname", "roleduration", "stsendpoint",
	"storageclassthreshold", "internalcidrs", "internalendpoint", "trafficlimit",
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

// Validate checks every parameter and the relations between them, with
// the defaults of the unset ones, and changes nothing. New calls it.
func (p Parameters) Validate() error {
	_, _, err := p.validated()
	return err
}

// validated returns p with its defaults, checked, and where its requests go.
func (p Parameters) validated() (Parameters, endpoints, error) {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		return p, endpoints{}, err
	}
	e, err := resolveEndpoints(p)
	return p, e, err
}

func (p Parameters) check() error {
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
	for _, r := range p.numericRanges() {
		if err := r.check(); err != nil {
			return err
		}
	}
	if p.StorageClass != "" && !contains(storageClasses, p.StorageClass) {
		return fmt.Errorf("cos: parameter storageclass %q is not supported: want one of %s", p.StorageClass, strings.Join(storageClasses, ", "))
	}
	if _, err := parseCIDRs(p.InternalCIDRs); err != nil {
		return err
	}
	if p.InternalEndpoint != "" && len(p.InternalCIDRs) == 0 {
		return fmt.Errorf("cos: parameter internalendpoint needs internalcidrs: the client networks redirected to it")
	}
	if p.KMSKeyID != "" && !p.Encrypt {
		return fmt.Errorf("cos: parameter kmskeyid needs encrypt: true")
	}
	if strings.ContainsAny(p.RootDirectory, "\\") {
		return fmt.Errorf("cos: parameter rootdirectory %q contains a backslash", p.RootDirectory)
	}
	for _, seg := range strings.Split(p.RootDirectory, "/") {
		if seg == "." || seg == ".." {
			// Keys are not paths: COS would store "a/../b" as it is, a
			// tree no other tool (nor a later cleanup) expects.
			return fmt.Errorf("cos: parameter rootdirectory %q has a %q segment: give the directory without \".\" or \"..\" segments", p.RootDirectory, seg)
		}
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

// parseCIDRs parses the internalcidrs networks.
func parseCIDRs(cidrs []string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("cos: parameter internalcidrs: %q is not a network: want CIDR notation such as \"10.0.0.0/8\" or \"fd00::/8\"", c)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// isLocalHost reports whether host is an IP address or localhost: such an
// endpoint does not name the bucket, so requests carry the bucket host.
func isLocalHost(host string) bool {
	return host == "localhost" || net.ParseIP(host) != nil
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
