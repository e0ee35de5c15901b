package check_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/check"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
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
	// docs/check.md and its Chinese page give the number of lines of a run
	// without storageclass or accelerate, as this one is.
	for _, page := range []string{"../docs/check.md", "../docs/zh-CN/check.md"} {
		doc, err := os.ReadFile(page)
		require.NoError(t, err)
		m := regexp.MustCompile(`\n## [^\n]*?(\d+) (?:lines|行)`).FindSubmatch(doc)
		require.NotNil(t, m, "%s gives no count of the checks", page)
		require.Equal(t, strconv.Itoa(len(r.Results)), string(m[1]), "%s counts the checks wrong:\n%s", page, lines(r))
	}
	find(t, r, "ranged GET past the end") // the reader's first GET relies on it
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
		// detail is part of what the check says (Got, or Detail when ok).
		detail map[string]string
		action string
	}{
		{name: "missing CRC", opts: costest.Options{Misbehavior: costest.Misbehavior{OmitCRC64: true}},
			checks: map[string]check.Status{"PUT CRC64": check.Fail, "HEAD CRC64": check.Fail, "GET CRC64": check.Fail, "Complete CRC64": check.Fail,
				// The driver checks a copied part's CRC64 only when COS sends it.
				"Upload Part - Copy CRC64": check.OK, "part copy from the key it replaces": check.OK},
			detail: map[string]string{"Upload Part - Copy CRC64": "no x-cos-hash-crc64ecma"}},
		{name: "long suffix range refused", opts: costest.Options{Misbehavior: costest.Misbehavior{RefuseLongSuffixRange: true}},
			checks: map[string]check.Status{"suffix range GET": check.Fail, "ranged GET 206": check.OK},
			detail: map[string]string{"suffix range GET": "416 InvalidRange"}},
		{name: "If-Match ignored", opts: costest.Options{Misbehavior: costest.Misbehavior{IgnoreIfMatch: true}},
			checks: map[string]check.Status{"ranged GET pinned by If-Match": check.Fail, "Upload Part - Copy pinned by If-Match": check.OK},
			detail: map[string]string{"ranged GET pinned by If-Match": "206 with 100 bytes"}},
		{name: "copy-source If-Match ignored", opts: costest.Options{Misbehavior: costest.Misbehavior{IgnoreCopySourceIfMatch: true}},
			checks: map[string]check.Status{"Upload Part - Copy pinned by If-Match": check.Fail, "ranged GET pinned by If-Match": check.OK},
			detail: map[string]string{"Upload Part - Copy pinned by If-Match": "200: the part was copied"}},
		{name: "part copy from the upload's own key refused", opts: costest.Options{Misbehavior: costest.Misbehavior{RefuseSelfPartCopy: true}},
			checks: map[string]check.Status{"part copy from the key it replaces": check.Fail, "Upload Part - Copy with a range": check.OK,
				"suffix range GET": check.Warn, "metadata set at Initiate": check.Warn},
			detail: map[string]string{"part copy from the key it replaces": "400 InvalidRequest", "suffix range GET": "not tried"}},
		{name: "wrong listing order", opts: costest.Options{Misbehavior: costest.Misbehavior{UnorderedListing: true}},
			checks: map[string]check.Status{"listing order": check.Fail}},
		{name: "denied copy", opts: costest.Options{Misbehavior: costest.Misbehavior{Deny: []string{"CopyObject"}}},
			checks: map[string]check.Status{"copy with metadata": check.Fail, "permission PutObjectCopy": check.Fail}, action: "name/cos:PutObjectCopy"},
		{name: "missing lifecycle rule", opts: costest.Options{},
			checks: map[string]check.Status{"lifecycle": check.Warn}},
		{name: "lifecycle rule on another prefix", opts: costest.Options{BucketConfig: costest.BucketConfig{AbortIncompleteUploadDays: 7, LifecyclePrefix: "logs/"}},
			checks: map[string]check.Status{"lifecycle": check.Warn}},
		{name: "lifecycle rule on the root", opts: costest.Options{BucketConfig: costest.BucketConfig{AbortIncompleteUploadDays: 7, LifecyclePrefix: "registry/"}},
			checks: map[string]check.Status{"lifecycle": check.OK}},
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
			for name, part := range tc.detail {
				res := find(t, r, name)
				require.Contains(t, res.Got+res.Detail, part, "check %s:\n%s", name, lines(r))
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

// emulatorOperation is the costest operation behind each CAM action.
var emulatorOperation = map[string]string{
	"name/cos:HeadBucket":              "HeadBucket",
	"name/cos:GetBucket":               "ListObjects",
	"name/cos:ListMultipartUploads":    "ListMultipartUploads",
	"name/cos:PutObject":               "PutObject",
	"name/cos:PutObjectCopy":           "CopyObject",
	"name/cos:GetObject":               "GetObject",
	"name/cos:HeadObject":              "HeadObject",
	"name/cos:DeleteObject":            "DeleteObject",
	"name/cos:DeleteMultipleObjects":   "DeleteMultipleObjects",
	"name/cos:InitiateMultipartUpload": "InitiateMultipartUpload",
	"name/cos:UploadPart":              "UploadPart",
	"name/cos:UploadPartCopy":          "UploadPartCopy",
	"name/cos:CompleteMultipartUpload": "CompleteMultipartUpload",
	"name/cos:AbortMultipartUpload":    "AbortMultipartUpload",
}

// TestProbeNamesEachDeniedAction: denying any one operation the driver
// needs FAILs the run with that operation's CAM action, and with no other.
func TestProbeNamesEachDeniedAction(t *testing.T) {
	require.Len(t, emulatorOperation, len(check.DriverActions))
	for _, action := range check.DriverActions {
		t.Run(action, func(t *testing.T) {
			op, known := emulatorOperation[action]
			require.True(t, known, "no emulator operation for %s", action)
			srv, d, p := emulator(t, costest.Options{BucketConfig: costest.BucketConfig{AbortIncompleteUploadDays: 7}})
			// Deny after New: New's own HEAD Bucket must pass to get a driver.
			srv.SetMisbehavior(costest.Misbehavior{Deny: []string{op}})
			r := check.Run(context.Background(), d, p, check.Options{})
			require.True(t, r.Failed(), lines(r))
			var named []string
			for _, res := range r.Results {
				if res.Action != "" && res.Status == check.Fail {
					named = append(named, res.Action)
				}
				if strings.HasPrefix(res.Name, "permission ") && res.Action != action {
					require.NotEqual(t, check.Fail, res.Status, "only %s was denied:\n%s", action, lines(r))
				}
			}
			require.Contains(t, named, action, lines(r))
			require.Contains(t, lines(r), "allow "+action+" in the CAM policy")
		})
	}
}

// TestProbeCleansUpWhenCancelled: a run cancelled half-way through (while
// it writes the 1001 paging keys) still removes every key and upload it
// wrote, and says it was interrupted.
func TestProbeCleansUpWhenCancelled(t *testing.T) {
	srv, d, p := emulator(t, costest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan check.Report)
	go func() { done <- check.Run(ctx, d, p, check.Options{}) }()
	var r check.Report
wait:
	for {
		select {
		case r = <-done:
			t.Fatalf("the run ended before it wrote 100 paging keys:\n%s", lines(r))
		default:
		}
		if srv.Stats().Count("PutObject") > 100 {
			cancel()
			r = <-done
			break wait
		}
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, check.Fail, find(t, r, "interrupted").Status, lines(r))
	require.Equal(t, check.OK, find(t, r, "cleanup").Status, lines(r))
	bg := context.Background()
	left, _, err := d.Client().Bucket.Get(bg, &cossdk.BucketGetOptions{Prefix: "registry/"})
	require.NoError(t, err)
	require.Empty(t, left.Contents, "the cancelled probe left keys behind")
	uploads, _, err := d.Client().Object.ListUploads(bg, nil)
	require.NoError(t, err)
	require.Empty(t, uploads.Upload, "the cancelled probe left uploads behind")
}

// TestProbeReportsLeftUploads: when uploads cannot be aborted, cleanup
// says so instead of reporting a clean bucket.
func TestProbeReportsLeftUploads(t *testing.T) {
	srv, d, p := emulator(t, costest.Options{})
	srv.SetMisbehavior(costest.Misbehavior{Deny: []string{"AbortMultipartUpload"}})
	r := check.Run(context.Background(), d, p, check.Options{})
	res := find(t, r, "cleanup")
	require.Equal(t, check.Fail, res.Status, lines(r))
	require.Contains(t, res.Got, "multipart uploads still listed")
}

// TestProbeAcceleration: with accelerate set, a bucket without global
// acceleration FAILs the acceleration check, and one with it passes.
func TestProbeAcceleration(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		_, d, p := emulator(t, costest.Options{BucketConfig: costest.BucketConfig{Accelerate: enabled}})
		// The emulator is reached by endpoint, which excludes accelerate in
		// New; the probe reads the setting from the parameters it is given.
		p.Accelerate = true
		r := check.Run(context.Background(), d, p, check.Options{})
		want := check.Fail
		if enabled {
			want = check.OK
		}
		require.Equal(t, want, find(t, r, "acceleration").Status, "acceleration enabled %v:\n%s", enabled, lines(r))
	}
}

// TestProbeStorageClassAndTrafficLimit: with storageclass, the probe says
// which objects get the class; with trafficlimit, the traffic-limit line
// names the cap, and the presigned checks pass with it in the URL.
func TestProbeStorageClassAndTrafficLimit(t *testing.T) {
	_, d, p := emulator(t, costest.Options{})
	p.StorageClass = "STANDARD_IA"
	p.TrafficLimit = 1 << 20
	r := check.Run(context.Background(), d, p, check.Options{})
	res := find(t, r, "storage class STANDARD_IA")
	require.Equal(t, check.OK, res.Status, lines(r))
	require.Contains(t, res.Detail, "blob data of 65536 bytes and more is written STANDARD_IA, every other object STANDARD")
	res = find(t, r, "traffic limit")
	require.Equal(t, check.OK, res.Status, lines(r))
	require.Contains(t, res.Detail, "trafficlimit caps downloads at 8388608 bit/s")
	require.Equal(t, check.OK, find(t, r, "presigned GET").Status, lines(r))
}
