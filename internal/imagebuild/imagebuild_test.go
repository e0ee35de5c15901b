package imagebuild

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fakeInputs writes a small stand-in binary, a configuration and a CA
// bundle: Build copies files and never runs them.
func fakeInputs(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return Options{
		Binaries: map[string]string{"linux/amd64": write("amd64", "amd64 binary"), "linux/arm64": write("arm64", "arm64 binary")},
		Config:   write("config.yml", "version: 0.1\n"),
		CABundle: write("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		Version:  "v1.2.3", Revision: "abc",
		Created: time.Unix(1700000000, 0),
	}
}

func TestBuildIsReproducible(t *testing.T) {
	opts := fakeInputs(t)
	first, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := first.Digest()
	b, _ := second.Digest()
	if a != b {
		t.Fatalf("the same inputs built two digests, %s and %s", a, b)
	}
	opts.Version = "v1.2.4"
	third, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := third.Digest(); c == a {
		t.Fatal("another version built the same digest: the labels are not in the image")
	}
	dir := filepath.Join(t.TempDir(), "image")
	if err := WriteLayout(dir, first, "", opts.Version); err != nil {
		t.Fatal(err)
	}
	back, err := ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := back.Digest(); d != a {
		t.Fatalf("the layout holds %s, want %s", d, a)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no binary", func(o *Options) { o.Binaries = nil }, "no binary given"},
		{"no configuration", func(o *Options) { o.Config = "" }, "no configuration file"},
		{"bad platform", func(o *Options) { o.Binaries = map[string]string{"amd64": o.Binaries["linux/amd64"]} }, `platform "amd64"`},
		{"missing binary", func(o *Options) { o.Binaries = map[string]string{"linux/amd64": "/nonexistent/registry-cos"} }, "binary for linux/amd64"},
		{"missing CA bundle", func(o *Options) { o.CABundle = "/nonexistent/ca.pem" }, "reading the CA bundle"},
		{"CA bundle without certificates", func(o *Options) { o.CABundle = o.Config }, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := fakeInputs(t)
			tc.change(&opts)
			_, err := Build(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestReadLayoutRejectsOtherLayouts(t *testing.T) {
	if _, err := ReadLayout(t.TempDir()); err == nil {
		t.Fatal("an empty directory read as a layout")
	}
}

// TestImageEnvironment: the image turns trace export off (Distribution
// otherwise sends to https://localhost:4318 and logs each failure at error
// level) and sets no REGISTRY_* variable (each is a configuration override;
// REGISTRY_CONFIGURATION_PATH is not one, and the registry says so on a
// plain-text line before its log starts).
func TestImageEnvironment(t *testing.T) {
	idx, err := Build(fakeInputs(t))
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range manifest.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Join(cfg.Config.Env, " ")
		if !slices.Contains(cfg.Config.Env, "OTEL_TRACES_EXPORTER=none") {
			t.Errorf("%s: environment %q does not turn trace export off", desc.Platform, env)
		}
		for _, e := range cfg.Config.Env {
			if strings.HasPrefix(e, "REGISTRY_") {
				t.Errorf("%s: the image sets %s, which the registry reads as a configuration override", desc.Platform, e)
			}
		}
	}
}

// TestLayoutNamesTheImage: the layout's entry names the image with a full
// reference (io.containerd.image.name, which podman load and ctr import
// use) and the version alone as ref.name (skopeo's oci:DIR:VERSION); a
// version alone as the name made podman call it localhost/v1.2.3:latest.
func TestLayoutNamesTheImage(t *testing.T) {
	opts := fakeInputs(t)
	idx, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"", DefaultName + ":v1.2.3"},
		{"registry.example.com/ns/registry-cos", "registry.example.com/ns/registry-cos:v1.2.3"},
	} {
		dir := filepath.Join(t.TempDir(), "image")
		if err := WriteLayout(dir, idx, tc.name, opts.Version); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var index v1.IndexManifest
		if err := json.Unmarshal(data, &index); err != nil {
			t.Fatal(err)
		}
		a := index.Manifests[0].Annotations
		if a["io.containerd.image.name"] != tc.want || a["org.opencontainers.image.ref.name"] != opts.Version {
			t.Errorf("name %q: annotations %v, want io.containerd.image.name %s and ref.name %s", tc.name, a, tc.want, opts.Version)
		}
		ref, err := name.ParseReference(a["io.containerd.image.name"], name.StrictValidation)
		if err != nil || ref.Context().RegistryStr() == name.DefaultRegistry {
			t.Errorf("%q is not a full reference with a registry: %v", a["io.containerd.image.name"], err)
		}
	}
}

// TestPinnedCABundle: with no -ca file the image's bundle is the pinned
// module's NSS roots (not a file of the build machine), every one a
// parseable certificate.
func TestPinnedCABundle(t *testing.T) {
	opts := fakeInputs(t)
	opts.CABundle = ""
	idx, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := idx.IndexManifest()
	img, err := idx.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var ca []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if "/"+h.Name == CAPath {
			ca, _ = io.ReadAll(tr)
		}
	}
	if !bytes.Equal(ca, PinnedCABundle()) {
		t.Fatalf("the image's %s (%d bytes) is not the pinned bundle", CAPath, len(ca))
	}
	n := 0
	for rest := ca; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			t.Fatalf("certificate %d: %v", n, err)
		}
		n++
	}
	if n < 100 {
		t.Fatalf("%d certificates in the pinned bundle; NSS has well over 100", n)
	}
	t.Logf("pinned CA bundle: %d certificates, %d bytes", n, len(ca))
}
