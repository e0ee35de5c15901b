package imagebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if err := WriteLayout(dir, first, opts.Version); err != nil {
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
		{"missing CA bundle", func(o *Options) { o.CABundle = "/nonexistent/ca.pem" }, "ca-certificates"},
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
