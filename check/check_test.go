package check_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/check"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// emulator starts an emulator and a driver on it, rooted at /registry.
func emulator(t *testing.T, opts costest.Options) (*costest.Server, *cos.Driver, cos.Parameters) {
	t.Helper()
	srv := testenv.StartEmulator(t, opts)
	params := testenv.DriverParameters(srv)
	params["rootdirectory"] = "/registry"
	p, err := cos.ParseParameters(params)
	require.NoError(t, err)
	d, err := cos.New(context.Background(), p)
	require.NoError(t, err)
	return srv, d, p
}

// probe runs the probe against an emulator built with opts.
func probe(t *testing.T, opts costest.Options) (check.Report, *costest.Server, *cos.Driver) {
	t.Helper()
	srv, d, p := emulator(t, opts)
	return check.Run(context.Background(), d, p, check.Options{}), srv, d
}

func find(t *testing.T, r check.Report, name string) check.Result {
	t.Helper()
	for _, res := range r.Results {
		if res.Name == name {
			return res
		}
	}
	t.Fatalf("no check named %q in %v", name, r.Results)
	return check.Result{}
}

func lines(r check.Report) string {
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.String() + "\n")
	}
	return b.String()
}

// TestProbeOnEmulator: every check passes against a well-configured
// emulator, and nothing is left behind.
func TestProbeOnEmulator(t *testing.T) {
	r, srv, d := probe(t, costest.Options{BucketConfig: costest.BucketConfig{AbortIncompleteUploadDays: 7}})
	for _, res := range r.Results {
		require.Equal(t, check.OK, res.Status, "check %s:\n%s", res.Name, lines(r))
	}
	require.GreaterOrEqual(t, len(r.Results), 30, lines(r))
	left, _, err := d.Client().Bucket.Get(context.Background(), nil)
	require.NoError(t, err)
	require.Empty(t, left.Contents, "the probe left keys behind")
	require.NotContains(t, lines(r), srv.SecretKey)
}

// TestProbeNoticesMisbehaviour: each class of misbehaviour fails (or
// warns about) the check that covers it, and only the expected ones.
func TestProbeNoticesMisbehaviour(t *testing.T) {
	tests := []struct {
		name   string
		opts   costest.Options
		checks map[string]check.Status
		action string
	}{
		{name: "missing CRC", opts: costest.Options{Misbehavior: costest.Misbehavior{OmitCRC64: true}},
			checks: map[string]check.Status{"PUT CRC64": check.Fail, "HEAD CRC64": check.Fail, "GET CRC64": check.Fail, "Complete CRC64": check.Fail}},
		{name: "wrong listing order", opts: costest.Options{Misbehavior: costest.Misbehavior{UnorderedListing: true}},
			checks: map[string]check.Status{"listing order": check.Fail}},
		{name: "denied copy", opts: costest.Options{Misbehavior: costest.Misbehavior{Deny: []string{"CopyObject"}}},
			checks: map[string]check.Status{"copy with metadata": check.Fail, "permission PutObjectCopy": check.Fail}, action: "name/cos:PutObjectCopy"},
		{name: "missing lifecycle rule", opts: costest.Options{},
			checks: map[string]check.Status{"lifecycle": check.Warn}},
		{name: "versioning on", opts: costest.Options{BucketConfig: costest.BucketConfig{Versioning: "Enabled"}},
			checks: map[string]check.Status{"versioning": check.Warn}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := probe(t, tc.opts)
			for name, status := range tc.checks {
				res := find(t, r, name)
				require.Equal(t, status, res.Status, "check %s:\n%s", name, lines(r))
				if status == check.Fail {
					require.True(t, r.Failed())
				}
			}
			if tc.action != "" {
				require.Equal(t, tc.action, find(t, r, "permission PutObjectCopy").Action)
				require.Contains(t, lines(r), "allow "+tc.action)
			}
		})
	}
}

// TestProbeAbortsStaleUploads: uploads older than StaleAfter are counted,
// and aborted with AbortStale.
func TestProbeAbortsStaleUploads(t *testing.T) {
	_, d, p := emulator(t, costest.Options{})
	ctx := context.Background()
	_, _, err := d.Client().Object.InitiateMultipartUpload(ctx, "registry/docker/registry/v2/repositories/a/_uploads/x/data", nil)
	require.NoError(t, err)

	r := check.Run(ctx, d, p, check.Options{StaleAfter: -1})
	require.Equal(t, check.Warn, find(t, r, "stale multipart uploads").Status, lines(r))
	require.Contains(t, find(t, r, "stale multipart uploads").Got, "1 uploads")

	r = check.Run(ctx, d, p, check.Options{StaleAfter: -1, AbortStale: true})
	require.Equal(t, check.OK, find(t, r, "stale multipart uploads").Status, lines(r))
	r = check.Run(ctx, d, p, check.Options{StaleAfter: -1})
	require.Equal(t, check.OK, find(t, r, "stale multipart uploads").Status, "the stale upload was not aborted:\n%s", lines(r))
}

// TestCheckRealCOS runs the probe against a real bucket.
func TestCheckRealCOS(t *testing.T) {
	id, key, bucket, region := os.Getenv("COS_SECRET_ID"), os.Getenv("COS_SECRET_KEY"), os.Getenv("COS_BUCKET"), os.Getenv("COS_REGION")
	if id == "" || key == "" || bucket == "" || region == "" {
		t.Skip("set COS_SECRET_ID, COS_SECRET_KEY, COS_BUCKET and COS_REGION to run the probe against real COS")
	}
	p := cos.DefaultParameters()
	p.SecretID, p.SecretKey, p.Bucket, p.Region = id, key, bucket, region
	p.RootDirectory = "/registry-cos-test"
	d, err := cos.New(context.Background(), p)
	require.NoError(t, err)
	r := check.Run(context.Background(), d, p, check.Options{})
	t.Log("\n" + lines(r))
	require.False(t, r.Failed(), lines(r))
}

// TestMinimalPolicyIsWhatCheckTries: docs/cos-setup.md's minimal CAM
// policy lists exactly the actions the permission checks try.
func TestMinimalPolicyIsWhatCheckTries(t *testing.T) {
	doc, err := os.ReadFile("../docs/cos-setup.md")
	require.NoError(t, err)
	section := string(doc)
	start := strings.Index(section, "## Minimal CAM policy")
	require.GreaterOrEqual(t, start, 0, "cos-setup.md has no minimal policy section")
	section = section[start:]
	if end := strings.Index(section[1:], "\n## "); end > 0 {
		section = section[:end+1]
	}
	var listed []string
	for _, m := range regexp.MustCompile(`"(name/cos:[A-Za-z]+)"`).FindAllStringSubmatch(section, -1) {
		listed = append(listed, m[1])
	}
	require.ElementsMatch(t, check.DriverActions, listed)
}
