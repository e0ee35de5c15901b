package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// devProcess is a running `registry-cos dev`.
type devProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan error
	// Addr is the registry address the banner printed.
	Addr string
}

var devRegistryLine = regexp.MustCompile(`(?m)^\s*registry:\s+http://(\S+)\s*$`)

// startDevProcess runs `registry-cos dev` on a free port with the given data
// directory and waits for its banner.
func startDevProcess(t *testing.T, dataDir string, extraArgs ...string) *devProcess {
	t.Helper()
	args := append([]string{"dev", "--addr", "127.0.0.1:0", "--data", dataDir}, extraArgs...)
	cmd := exec.Command(registryBinary(t), args...)
	out := &syncBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, out: out, exited: make(chan error, 1)}
	addrs := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		addr := ""
		for scanner.Scan() {
			line := scanner.Text()
			_, _ = out.Write([]byte(line + "\n"))
			if m := devRegistryLine.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
			// The banner ends with this line; by then it is all in out.
			if strings.Contains(line, "Stop with Ctrl-C") && addr != "" {
				select {
				case addrs <- addr:
				default:
				}
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	select {
	case p.Addr = <-addrs:
	case err := <-p.exited:
		t.Fatalf("registry-cos dev exited before printing its address (%v):\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("registry-cos dev printed no address within 30s:\n%s", out.String())
	}
	return p
}

// stop sends SIGINT, as Ctrl-C does, and checks that the process exits
// cleanly.
func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupting registry-cos dev: %v", err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("registry-cos dev exited with %v after Ctrl-C:\n%s", err, p.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("registry-cos dev did not stop within 20s of Ctrl-C:\n%s", p.out.String())
	}
	if out := p.out.String(); strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("registry-cos dev output has a panic:\n%s", out)
	}
}

// TestDevCommandKeepsDataAcrossRestart runs `registry-cos dev`, pushes and
// pulls through it with a real client, stops it with Ctrl-C, starts it again
// on the same data directory and pulls the image again, through the
// emulator's presigned URLs.
func TestDevCommandKeepsDataAcrossRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	img := newImage(t, 40, 1500, 2*mib+1)
	digestRef := "dev/app@" + mustDigest(t, img).String()

	first := startDevProcess(t, dataDir)
	if !strings.Contains(first.out.String(), "crane copy") {
		t.Fatalf("the dev banner has no push example:\n%s", first.out.String())
	}
	reg := &testRegistry{URL: "http://" + first.Addr, Host: first.Addr}
	push(t, reg.ref(t, "dev/app:v1"), img)
	pullAndVerifyImage(t, reg.ref(t, "dev/app:v1"), img)
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
	reg = &testRegistry{URL: "http://" + second.Addr, Host: second.Addr}
	pullAndVerifyImage(t, reg.ref(t, "dev/app:v1"), img)
	pullAndVerifyImage(t, reg.ref(t, digestRef), img)
	second.stop(t)
}

// TestDevCommandMergesConfig checks that a --config file is merged over the
// dev defaults while storage stays on the embedded emulator.
func TestDevCommandMergesConfig(t *testing.T) {
	emulator := startEmulator(t)
	configPath := writeFile(t, "dev.yml", `version: 0.1
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
	busy := startEmulator(t) // anything listening will do
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
