package cos

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
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
	size := func(name string, dst *int64) {
		if err == nil {
			err = parseSize(name, get(name), dst)
		}
	}
	duration := func(name string, dst *time.Duration) {
		if err == nil {
			err = parseDuration(name, get(name), dst)
		}
	}

	str("secretid", &p.SecretID, false)
	str("secretkey", &p.SecretKey, true)
	str("sessiontoken", &p.SessionToken, true)
	str("cvmrole", &p.CVMRole, false)
	str("cvmmetadataurl", &p.CVMMetadataURL, false)
	str("profile", &p.Profile, false)
	str("rolearn", &p.RoleARN, false)
	str("rolesessionname", &p.RoleSessionName, false)
	duration("roleduration", &p.RoleDuration)
	str("stsendpoint", &p.STSEndpoint, false)
	str("bucket", &p.Bucket, false)
	str("region", &p.Region, false)
	str("endpoint", &p.Endpoint, false)
	boolean("accelerate", &p.Accelerate)
	boolean("secure", &p.Secure)
	boolean("skipverify", &p.SkipVerify)
	str("rootdirectory", &p.RootDirectory, false)
	size("chunksize", &p.ChunkSize)
	var concurrency, retries = int64(p.MaxConcurrency), int64(p.MaxRetries)
	size("maxconcurrency", &concurrency)
	size("maxretries", &retries)
	p.MaxConcurrency, p.MaxRetries = int(concurrency), int(retries)
	size("maxbuffermemory", &p.MaxBufferMemory)
	str("storageclass", &p.StorageClass, false)
	boolean("encrypt", &p.Encrypt)
	str("kmskeyid", &p.KMSKeyID, false)
	duration("redirectexpiry", &p.RedirectExpiry)
	str("redirectendpoint", &p.RedirectEndpoint, false)
	size("multipartcopythreshold", &p.MultipartCopyThreshold)
	size("multipartcopychunksize", &p.MultipartCopyChunkSize)
	str("useragent", &p.UserAgent, false)
	size("storageclassthreshold", &p.StorageClassThreshold)
	if err == nil {
		p.InternalCIDRs, err = parseList("internalcidrs", get("internalcidrs"))
	}
	str("internalendpoint", &p.InternalEndpoint, false)
	size("trafficlimit", &p.TrafficLimit)
	if err != nil {
		return p, err
	}
	// A value written in the configuration is checked as written: an
	// explicit 0 is out of range, not "the default" as in a struct.
	for _, r := range p.numericRanges() {
		if get(r.name) != nil {
			if err := r.check(); err != nil {
				return p, err
			}
		}
	}
	p = p.withDefaults()
	return p, p.Validate()
}

// parseList accepts a YAML list of strings or one string of
// comma-separated values (as a REGISTRY_STORAGE_COS_<NAME> variable gives).
func parseList(name string, v any) ([]string, error) {
	var items []string
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		items = strings.Split(v, ",")
	case []any:
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("cos: parameter %s must be a list of strings, got %s %v", name, kindOf(item), item)
			}
			items = append(items, s)
		}
	case []string:
		items = v
	default:
		return nil, fmt.Errorf("cos: parameter %s must be a list or a comma-separated string, got %s %v", name, kindOf(v), v)
	}
	var list []string
	for _, item := range items {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list, nil
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
func parseSize(name string, v any, dst *int64) error {
	var n int64
	bad := func() error {
		return fmt.Errorf("cos: parameter %s %v is not a size: want an integer number of bytes, optionally with a suffix such as 16MiB", name, v)
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
	*dst = n
	return nil
}

func parseDuration(name string, v any, dst *time.Duration) error {
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
	*dst = d
	return nil
}
