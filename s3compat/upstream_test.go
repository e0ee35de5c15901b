package s3compat

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	// The upstream package whose tests run below, and its test suite:
	// imported so this module's go.sum covers what they build with.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/testsuites"
)

const upstreamS3Package = "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

// TestUpstreamS3AWSDriverSuite runs distribution v3.1.2's own tests of its
// s3-aws storage driver (TestS3DriverSuite: the storage driver conformance
// suite; and TestEmptyRootList, TestStorageClass, TestDelete, TestWalk,
// TestOverThousandBlobs, TestMoveWithMultipartCopy, TestListObjectsV2),
// unchanged, against the emulator, configured by the environment variables
// they read. -short skips only the 5 GB stream and shrinks the concurrency
// tests. TestClientTransport is skipped: it sends no request, only checks
// the driver's HTTP transport when built for an AWS region without an
// endpoint, and the driver refuses a COS region name there.
func TestUpstreamS3AWSDriverSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on the upstream package: minutes")
	}
	srv := startEmulator(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs the go command on the upstream package: %v", err)
	}
	cmd := exec.Command(goBin, "test", "-short", "-count=1", "-v", "-timeout", "30m", "-skip", "^TestClientTransport$", upstreamS3Package)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY="+srv.SecretID, "AWS_SECRET_KEY="+srv.SecretKey, "AWS_REGION="+srv.Region,
		"S3_BUCKET="+srv.Bucket, "S3_ENCRYPT=false", "REGION_ENDPOINT="+srv.URL, "S3_SECURE=false",
		"AWS_S3_FORCE_PATH_STYLE=true", "S3_ACCELERATE=false",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	// Without its variables the suite skips instead of failing: it must
	// have run, and passed, every test.
	passed := regexp.MustCompile(`(?m)^--- PASS: (\w+)`).FindAllStringSubmatch(string(out), -1)
	var names []string
	for _, m := range passed {
		names = append(names, m[1])
	}
	for _, want := range []string{"TestS3DriverSuite", "TestEmptyRootList", "TestStorageClass", "TestDelete", "TestWalk",
		"TestOverThousandBlobs", "TestMoveWithMultipartCopy", "TestListObjectsV2"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("%s did not pass (passed: %v)\n%s", want, names, out)
		}
	}
	// -short skips the 5 GB stream, and nothing else.
	for _, m := range regexp.MustCompile(`--- SKIP: (\S+)`).FindAllStringSubmatch(string(out), -1) {
		if m[1] != "TestS3DriverSuite/TestWriteReadLargeStreams" {
			t.Errorf("upstream test %s skipped", m[1])
		}
	}
	t.Logf("upstream s3-aws tests passed: %d top-level, %d subtests", len(names),
		len(regexp.MustCompile(`(?m)^\s+--- PASS`).FindAllString(string(out), -1)))
}
