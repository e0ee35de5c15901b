package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-cos/cos/check"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// runCheckBinary runs `registry-cos check args...` and returns its output
// and exit code.
func runCheckBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(registryBinary(t), append([]string{"check"}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("running check: %v", err)
	return "", 0
}

// requireOnlyOK fails unless every line is ok, but those named in allowWarn,
// which may warn.
func requireOnlyOK(t *testing.T, out string, allowWarn ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 30 {
		t.Fatalf("check printed %d lines, want one per check:\n%s", len(lines), out)
	}
	for _, line := range lines {
		if strings.HasPrefix(line, "ok ") {
			continue
		}
		allowed := false
		for _, name := range allowWarn {
			allowed = allowed || strings.HasPrefix(line, "warn "+name+":")
		}
		if !allowed {
			t.Errorf("check line is not ok: %s", line)
		}
	}
}

// TestCheckAgainstDev: `registry-cos check` on the configuration dev
// writes passes every check but the lifecycle rule, which dev's emulator
// does not have.
func TestCheckAgainstDev(t *testing.T) {
	dataDir := t.TempDir()
	dev := startDevProcess(t, dataDir)
	defer dev.stop(t)
	out, code := runCheckBinary(t, filepath.Join(dataDir, "check-config.yml"))
	if code != 0 {
		t.Fatalf("check exited %d:\n%s", code, out)
	}
	requireOnlyOK(t, out, "lifecycle")
}

// TestCheckAgainstCosEmulator runs the check against the standalone
// emulator, as text and as JSON, and against a bucket that does not exist
// (one FAIL line, exit 1).
func TestCheckAgainstCosEmulator(t *testing.T) {
	bin := buildCosEmulator(t)
	addr := testenv.FreeAddr(t)
	startCosEmulator(t, bin, addr, "-lifecycle-abort-days", "3")
	config := func(bucket string) string { return cosEmulatorConfig(t, addr, bucket) }
	out, code := runCheckBinary(t, config(costest.DefaultBucket))
	if code != 0 {
		t.Fatalf("check exited %d:\n%s", code, out)
	}
	requireOnlyOK(t, out)
	if strings.Contains(out, costest.DefaultSecretKey) {
		t.Fatalf("check printed the secret key:\n%s", out)
	}

	out, code = runCheckBinary(t, "--json", config(costest.DefaultBucket))
	var report check.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil || code != 0 || len(report.Results) < 30 {
		t.Fatalf("check --json: exit %d, %v:\n%s", code, err, out)
	}

	out, code = runCheckBinary(t, config("missing-1250000000"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "FAIL bucket reachable") || !strings.Contains(lines[0], "does not exist") {
		t.Fatalf("check of a missing bucket: exit %d, want 1 and one FAIL line:\n%s", code, out)
	}
}

// TestCheckBadConfiguration: no configuration is one FAIL line.
func TestCheckBadConfiguration(t *testing.T) {
	out, code := runCheckBinary(t, filepath.Join(t.TempDir(), "missing.yml"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "FAIL configuration") {
		t.Fatalf("check without a configuration: exit %d, want 1 and one FAIL line:\n%s", code, out)
	}
}

// TestCheckInterruptedCleansUp: Ctrl-C in the middle of `registry-cos
// check` (while it writes the paging keys) still removes everything it
// wrote, and the report says it was interrupted (exit 1). The secret key
// comes from REGISTRY_STORAGE_COS_SECRETKEY alone, as serve reads it.
func TestCheckInterruptedCleansUp(t *testing.T) {
	srv, err := costest.NewServer(costest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	config := testenv.WriteFile(t, "config.yml", `version: 0.1
storage:
  cos:
    secretid: `+srv.SecretID+`
    bucket: `+srv.Bucket+`
    region: `+srv.Region+`
    endpoint: `+srv.URL+`
    rootdirectory: /registry
`)
	cmd := exec.Command(registryBinary(t), "check", config)
	cmd.Env = append(os.Environ(), "REGISTRY_STORAGE_COS_SECRETKEY="+srv.SecretKey)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for srv.Stats().Count("PutObject") <= 100 {
		select {
		case err := <-exited:
			t.Fatalf("check ended (%v) before it wrote 100 paging keys:\n%s", err, out)
		case <-time.After(time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("interrupted check: %v, want exit 1:\n%s", err, out)
	}
	report := out.String()
	if !strings.Contains(report, "\nFAIL interrupted: ") || !strings.Contains(report, "\nok   cleanup: ") {
		t.Fatalf("interrupted check did not report cleanup and the interruption:\n%s", report)
	}
	if strings.Contains(report, srv.SecretKey) {
		t.Fatalf("check printed the secret key:\n%s", report)
	}
	ctx := context.Background()
	u, _ := url.Parse(srv.URL)
	c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: u}, &http.Client{
		Transport: &cossdk.AuthorizationTransport{SecretID: srv.SecretID, SecretKey: srv.SecretKey},
	})
	left, _, err := c.Bucket.Get(ctx, nil)
	if err != nil || len(left.Contents) != 0 {
		t.Fatalf("after the interrupted check: %v, %d keys left", err, len(left.Contents))
	}
	uploads, _, err := c.Object.ListUploads(ctx, nil)
	if err != nil || len(uploads.Upload) != 0 {
		t.Fatalf("after the interrupted check: %v, %d uploads left", err, len(uploads.Upload))
	}
}

var (
	cosEmulatorOnce sync.Once
	cosEmulatorPath string
	cosEmulatorErr  error
)

// buildCosEmulator builds the cos-emulator binary once per test run, next
// to the registry-cos binary (removed with it).
func buildCosEmulator(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(registryBinary(t))
	cosEmulatorOnce.Do(func() {
		cosEmulatorPath = filepath.Join(dir, "cos-emulator")
		cosEmulatorErr = testenv.GoBuild(cosEmulatorPath, "../cos-emulator")
	})
	if cosEmulatorErr != nil {
		t.Fatalf("building cos-emulator: %v", cosEmulatorErr)
	}
	return cosEmulatorPath
}

// startCosEmulator runs bin on addr with flags until the test ends.
func startCosEmulator(t *testing.T, bin, addr string, flags ...string) {
	t.Helper()
	testenv.StartProcess(t, exec.Command(bin, append([]string{"-addr", addr}, flags...)...))
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cos-emulator did not start listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cosEmulatorConfig is a registry configuration for the cos-emulator at addr.
func cosEmulatorConfig(t *testing.T, addr, bucket string) string {
	return testenv.WriteFile(t, "config.yml", `version: 0.1
storage:
  cos:
    secretid: `+costest.DefaultSecretID+`
    secretkey: `+costest.DefaultSecretKey+`
    bucket: `+bucket+`
    region: `+costest.DefaultRegion+`
    endpoint: http://`+addr+`
    rootdirectory: /registry
`)
}

// TestCheckAgainstMisbehavingCosEmulator: cos-emulator's misbehavior flags
// make the matching checks FAIL (exit 1): -omit-crc64 the CRC64 checks,
// -unordered-listing the listing order, -deny CopyObject the copy and its
// permission (naming the CAM action), a lifecycle rule on another prefix
// a lifecycle warning.
func TestCheckAgainstMisbehavingCosEmulator(t *testing.T) {
	bin := buildCosEmulator(t)
	addr := testenv.FreeAddr(t)
	startCosEmulator(t, bin, addr, "-omit-crc64", "-unordered-listing", "-deny", "CopyObject",
		"-lifecycle-abort-days", "3", "-lifecycle-prefix", "logs/")
	out, code := runCheckBinary(t, cosEmulatorConfig(t, addr, costest.DefaultBucket))
	if code != 1 {
		t.Fatalf("check of a misbehaving emulator exited %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"\nFAIL PUT CRC64: expected x-cos-hash-crc64ecma ",
		"\nFAIL Complete CRC64: ",
		"\nFAIL listing order: expected byte order a-b a.b a/c a0; COS answered a0 a/c a.b a-b",
		"\nFAIL copy with metadata: expected PUT Object - Copy 200; COS answered 403 AccessDenied",
		"\nFAIL permission PutObjectCopy: expected allowed; COS answered 403 AccessDenied; allow name/cos:PutObjectCopy in the CAM policy",
		"\nwarn lifecycle: expected a rule that aborts incomplete multipart uploads; COS answered 1 rules, none aborting uploads under the root",
		"\nok   cleanup: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
