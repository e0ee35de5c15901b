package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-cos/cos/internal/imagebuild"
)

// imagePlatforms are the platforms `make image` builds.
var imagePlatforms = []string{"linux/amd64", "linux/arm64"}

// TestImageBuildPushPull builds the container image as `make image` does
// (static binaries for both platforms, tools/imagebuild's Build and layout),
// pushes it into a `registry-cos dev` registry started in this process,
// pulls it back with crane and checks the index, both platforms' images and
// their configuration, then extracts this platform's binary and runs it.
func TestImageBuildPushPull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds registry-cos for two platforms")
	}
	binDir := t.TempDir()
	binaries := map[string]string{}
	for _, platform := range imagePlatforms {
		goos, goarch, _ := strings.Cut(platform, "/")
		path := filepath.Join(binDir, goos+"-"+goarch, "registry-cos")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
			"-s -w -X github.com/distribution/distribution/v3/version.version="+testVersion, "-o", path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build for %s: %v\n%s", platform, err, out)
		}
		binaries[platform] = path
	}
	built, err := imagebuild.Build(imagebuild.Options{
		Binaries: binaries, Config: "config-env.yml", Version: testVersion, Revision: "0123abcd",
	})
	if err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(t.TempDir(), "image")
	if err := imagebuild.WriteLayout(layoutDir, built, "", testVersion); err != nil {
		t.Fatal(err)
	}
	local, err := imagebuild.ReadLayout(layoutDir)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dev, err := startDev(ctx, devOptions{Addr: "127.0.0.1:0", AddrSet: true, DataDir: t.TempDir(), Log: io.Discard})
	if err != nil {
		t.Fatalf("starting registry-cos dev: %v", err)
	}
	t.Cleanup(func() { _ = dev.Close(context.Background()) })
	ref := dev.Addr + "/registry-cos:" + testVersion
	if err := imagebuild.Push(ref, local); err != nil {
		t.Fatal(err)
	}

	// The index: an OCI index of the two platforms, the digest pushed.
	raw, err := crane.Manifest(ref)
	if err != nil {
		t.Fatalf("crane manifest %s: %v", ref, err)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	if index.MediaType != types.OCIImageIndex || len(index.Manifests) != len(imagePlatforms) {
		t.Fatalf("pulled index: media type %s with %d manifests, want %s with %d", index.MediaType, len(index.Manifests), types.OCIImageIndex, len(imagePlatforms))
	}
	if got, want := (v1.Hash{Algorithm: "sha256", Hex: sha256Hex(raw)}), mustDigest(t, local); got != want {
		t.Fatalf("pulled index digest %s, want the layout's %s", got, want)
	}
	digest, _ := crane.Digest(ref)
	t.Logf("image %s: index %s", ref, digest)

	var baseLayers []v1.Hash
	for i, platform := range imagePlatforms {
		if got := index.Manifests[i].Platform; got == nil || got.OS+"/"+got.Architecture != platform {
			t.Fatalf("index entry %d has platform %v, want %s", i, got, platform)
		}
		p, _ := v1.ParsePlatform(platform)
		img, err := crane.Pull(ref, crane.WithPlatform(p))
		if err != nil {
			t.Fatalf("crane pull %s for %s: %v", ref, platform, err)
		}
		checkImageConfig(t, img, *p)
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s: %d layers (%v), want the base and the binary", platform, len(layers), err)
		}
		base, _ := layers[0].Digest()
		baseLayers = append(baseLayers, base)
		size := int64(0)
		for _, l := range layers {
			n, _ := l.Size()
			size += n
		}
		t.Logf("%s: %d bytes compressed", platform, size)

		files := imageFiles(t, img)
		if !strings.Contains(files["etc/passwd"], fmt.Sprintf("registry:x:%d:%d:", imagebuild.UID, imagebuild.GID)) {
			t.Errorf("%s: /etc/passwd has no registry user: %q", platform, files["etc/passwd"])
		}
		if !strings.Contains(files[strings.TrimPrefix(imagebuild.CAPath, "/")], "BEGIN CERTIFICATE") {
			t.Errorf("%s: no CA bundle at %s", platform, imagebuild.CAPath)
		}
		if want, _ := os.ReadFile("config-env.yml"); files[strings.TrimPrefix(imagebuild.ConfigPath, "/")] != string(want) {
			t.Errorf("%s: %s is not cmd/registry/config-env.yml", platform, imagebuild.ConfigPath)
		}
		binary := files[strings.TrimPrefix(imagebuild.BinaryPath, "/")]
		if binary == "" {
			t.Fatalf("%s: no %s in the image", platform, imagebuild.BinaryPath)
		}
		if platform == runtime.GOOS+"/"+runtime.GOARCH {
			path := filepath.Join(t.TempDir(), "registry-cos")
			if err := os.WriteFile(path, []byte(binary), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(path, "--version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "registry-cos "+testVersion) {
				t.Fatalf("the image's binary, run with --version: %v: %s", err, out)
			}
			// The same binary is Harbor's registry controller.
			out, err = exec.Command(path, "registryctl", "--help").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "registryctl -c FILE") {
				t.Fatalf("the image's binary has no registryctl command: %v: %s", err, out)
			}
		}
	}
	if baseLayers[0] != baseLayers[1] {
		t.Errorf("the base layer differs between platforms (%s, %s); it holds no platform-specific file", baseLayers[0], baseLayers[1])
	}
}

// checkImageConfig checks what the Dockerfile also says: user, port,
// entrypoint, command, platform and version labels.
func checkImageConfig(t *testing.T, img v1.Image, platform v1.Platform) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if cfg.OS != platform.OS || cfg.Architecture != platform.Architecture {
		t.Errorf("%s: config says %s/%s", platform, cfg.OS, cfg.Architecture)
	}
	if c.User != fmt.Sprintf("%d:%d", imagebuild.UID, imagebuild.GID) || strings.HasPrefix(c.User, "0") {
		t.Errorf("%s: user %q, want the unprivileged %d:%d", platform, c.User, imagebuild.UID, imagebuild.GID)
	}
	if _, ok := c.ExposedPorts["5000/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("%s: exposed ports %v, want 5000/tcp", platform, c.ExposedPorts)
	}
	if strings.Join(c.Entrypoint, " ") != imagebuild.BinaryPath || strings.Join(c.Cmd, " ") != "serve "+imagebuild.ConfigPath {
		t.Errorf("%s: entrypoint %q cmd %q", platform, c.Entrypoint, c.Cmd)
	}
	if c.Labels["org.opencontainers.image.version"] != testVersion || c.Labels["org.opencontainers.image.revision"] != "0123abcd" {
		t.Errorf("%s: labels %v lack the version and revision", platform, c.Labels)
	}
}

// imageFiles reads the regular files of an image's flattened filesystem,
// checking that each is owned by root and that the binary is executable.
func imageFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading the image filesystem: %v", err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want root: the registry user must not be able to change it", h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Name == strings.TrimPrefix(imagebuild.BinaryPath, "/") && h.Mode&0o111 != 0o111 {
			t.Errorf("%s has mode %o, want executable by all", h.Name, h.Mode)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(data)
	}
}

// TestDockerfileSaysWhatImageBuildDoes keeps the Dockerfile, for those with
// Docker, in step with the image `make image` builds.
func TestDockerfileSaysWhatImageBuildDoes(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(data)
	for _, want := range []string{
		fmt.Sprintf("USER %d:%d", imagebuild.UID, imagebuild.GID),
		"EXPOSE " + strings.TrimSuffix(imagebuild.Port, "/tcp"),
		fmt.Sprintf("ENTRYPOINT [%q]", imagebuild.BinaryPath),
		fmt.Sprintf("CMD [\"serve\", %q]", imagebuild.ConfigPath),
		"COPY cmd/registry/config-env.yml " + imagebuild.ConfigPath,
		"/usr/local/bin/registry-cos",
		imagebuild.CAPath,
		"OTEL_TRACES_EXPORTER=none",
		"org.opencontainers.image.version=${VERSION}",
		"org.opencontainers.image.revision=${REVISION}",
		fmt.Sprintf("registry:x:%d:%d:", imagebuild.UID, imagebuild.GID),
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("the Dockerfile does not say %q, which the image built by make image does", want)
		}
	}
}
