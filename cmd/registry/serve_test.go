package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// runBinary runs the built registry-cos with args and extra environment
// variables ("NAME=value"), and returns its combined output.
func runBinary(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runBinaryEnv(t, nil, args...)
}

func runBinaryEnv(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	// Built first: the first caller builds the binary, which takes
	// minutes on a busy machine. No time limit of its own: go test's
	// -timeout ends a hung command, and the test's end kills it.
	binary := registryBinary(t)
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestVersionFlag checks that --version prints the version stamped with
// -X github.com/distribution/distribution/v3/version.version.
func TestVersionFlag(t *testing.T) {
	out, err := runBinary(t, "--version")
	if err != nil {
		t.Fatalf("registry-cos --version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "registry-cos "+testVersion+" ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("registry-cos --version printed %q, want one line starting with %q", out, "registry-cos "+testVersion)
	}
}

// TestServeReportsStartupErrorOnOneLine starts `registry-cos serve` with
// storage that cannot work and checks that it exits non-zero after printing
// one line that says why, with no panic or stack trace and no secret.
func TestServeReportsStartupErrorOnOneLine(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	good := registryConfigYAML(emulator, registryOptions{})

	cases := []struct {
		name     string
		config   string
		env      []string
		contains string
	}{
		{
			name:     "missing bucket",
			config:   strings.Replace(good, "bucket: \""+emulator.Bucket+"\"", "bucket: \"nosuch-1250000000\"", 1),
			contains: "nosuch-1250000000",
		},
		{
			name:   "wrong secret key",
			config: strings.Replace(good, "secretkey: \""+emulator.SecretKey+"\"", "secretkey: \"wrong-secret-key-value\"", 1),
		},
		{
			name:     "wrong region",
			config:   strings.Replace(good, "region: \""+emulator.Region+"\"", "region: \"ap-beijing\"", 1),
			contains: "ap-beijing",
		},
		{
			name:     "unknown secret id",
			config:   strings.Replace(good, "secretid: \""+emulator.SecretID+"\"", "secretid: \"AKIDunknown\"", 1),
			contains: "secretid",
		},
		{
			name:     "unreachable endpoint",
			config:   strings.Replace(good, "endpoint: \""+emulator.URL+"\"", "endpoint: \"http://"+testenv.FreeAddr(t)+"\"", 1),
			contains: "cannot reach",
		},
		{
			name:     "bad parameter",
			config:   strings.Replace(good, fmt.Sprintf("chunksize: %d", testChunkSize), "chunksize: 1024", 1),
			contains: "chunksize",
		},
		{
			name:     "two storage drivers from the environment",
			config:   good,
			env:      []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/tmp/x"},
			contains: "storage",
		},
		{
			name:     "no configuration file",
			config:   "",
			contains: "configuration",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			configPath := "/nonexistent/registry-cos/config.yml"
			if tc.config != "" {
				configPath = testenv.WriteFile(t, "config.yml", strings.Replace(tc.config, "level: warn", "level: info", 1))
			}
			out, err := runBinaryEnv(t, tc.env, "serve", configPath)
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
				t.Fatalf("serve exited with %v, want a non-zero exit code; output:\n%s", err, out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "registry-cos: ") {
				t.Fatalf("serve printed %d lines, want one line starting with %q:\n%s", len(lines), "registry-cos: ", out)
			}
			for _, bad := range []string{"panic", "goroutine", ".go:", "wrong-secret-key-value", emulator.SecretKey} {
				if strings.Contains(out, bad) {
					t.Fatalf("serve output contains %q:\n%s", bad, out)
				}
			}
			if !strings.Contains(out, tc.contains) {
				t.Fatalf("serve output does not mention %q:\n%s", tc.contains, out)
			}
			t.Logf("serve said: %s", lines[0])
		})
	}
}

// TestServeWithEnvironmentOnlyConfig runs `registry-cos serve` on the
// Docker image's default configuration, config-env.yml, with every storage
// parameter given as a REGISTRY_STORAGE_COS_* variable, and pushes and pulls
// an image through it.
func TestServeWithEnvironmentOnlyConfig(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	env := []string{
		"REGISTRY_STORAGE_COS_ROOTDIRECTORY=/from-env",
		"REGISTRY_STORAGE_COS_CHUNKSIZE=5242880",
		"REGISTRY_LOG_LEVEL=warn",
	}
	for name, value := range testenv.DriverParameters(emulator) {
		env = append(env, fmt.Sprintf("REGISTRY_STORAGE_COS_%s=%v", strings.ToUpper(name), value))
	}
	proc := startServeProcess(t, "config-env.yml", env...)

	reg := proc.Registry()
	img := registrytest.NewImage(t, 30, 1234, 2*mib)
	push(t, reg.Ref(t, "env/app:v1"), img)
	pullAndVerifyImage(t, reg.Ref(t, "env/app:v1"), img)
}
