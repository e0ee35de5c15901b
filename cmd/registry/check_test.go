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
	"testing"
	"time"

	"github.com/registry-cos/cos/check"
	"github.com/registry-cos/cos/costest"
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
	bin := filepath.Join(t.TempDir(), "cos-emulator")
	if out, err := exec.Command("go", "build", "-o", bin, "../cos-emulator").CombinedOutput(); err != nil {
		t.Fatalf("building cos-emulator: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	emulator := exec.Command(bin, "-addr", addr, "-lifecycle-abort-days", "3")
	if err := emulator.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = emulator.Process.Kill(); _ = emulator.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cos-emulator did not start listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
	config := func(bucket string) string {
		return writeFile(t, "config.yml", `version: 0.1
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
	config := writeFile(t, "config.yml", `version: 0.1
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
	out := &syncBuffer{}
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
