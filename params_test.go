package cos

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/stretchr/testify/require"
)

func baseConfig() map[string]any {
	return map[string]any{
		"secretid":  "AKIDexample",
		"secretkey": "s3cr3t-value",
		"bucket":    "registry-1250000000",
		"region":    "ap-guangzhou",
	}
}

func TestParseParametersDefaults(t *testing.T) {
	p, err := ParseParameters(baseConfig())
	require.NoError(t, err)
	require.Equal(t, "", p.RootDirectory)
	require.EqualValues(t, 16*mib, p.ChunkSize)
	require.Equal(t, 10, p.MaxConcurrency)
	require.True(t, p.Secure)
	require.Equal(t, 20*time.Minute, p.RedirectExpiry)
	require.EqualValues(t, DefaultBufferChunks*16*mib, p.MaxBufferMemory)
}

// TestParseParameters covers each parameter's good and bad values, in the
// types YAML and environment overrides produce.
func TestParseParameters(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value any
		check func(*testing.T, Parameters)
		err   string // substring of the error; "" = accepted
	}{
		{name: "chunksize int", key: "chunksize", value: 8 * mib, check: func(t *testing.T, p Parameters) { require.EqualValues(t, 8*mib, p.ChunkSize) }},
		{name: "chunksize uint64", key: "chunksize", value: uint64(6 * mib), check: func(t *testing.T, p Parameters) { require.EqualValues(t, 6*mib, p.ChunkSize) }},
		{name: "chunksize float", key: "chunksize", value: float64(32 * mib), check: func(t *testing.T, p Parameters) { require.EqualValues(t, 32*mib, p.ChunkSize) }},
		{name: "chunksize string", key: "chunksize", value: "32MiB", check: func(t *testing.T, p Parameters) { require.EqualValues(t, 32*mib, p.ChunkSize) }},
		{name: "chunksize hex string", key: "chunksize", value: "0x600000", check: func(t *testing.T, p Parameters) { require.EqualValues(t, 6*mib, p.ChunkSize) }},
		{name: "chunksize nil is default", key: "chunksize", value: nil, check: func(t *testing.T, p Parameters) { require.EqualValues(t, 16*mib, p.ChunkSize) }},
		{name: "chunksize too small", key: "chunksize", value: 1024, err: "chunksize 1024 is out of range"},
		{name: "chunksize too big", key: "chunksize", value: "101MiB", err: "chunksize"},
		{name: "chunksize not a number", key: "chunksize", value: "big", err: "chunksize big is not a size"},
		{name: "chunksize fractional", key: "chunksize", value: 6291456.5, err: "not a size"},
		{name: "chunksize bool", key: "chunksize", value: true, err: "not a size"},
		{name: "maxconcurrency", key: "maxconcurrency", value: 3, check: func(t *testing.T, p Parameters) { require.Equal(t, 3, p.MaxConcurrency) }},
		{name: "maxconcurrency negative", key: "maxconcurrency", value: -1, err: "maxconcurrency -1 is out of range"},
		{name: "maxconcurrency zero", key: "maxconcurrency", value: 0, err: "maxconcurrency 0 is out of range"},
		{name: "secure false", key: "secure", value: false, check: func(t *testing.T, p Parameters) { require.False(t, p.Secure) }},
		{name: "secure string", key: "secure", value: "false", check: func(t *testing.T, p Parameters) { require.False(t, p.Secure) }},
		{name: "secure bad", key: "secure", value: "maybe", err: "secure maybe is not a boolean"},
		{name: "secure number", key: "secure", value: 2, err: "not a boolean"},
		{name: "rootdirectory", key: "rootdirectory", value: "/registry/", check: func(t *testing.T, p Parameters) { require.Equal(t, "/registry/", p.RootDirectory) }},
		{name: "rootdirectory backslash", key: "rootdirectory", value: `a\b`, err: "backslash"},
		{name: "bucket without appid", key: "bucket", value: "registry", err: `bucket "registry" is not a COS bucket name`},
		{name: "bucket uppercase", key: "bucket", value: "Registry-125", err: "not a COS bucket name"},
		{name: "bucket missing", key: "bucket", value: nil, err: "bucket is required"},
		{name: "region bad", key: "region", value: "Guangzhou!", err: "not a COS region"},
		{name: "region missing", key: "region", value: "", err: "region is required"},
		{name: "secretid number", key: "secretid", value: 12345, check: func(t *testing.T, p Parameters) { require.Equal(t, "12345", p.SecretID) }},
		{name: "secretid missing", key: "secretid", value: nil, err: "secretkey is set but secretid is not"},
		{name: "secretkey missing", key: "secretkey", value: nil, err: "secretid is set but secretkey is not"},
		{name: "cvmmetadataurl bad", key: "cvmmetadataurl", value: "metadata", err: "cvmmetadataurl"},
		{name: "secretkey map", key: "secretkey", value: map[any]any{"a": 1}, err: "secretkey must be a string"},
		{name: "endpoint", key: "endpoint", value: "https://registry-1250000000.cos.ap-guangzhou.tencentcos.cn", check: func(t *testing.T, p Parameters) { require.NotEmpty(t, p.Endpoint) }},
		{name: "endpoint malformed", key: "endpoint", value: "cos.example.com", err: "endpoint \"cos.example.com\" is not a base URL"},
		{name: "endpoint with path", key: "endpoint", value: "https://cos.example.com/x", err: "no path"},
		{name: "storageclass", key: "storageclass", value: "standard_ia", check: func(t *testing.T, p Parameters) { require.Equal(t, "STANDARD_IA", p.StorageClass) }},
		{name: "storageclass unknown", key: "storageclass", value: "GLACIER", err: `storageclass "GLACIER" is not supported`},
		{name: "storageclass archive", key: "storageclass", value: "ARCHIVE", err: "not supported"},
		{name: "kmskeyid without encrypt", key: "kmskeyid", value: "kms-1", err: "kmskeyid needs encrypt"},
		{name: "redirectexpiry string", key: "redirectexpiry", value: "5m", check: func(t *testing.T, p Parameters) { require.Equal(t, 5*time.Minute, p.RedirectExpiry) }},
		{name: "redirectexpiry seconds", key: "redirectexpiry", value: 60, check: func(t *testing.T, p Parameters) { require.Equal(t, time.Minute, p.RedirectExpiry) }},
		{name: "redirectexpiry bad", key: "redirectexpiry", value: "soon", err: "redirectexpiry \"soon\" is not a duration"},
		{name: "redirectexpiry too long", key: "redirectexpiry", value: "720h", err: "out of range"},
		{name: "redirectendpoint bad", key: "redirectendpoint", value: "ftp://cdn", err: "redirectendpoint"},
		{name: "multipartcopychunksize small", key: "multipartcopychunksize", value: 1000, err: "multipartcopychunksize 1000 is out of range"},
		{name: "multipartcopythreshold", key: "multipartcopythreshold", value: "64MiB", check: func(t *testing.T, p Parameters) { require.EqualValues(t, 64*mib, p.MultipartCopyThreshold) }},
		{name: "maxbuffermemory below chunk", key: "maxbuffermemory", value: "1MiB", err: "maxbuffermemory"},
		{name: "maxretries", key: "maxretries", value: 0, check: func(t *testing.T, p Parameters) { require.Equal(t, 0, p.MaxRetries) }},
		{name: "unknown parameter", key: "chunk_size", value: 1, err: `unknown parameter "chunk_size"`},
		{name: "skipverify yes", key: "skipverify", value: "yes", check: func(t *testing.T, p Parameters) { require.True(t, p.SkipVerify) }},
		{name: "storageclassthreshold default", key: "storageclassthreshold", value: nil, check: func(t *testing.T, p Parameters) { require.EqualValues(t, 64*kib, p.StorageClassThreshold) }},
		{name: "storageclassthreshold zero", key: "storageclassthreshold", value: 0, err: "storageclassthreshold 0 is out of range"},
		{name: "internalcidrs list", key: "internalcidrs", value: []any{"10.0.0.0/8", " 192.168.0.0/16 "}, check: func(t *testing.T, p Parameters) {
			require.Equal(t, []string{"10.0.0.0/8", "192.168.0.0/16"}, p.InternalCIDRs)
		}},
		{name: "internalcidrs bad", key: "internalcidrs", value: "10.0.0.0", err: `internalcidrs: "10.0.0.0" is not a network`},
		{name: "internalcidrs not strings", key: "internalcidrs", value: []any{8}, err: "internalcidrs must be a list of strings"},
		{name: "internalendpoint alone", key: "internalendpoint", value: "https://internal.example.com", err: "internalendpoint needs internalcidrs"},
		{name: "trafficlimit", key: "trafficlimit", value: "10MiB", check: func(t *testing.T, p Parameters) { require.EqualValues(t, 10*mib, p.TrafficLimit) }},
		{name: "trafficlimit zero is off", key: "trafficlimit", value: 0, check: func(t *testing.T, p Parameters) { require.Zero(t, p.TrafficLimit) }},
		{name: "trafficlimit too low", key: "trafficlimit", value: "50KiB", err: "trafficlimit 51200 is out of range: want 102400 (100 KiB) to 104857600 (100 MiB)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := baseConfig()
			if tc.value == nil {
				delete(m, tc.key)
			} else {
				m[tc.key] = tc.value
			}
			p, err := ParseParameters(m)
			if tc.err != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.err)
				require.NotContains(t, err.Error(), "s3cr3t-value", "secret leaked in error")
				return
			}
			require.NoError(t, err)
			tc.check(t, p)
		})
	}
}

// TestEnvironmentOverrides runs the registry's own configuration parser:
// every parameter can come from REGISTRY_STORAGE_COS_<NAME>.
func TestEnvironmentOverrides(t *testing.T) {
	yml := "version: 0.1\nstorage:\n  cos:\n    bucket: registry-1250000000\n    region: ap-guangzhou\n"
	t.Setenv("REGISTRY_STORAGE_COS_SECRETID", "AKIDfromenv")
	t.Setenv("REGISTRY_STORAGE_COS_SECRETKEY", "keyfromenv")
	t.Setenv("REGISTRY_STORAGE_COS_CHUNKSIZE", "33554432")
	t.Setenv("REGISTRY_STORAGE_COS_SECURE", "false")
	t.Setenv("REGISTRY_STORAGE_COS_ROOTDIRECTORY", "/reg")
	t.Setenv("REGISTRY_STORAGE_COS_MAXCONCURRENCY", "4")
	t.Setenv("REGISTRY_STORAGE_COS_REDIRECTEXPIRY", "10m")
	config, err := configuration.Parse(strings.NewReader(yml))
	require.NoError(t, err)
	require.Equal(t, "cos", config.Storage.Type())
	p, err := ParseParameters(config.Storage.Parameters())
	require.NoError(t, err)
	require.Equal(t, "AKIDfromenv", p.SecretID)
	require.Equal(t, "keyfromenv", p.SecretKey)
	require.EqualValues(t, 32*mib, p.ChunkSize)
	require.False(t, p.Secure)
	require.Equal(t, "/reg", p.RootDirectory)
	require.Equal(t, 4, p.MaxConcurrency)
	require.Equal(t, 10*time.Minute, p.RedirectExpiry)
}

// TestParametersNeverPrintSecrets checks the %v form of Parameters.
func TestParametersNeverPrintSecrets(t *testing.T) {
	p, err := ParseParameters(baseConfig())
	require.NoError(t, err)
	p.SessionToken = "token-value"
	for _, s := range []string{p.String(), fmtV(p), fmtV(&p)} {
		require.NotContains(t, s, "s3cr3t-value")
		require.NotContains(t, s, "token-value")
	}
}

func fmtV(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }

// TestStructAndMapPathsAgree feeds every parameter through both entry
// points, the configuration map (ParseParameters) and the struct (New's
// Validate on DefaultParameters), and demands the same parameters or the
// same error. Ranges and derived defaults have one home, so they cannot
// disagree (as maxconcurrency 5000 or a 64 MiB chunksize's buffer budget
// once did).
func TestStructAndMapPathsAgree(t *testing.T) {
	tests := []struct {
		key   string
		value any
		set   func(*Parameters)
	}{
		{"secretid", "AKIDother", func(p *Parameters) { p.SecretID = "AKIDother" }},
		{"secretid", " AKIDspace", func(p *Parameters) { p.SecretID = " AKIDspace" }},
		{"secretkey", "other-key", func(p *Parameters) { p.SecretKey = "other-key" }},
		{"sessiontoken", "token", func(p *Parameters) { p.SessionToken = "token" }},
		{"cvmrole", "role", func(p *Parameters) { p.CVMRole = "role" }},
		{"cvmmetadataurl", "http://169.254.0.23", func(p *Parameters) { p.CVMMetadataURL = "http://169.254.0.23" }},
		{"cvmmetadataurl", "metadata", func(p *Parameters) { p.CVMMetadataURL = "metadata" }},
		{"profile", "ops", func(p *Parameters) { p.Profile = "ops" }},
		{"rolearn", "qcs::cam::uin/1:roleName/r", func(p *Parameters) { p.RoleARN = "qcs::cam::uin/1:roleName/r" }},
		{"rolearn", "arn:aws:iam::123456789012:role/r", func(p *Parameters) { p.RoleARN = "arn:aws:iam::123456789012:role/r" }},
		{"rolearn", "qcs::cam::uin/1:role/4611686018427397919", func(p *Parameters) { p.RoleARN = "qcs::cam::uin/1:role/4611686018427397919" }},
		{"rolesessionname", "registry-a", func(p *Parameters) { p.RoleSessionName = "registry-a" }},
		{"rolesessionname", "bad name", func(p *Parameters) { p.RoleSessionName = "bad name" }},
		{"roleduration", "1h", func(p *Parameters) { p.RoleDuration = time.Hour }},
		{"roleduration", "13h", func(p *Parameters) { p.RoleDuration = 13 * time.Hour }},
		{"roleduration", "1m", func(p *Parameters) { p.RoleDuration = time.Minute }},
		{"stsendpoint", "https://sts.internal.tencentcloudapi.com", func(p *Parameters) { p.STSEndpoint = "https://sts.internal.tencentcloudapi.com" }},
		{"stsendpoint", "sts", func(p *Parameters) { p.STSEndpoint = "sts" }},
		{"bucket", "other-1250000000", func(p *Parameters) { p.Bucket = "other-1250000000" }},
		{"bucket", "Other", func(p *Parameters) { p.Bucket = "Other" }},
		{"region", "ap-shanghai", func(p *Parameters) { p.Region = "ap-shanghai" }},
		{"region", "Shanghai!", func(p *Parameters) { p.Region = "Shanghai!" }},
		{"endpoint", "https://cos.example.com", func(p *Parameters) { p.Endpoint = "https://cos.example.com" }},
		{"endpoint", "https://cos.example.com/x", func(p *Parameters) { p.Endpoint = "https://cos.example.com/x" }},
		{"accelerate", true, func(p *Parameters) { p.Accelerate = true }},
		{"secure", false, func(p *Parameters) { p.Secure = false }},
		{"skipverify", true, func(p *Parameters) { p.SkipVerify = true }},
		{"rootdirectory", "/registry", func(p *Parameters) { p.RootDirectory = "/registry" }},
		{"rootdirectory", `a\b`, func(p *Parameters) { p.RootDirectory = `a\b` }},
		{"chunksize", 64 * mib, func(p *Parameters) { p.ChunkSize = 64 * mib }},
		{"chunksize", 4 * mib, func(p *Parameters) { p.ChunkSize = 4 * mib }},
		{"chunksize", 101 * mib, func(p *Parameters) { p.ChunkSize = 101 * mib }},
		{"maxconcurrency", 20, func(p *Parameters) { p.MaxConcurrency = 20 }},
		{"maxconcurrency", 5000, func(p *Parameters) { p.MaxConcurrency = 5000 }},
		{"maxconcurrency", -1, func(p *Parameters) { p.MaxConcurrency = -1 }},
		{"maxbuffermemory", 512 * mib, func(p *Parameters) { p.MaxBufferMemory = 512 * mib }},
		{"maxbuffermemory", mib, func(p *Parameters) { p.MaxBufferMemory = mib }},
		{"maxbuffermemory", 65 * gib, func(p *Parameters) { p.MaxBufferMemory = 65 * gib }},
		{"maxretries", 7, func(p *Parameters) { p.MaxRetries = 7 }},
		{"maxretries", 1000, func(p *Parameters) { p.MaxRetries = 1000 }},
		{"maxretries", -1, func(p *Parameters) { p.MaxRetries = -1 }},
		{"storageclass", "standard_ia", func(p *Parameters) { p.StorageClass = "standard_ia" }},
		{"storageclass", "ARCHIVE", func(p *Parameters) { p.StorageClass = "ARCHIVE" }},
		{"encrypt", true, func(p *Parameters) { p.Encrypt = true }},
		{"kmskeyid", "kms-1", func(p *Parameters) { p.KMSKeyID = "kms-1" }},
		{"redirectexpiry", "1h", func(p *Parameters) { p.RedirectExpiry = time.Hour }},
		{"redirectexpiry", "200h", func(p *Parameters) { p.RedirectExpiry = 200 * time.Hour }},
		{"redirectexpiry", "-1s", func(p *Parameters) { p.RedirectExpiry = -time.Second }},
		{"redirectendpoint", "https://cdn.example.com", func(p *Parameters) { p.RedirectEndpoint = "https://cdn.example.com" }},
		{"redirectendpoint", "cdn.example.com", func(p *Parameters) { p.RedirectEndpoint = "cdn.example.com" }},
		{"multipartcopythreshold", 64 * mib, func(p *Parameters) { p.MultipartCopyThreshold = 64 * mib }},
		{"multipartcopythreshold", 6 * gib, func(p *Parameters) { p.MultipartCopyThreshold = 6 * gib }},
		{"multipartcopychunksize", 8 * mib, func(p *Parameters) { p.MultipartCopyChunkSize = 8 * mib }},
		{"multipartcopychunksize", 1000, func(p *Parameters) { p.MultipartCopyChunkSize = 1000 }},
		{"useragent", "mirror/1", func(p *Parameters) { p.UserAgent = "mirror/1" }},
		{"storageclassthreshold", "1MiB", func(p *Parameters) { p.StorageClassThreshold = mib }},
		{"storageclassthreshold", -1, func(p *Parameters) { p.StorageClassThreshold = -1 }},
		{"storageclassthreshold", 6 * gib, func(p *Parameters) { p.StorageClassThreshold = 6 * gib }},
		{"internalcidrs", "10.0.0.0/8,fd00::/8", func(p *Parameters) { p.InternalCIDRs = []string{"10.0.0.0/8", "fd00::/8"} }},
		{"internalcidrs", "10.0.0.0/33", func(p *Parameters) { p.InternalCIDRs = []string{"10.0.0.0/33"} }},
		{"internalendpoint", "https://internal.example.com", func(p *Parameters) { p.InternalEndpoint = "https://internal.example.com" }},
		{"trafficlimit", "1MiB", func(p *Parameters) { p.TrafficLimit = mib }},
		{"trafficlimit", 1000, func(p *Parameters) { p.TrafficLimit = 1000 }},
		{"trafficlimit", "101MiB", func(p *Parameters) { p.TrafficLimit = 101 * mib }},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.key] = true
		t.Run(fmt.Sprintf("%s=%v", tc.key, tc.value), func(t *testing.T) {
			m := baseConfig()
			m[tc.key] = tc.value
			fromMap, mapErr := ParseParameters(m)

			p := DefaultParameters()
			p.SecretID, p.SecretKey = "AKIDexample", "s3cr3t-value"
			p.Bucket, p.Region = "registry-1250000000", "ap-guangzhou"
			tc.set(&p)
			before := p
			structErr := p.Validate()
			require.Equal(t, before, p, "Validate changed its parameters")

			if mapErr != nil || structErr != nil {
				require.Error(t, mapErr, "the map path accepts what the struct path refuses: %v", structErr)
				require.Error(t, structErr, "the struct path accepts what the map path refuses: %v", mapErr)
				require.Equal(t, mapErr.Error(), structErr.Error())
				return
			}
			require.Equal(t, fromMap, p.withDefaults())
		})
	}
	for _, name := range ParameterNames() {
		require.True(t, covered[name], "parameter %s has no case here", name)
	}
}

// TestZeroCopyThresholdIsRefusedNotDefaulted: an explicit 0 in a
// configuration is out of range (it would otherwise silently become the
// default), while a zero field of the struct means the default.
func TestZeroCopyThresholdIsRefusedNotDefaulted(t *testing.T) {
	m := baseConfig()
	m["multipartcopythreshold"] = 0
	_, err := ParseParameters(m)
	require.ErrorContains(t, err, "multipartcopythreshold 0 is out of range")
	p := DefaultParameters()
	p.MultipartCopyThreshold = 0
	require.EqualValues(t, DefaultMultipartCopyThreshold, p.withDefaults().MultipartCopyThreshold)
}

// TestDerivedBufferBudgetFollowsChunkSize pins the derived default through
// both paths: 8 chunks of whatever chunksize is.
func TestDerivedBufferBudgetFollowsChunkSize(t *testing.T) {
	m := baseConfig()
	m["chunksize"] = "64MiB"
	fromMap, err := ParseParameters(m)
	require.NoError(t, err)
	require.EqualValues(t, DefaultBufferChunks*64*mib, fromMap.MaxBufferMemory)

	p := DefaultParameters()
	p.ChunkSize = 64 * mib
	require.EqualValues(t, DefaultBufferChunks*64*mib, p.withDefaults().MaxBufferMemory)
}

// TestRootDirectoryDotSegments: "." and ".." segments are refused.
func TestRootDirectoryDotSegments(t *testing.T) {
	for _, root := range []string{"/registry/../escape", "..", "/a/./b", "/a/.."} {
		p := DefaultParameters()
		p.Bucket, p.Region, p.RootDirectory = "registry-1250000000", "ap-guangzhou", root
		require.ErrorContains(t, p.Validate(), "rootdirectory", root)
	}
}

// TestRoleARNForm: a role ARN not of CAM's form is refused at start with
// the form it should have, not sent to STS.
func TestRoleARNForm(t *testing.T) {
	for _, arn := range []string{"arn:aws:iam::123456789012:role/r", "qcs::cam::uin/1:roleName/", "registry-cos"} {
		m := baseConfig()
		m["rolearn"] = arn
		_, err := ParseParameters(m)
		require.ErrorContains(t, err, "is not a CAM role ARN: want qcs::cam::uin/<uin>:roleName/<name>", arn)
	}
	for _, arn := range []string{"qcs::cam::uin/100000000001:roleName/registry-cos", "qcs::cam::uin/1:role/4611686018427397919"} {
		m := baseConfig()
		m["rolearn"] = arn
		_, err := ParseParameters(m)
		require.NoError(t, err, arn)
	}
}
