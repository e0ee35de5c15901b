package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// Credential of the emulator in TestServeRejectsBadConfiguration whose
// session token expired an hour ago.
const (
	expiredSecretID     = "AKIDexpiredTemporaryKey"
	expiredSecretKey    = "expiredTemporarySecretKey"
	expiredSessionToken = "expiredSessionTokenValue"
)

// badConfigCase is one broken configuration. The storage parameters start
// as the working set of a configuration that starts; set replaces or adds
// parameters (values are raw YAML), unset removes them, and edit, when not
// nil, rewrites the whole rendered file.
type badConfigCase struct {
	name  string
	set   map[string]string
	unset []string
	edit  func(config string) string
	// want are substrings the one line printed must contain.
	want []string
	// secret is a value given in the configuration that must not be
	// printed.
	secret string
}

// TestServeRejectsBadConfiguration starts `registry-cos serve` on broken
// configurations, from the parameter parser to the credentials and bucket
// checked on the server, and checks that each exits non-zero after printing
// exactly one line on stderr (nothing on stdout) that names the problem,
// with no panic or stack trace and no secret. (TestServeReportsStartupErrorOnOneLine
// covers a missing bucket on the server, a wrong region, an unreachable
// endpoint, environment overrides and a missing file.)
func TestServeRejectsBadConfiguration(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{
		Credentials: []costest.Credential{
			{SecretID: costest.DefaultSecretID, SecretKey: costest.DefaultSecretKey},
			{SecretID: expiredSecretID, SecretKey: expiredSecretKey, SessionToken: expiredSessionToken, Expiry: time.Now().Add(-time.Hour)},
		},
	})
	closedPort := "http://" + testenv.FreeAddr(t)

	cases := []badConfigCase{
		{name: "missing bucket", unset: []string{"bucket"}, want: []string{"parameter bucket is required"}},
		{name: "bucket with uppercase and underscore", set: map[string]string{"bucket": `"Registry_Images-1250000000"`}, want: []string{`bucket "Registry_Images-1250000000" is not a COS bucket name`}},
		{name: "bucket without appid", set: map[string]string{"bucket": "registry"}, want: []string{`bucket "registry" is not a COS bucket name`}},
		{name: "bad region", set: map[string]string{"region": `"AP Guangzhou"`}, want: []string{`region "AP Guangzhou" is not a COS region`}},
		{name: "no region with an IP endpoint", unset: []string{"region"}, want: []string{"region is required with endpoint"}},
		{name: "chunksize below 5 MiB", set: map[string]string{"chunksize": "4MiB"}, want: []string{"chunksize 4194304 is out of range"}},
		{name: "chunksize above 100 MiB", set: map[string]string{"chunksize": "101MiB"}, want: []string{"chunksize 105906176 is out of range"}},
		{name: "chunksize not a number", set: map[string]string{"chunksize": "lots"}, want: []string{"chunksize lots is not a size"}},
		{name: "chunksize a float", set: map[string]string{"chunksize": "5242880.5"}, want: []string{"chunksize", "is not a size"}},
		{name: "chunksize with an unknown unit", set: map[string]string{"chunksize": "16MB5"}, want: []string{"chunksize 16MB5 is not a size"}},
		{name: "negative maxconcurrency", set: map[string]string{"maxconcurrency": "-1"}, want: []string{"maxconcurrency -1 is out of range"}},
		{name: "zero maxconcurrency", set: map[string]string{"maxconcurrency": "0"}, want: []string{"maxconcurrency 0 is out of range"}},
		{name: "maxretries out of range", set: map[string]string{"maxretries": "101"}, want: []string{"maxretries 101 is out of range"}},
		{name: "endpoint without a scheme", set: map[string]string{"endpoint": "127.0.0.1:9000"}, want: []string{`endpoint "127.0.0.1:9000" is not a base URL`}},
		{name: "endpoint with another scheme", set: map[string]string{"endpoint": "ftp://127.0.0.1:9000"}, want: []string{`endpoint "ftp://127.0.0.1:9000" is not a base URL`}},
		{name: "endpoint with a path", set: map[string]string{"endpoint": "http://127.0.0.1:9000/registry"}, want: []string{"endpoint", "no path"}},
		{name: "endpoint with accelerate", set: map[string]string{"accelerate": "true"}, want: []string{"endpoint and accelerate exclude each other"}},
		{name: "unknown storage class", set: map[string]string{"storageclass": "GLACIER"}, want: []string{`storageclass "GLACIER" is not supported`}},
		{name: "archive storage class", set: map[string]string{"storageclass": "deep_archive"}, want: []string{`storageclass "DEEP_ARCHIVE" is not supported`}},
		{name: "secure not a boolean", set: map[string]string{"secure": "maybe"}, want: []string{"secure maybe is not a boolean"}},
		{name: "skipverify a number", set: map[string]string{"skipverify": "2"}, want: []string{"skipverify 2 is not a boolean"}},
		{name: "redirectexpiry not a duration", set: map[string]string{"redirectexpiry": "soon"}, want: []string{`redirectexpiry "soon" is not a duration`}},
		{name: "redirectexpiry over seven days", set: map[string]string{"redirectexpiry": "200h"}, want: []string{"redirectexpiry", "out of range"}},
		{name: "redirectendpoint without a scheme", set: map[string]string{"redirectendpoint": "cdn.example.com"}, want: []string{`redirectendpoint "cdn.example.com" is not a base URL`}},
		{name: "unknown parameter", set: map[string]string{"buckets": "other-1250000000"}, want: []string{`unknown parameter "buckets"`}},
		{name: "kmskeyid without encrypt", set: map[string]string{"kmskeyid": "kms-key-1"}, want: []string{"kmskeyid needs encrypt: true"}},
		{name: "maxbuffermemory below chunksize", set: map[string]string{"maxbuffermemory": "1MiB"}, want: []string{"maxbuffermemory 1048576 is out of range"}},
		{name: "multipartcopychunksize too small", set: map[string]string{"multipartcopychunksize": "512KiB"}, want: []string{"multipartcopychunksize 524288 is out of range"}},
		{name: "negative multipartcopythreshold", set: map[string]string{"multipartcopythreshold": "-1"}, want: []string{"multipartcopythreshold -1 is out of range"}},
		{name: "rootdirectory with a backslash", set: map[string]string{"rootdirectory": `'registry\v2'`}, want: []string{"rootdirectory", "backslash"}},
		{name: "secretid without secretkey", unset: []string{"secretkey"}, want: []string{"secretid is set but secretkey is not"}},
		{name: "secretkey without secretid", unset: []string{"secretid"}, secret: costest.DefaultSecretKey, want: []string{"secretkey is set but secretid is not"}},
		{name: "sessiontoken without a key pair", unset: []string{"secretid", "secretkey"}, set: map[string]string{"sessiontoken": "tokenWithoutKeys"}, secret: "tokenWithoutKeys", want: []string{"sessiontoken needs secretid and secretkey"}},
		{name: "secretkey not a string", set: map[string]string{"secretkey": "{nested: secretInAMap}"}, secret: "secretInAMap", want: []string{"secretkey must be a string"}},
		{name: "wrong secret key", set: map[string]string{"secretkey": "wrongSecretKeyValue"}, secret: "wrongSecretKeyValue", want: []string{"secretkey does not match secretid (SignatureDoesNotMatch)"}},
		{name: "unknown secret id", set: map[string]string{"secretid": "AKIDnobodyKnows"}, want: []string{"secretid is not a known SecretId (InvalidAccessKeyId)"}},
		{name: "expired session token", set: map[string]string{"secretid": expiredSecretID, "secretkey": expiredSecretKey, "sessiontoken": expiredSessionToken}, secret: expiredSessionToken, want: []string{"session token has expired (ExpiredToken)"}},
		{name: "cvmrole with an unreachable metadata service", unset: []string{"secretid", "secretkey"}, set: map[string]string{"cvmrole": "registry-role", "cvmmetadataurl": closedPort}, want: []string{`cvmrole "registry-role"`, "cannot reach the instance metadata service"}},
		{name: "secretid with cvmrole", set: map[string]string{"cvmrole": "registry-role"}, want: []string{"secretid and cvmrole exclude each other"}},
		{name: "rolesessionname with a space", set: map[string]string{"rolesessionname": `"my session"`}, want: []string{`rolesessionname "my session" is not an STS session name`}},
		{name: "roleduration over 12 hours", set: map[string]string{"roleduration": "13h"}, want: []string{"roleduration", "out of range"}},
		{name: "malformed stsendpoint", set: map[string]string{"stsendpoint": "sts.tencentcloudapi.com"}, want: []string{`stsendpoint "sts.tencentcloudapi.com" is not a base URL`}},
		{name: "rolearn STS unreachable", set: map[string]string{"rolearn": "qcs::cam::uin/1:roleName/x", "stsendpoint": `"` + closedPort + `"`}, want: []string{"credentials from role qcs::cam::uin/1:roleName/x assumed with configuration", "STS AssumeRole"}},
		{name: "malformed cvmmetadataurl", unset: []string{"secretid", "secretkey"}, set: map[string]string{"cvmrole": "registry-role", "cvmmetadataurl": "metadata.local"}, want: []string{`cvmmetadataurl "metadata.local" is not a base URL`}},
		{name: "two storage drivers in the file", edit: func(c string) string {
			return strings.Replace(c, "storage:\n", "storage:\n  filesystem:\n    rootdirectory: /tmp/registry-cos-two-drivers\n", 1)
		}, want: []string{"storage"}},
		{name: "no storage driver", edit: func(c string) string {
			return strings.Replace(c, "  cos:\n", "  notcos:\n", 1)
		}, want: []string{"notcos"}},
		{name: "unparsable YAML", edit: func(c string) string {
			return strings.Replace(c, "storage:\n", "storage: [unclosed\n", 1)
		}, want: []string{"configuration error", "yaml"}},
		{name: "tab-indented YAML", edit: func(c string) string {
			return strings.Replace(c, "    bucket:", "\tbucket:", 1)
		}, want: []string{"configuration error", "yaml"}},
		{name: "unsupported configuration version", edit: func(c string) string {
			return strings.Replace(c, "version: 0.1", "version: 9.9", 1)
		}, want: []string{"configuration error", "9.9"}},
	}
	t.Logf("%d broken configurations", len(cases))

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			config := badConfigYAML(emulator, tc)
			stdout, stderr, err := runServeToFailure(t, testenv.WriteFile(t, "config.yml", config))
			report := fmt.Sprintf("configuration:\n%s\nstdout:\n%s\nstderr:\n%s", config, stdout, stderr)
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
				t.Fatalf("serve exited with %v, want a non-zero exit code; %s", err, report)
			}
			if stdout != "" {
				t.Fatalf("serve printed on stdout, want nothing there; %s", report)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "registry-cos: ") {
				t.Fatalf("serve printed %d lines on stderr, want one starting with %q; %s", len(lines), "registry-cos: ", report)
			}
			forbidden := []string{"panic", "goroutine", ".go:", costest.DefaultSecretKey, expiredSecretKey}
			if tc.secret != "" {
				forbidden = append(forbidden, tc.secret)
			}
			for _, bad := range forbidden {
				if strings.Contains(stderr, bad) {
					t.Fatalf("serve's error line contains %q: %s", bad, lines[0])
				}
			}
			for _, want := range tc.want {
				if !strings.Contains(lines[0], want) {
					t.Fatalf("serve's error line does not say %q: %s", want, lines[0])
				}
			}
			t.Logf("serve said: %s", lines[0])
		})
	}
}

// badConfigYAML renders the configuration of one case: the parameters of
// a configuration that starts on emulator, edited as the case says.
func badConfigYAML(emulator *costest.Server, tc badConfigCase) string {
	params := testenv.DriverParameters(emulator)
	params["chunksize"] = testChunkSize
	for _, k := range tc.unset {
		delete(params, k)
	}
	for k, v := range tc.set {
		params[k] = registrytest.RawYAML(v)
	}
	config := registrytest.ConfigYAML(registrytest.Options{Parameters: params, LogLevel: "info"})
	if tc.edit != nil {
		config = tc.edit(config)
	}
	return config
}

// runServeToFailure runs `registry-cos serve configPath` and returns what
// it printed on stdout and on stderr. A configuration that wrongly starts
// is stopped after 2 minutes; the error is then not an exit status.
// serveSlots bounds how many serve processes the parallel cases run at
// once: dozens of registry processes starting together on 2 busy cores can
// take longer than the timeout below to print their one line.
var serveSlots = make(chan struct{}, 4)

func runServeToFailure(t *testing.T, configPath string) (stdout, stderr string, err error) {
	t.Helper()
	binary := registryBinary(t) // built by the first caller, before any wait
	serveSlots <- struct{}{}
	defer func() { <-serveSlots }()
	// The bound is for a configuration that wrongly starts (it then
	// serves until stopped); a refused one exits within seconds, even on
	// a busy machine, now that the build is not timed with it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", configPath)
	// No REGISTRY_*, TENCENTCLOUD_* or TKE_* variable of the test
	// environment may change the configuration under test.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "TENCENTCLOUD_") && !strings.HasPrefix(kv, "TKE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after 2m: %w", ctx.Err())
	}
	return out.String(), errOut.String(), err
}
