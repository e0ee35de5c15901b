package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// devProcess is a running `registry-cos dev`.
type devProcess struct {
	*testenv.Process
	// Addr is the registry address the banner printed.
	Addr string
}

var devRegistryLine = regexp.MustCompile(`(?m)^\s*registry:\s+http://(\S+)\s*$`)

// startDevProcess runs `registry-cos dev` on a free port with the given data
// directory and waits for its banner.
func startDevProcess(t *testing.T, dataDir string, extraArgs ...string) *devProcess {
	t.Helper()
	args := append([]string{"dev", "--addr", "127.0.0.1:0", "--data", dataDir}, extraArgs...)
	p := &devProcess{Process: testenv.StartProcess(t, exec.Command(registryBinary(t), args...))}
	// The banner ends with this line; by then its address line is printed.
	banner := p.WaitForOutput(t, "Stop with Ctrl-C", 30*time.Second)
	m := devRegistryLine.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("the registry-cos dev banner has no registry address:\n%s", banner)
	}
	p.Addr = m[1]
	return p
}

// stop sends SIGINT, as Ctrl-C does, and checks that the process exits
// cleanly.
func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatalf("registry-cos dev after Ctrl-C: %v:\n%s", err, p.Output.String())
	}
	if out := p.Output.String(); strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("registry-cos dev output has a panic:\n%s", out)
	}
}

// TestDevCommandKeepsDataAcrossRestart runs `registry-cos dev`, pushes and
// pulls through it with a real client, stops it with Ctrl-C, starts it again
// on the same data directory and pulls the image again, through the
// emulator's presigned URLs.
func TestDevCommandKeepsDataAcrossRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	img := registrytest.NewImage(t, 40, 1500, 2*mib+1)
	digestRef := "dev/app@" + mustDigest(t, img).String()

	first := startDevProcess(t, dataDir)
	if !strings.Contains(first.Output.String(), "crane copy") {
		t.Fatalf("the dev banner has no push example:\n%s", first.Output.String())
	}
	reg := &registrytest.Registry{URL: "http://" + first.Addr, Host: first.Addr}
	push(t, reg.Ref(t, "dev/app:v1"), img)
	pullAndVerifyImage(t, reg.Ref(t, "dev/app:v1"), img)
	layers, _ := img.Layers()
	layerDigest := mustDigest(t, layers[1])
	if location := fetchBlob(t, reg, "dev/app", digest.Digest(layerDigest.String()), 2*mib+1); location == "" {
		t.Fatalf("dev served a blob itself; want a redirect to the emulator")
	}
	first.stop(t)

	if _, err := os.Stat(filepath.Join(dataDir, "cos")); err != nil {
		t.Fatalf("dev kept no data under --data: %v", err)
	}

	second := startDevProcess(t, dataDir)
	reg = &registrytest.Registry{URL: "http://" + second.Addr, Host: second.Addr}
	pullAndVerifyImage(t, reg.Ref(t, "dev/app:v1"), img)
	pullAndVerifyImage(t, reg.Ref(t, digestRef), img)
	second.stop(t)
}

// TestDevCommandMergesConfig checks that a --config file is merged over the
// dev defaults while storage stays on the embedded emulator.
func TestDevCommandMergesConfig(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	configPath := testenv.WriteFile(t, "dev.yml", `version: 0.1
log:
  level: debug
http:
  addr: 127.0.0.1:5999
  headers:
    X-Test: [merged]
storage:
  filesystem:
    rootdirectory: /should/be/ignored
  redirect:
    disable: true
  tag:
    concurrencylimit: 3
`)
	config, err := devConfiguration(devOptions{Addr: "127.0.0.1:0", ConfigFile: configPath}, emulator, emulator.URL, "secret", true)
	if err != nil {
		t.Fatalf("devConfiguration: %v", err)
	}
	if got := config.Storage.Type(); got != "cos" {
		t.Fatalf("storage driver %q, want cos", got)
	}
	params := config.Storage.Parameters()
	if params["endpoint"] != emulator.URL || params["bucket"] != emulator.Bucket {
		t.Fatalf("cos parameters %v do not point at the emulator %s", params, emulator.URL)
	}
	if config.Storage["redirect"]["disable"] != true {
		t.Fatalf("redirect.disable from --config was not kept: %v", config.Storage["redirect"])
	}
	if config.Storage["delete"]["enabled"] != true {
		t.Fatalf("the dev default delete.enabled was lost: %v", config.Storage["delete"])
	}
	if config.Storage["tag"]["concurrencylimit"] != 3 {
		t.Fatalf("tag.concurrencylimit from --config was not kept: %v", config.Storage["tag"])
	}
	if config.Log.Level != "debug" || config.HTTP.Addr != "127.0.0.1:5999" || config.HTTP.Secret != "secret" {
		t.Fatalf("merged configuration: log.level %q, http.addr %q, http.secret %q", config.Log.Level, config.HTTP.Addr, config.HTTP.Secret)
	}
	if got := config.HTTP.Headers.Get("X-Test"); got != "merged" {
		t.Fatalf("http.headers from --config were not kept: %v", config.HTTP.Headers)
	}

	// --addr given on the command line wins over the file.
	config, err = devConfiguration(devOptions{Addr: "127.0.0.1:0", AddrSet: true, ConfigFile: configPath}, emulator, emulator.URL, "secret", true)
	if err != nil {
		t.Fatal(err)
	}
	if config.HTTP.Addr != "127.0.0.1:0" {
		t.Fatalf("http.addr %q, want the --addr value", config.HTTP.Addr)
	}

	// A wildcard listen address turns redirects off: clients could not
	// reach the emulator at a URL the registry could sign.
	config, err = devConfiguration(devOptions{Addr: "0.0.0.0:0"}, emulator, emulator.URL, "secret", false)
	if err != nil {
		t.Fatal(err)
	}
	if config.Storage["redirect"]["disable"] != true {
		t.Fatalf("redirects stay on with a wildcard listen address: %v", config.Storage["redirect"])
	}
}

// TestDevCommandReportsBusyAddress checks that dev fails on one line when its
// address is taken.
func TestDevCommandReportsBusyAddress(t *testing.T) {
	busy := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()}) // anything listening will do
	addr := strings.TrimPrefix(busy.URL, "http://")
	out, err := runBinary(t, "dev", "--addr", addr, "--data", t.TempDir())
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("dev on a busy address exited with %v, want an error:\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "registry-cos: ") || !strings.Contains(last, "address already in use") {
		t.Fatalf("dev on a busy address printed:\n%s", out)
	}
	if strings.Contains(out, "goroutine ") {
		t.Fatalf("dev on a busy address printed a stack trace:\n%s", out)
	}
}
