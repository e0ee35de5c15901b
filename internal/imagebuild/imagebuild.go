// Package imagebuild builds the registry-cos container image without a
// container engine: an OCI image index with one image per platform, each
// made of a base layer (CA bundle, passwd/group entries of a non-root user,
// the default configuration, /tmp) shared by all platforms, and a layer
// with that platform's static binary. There is no base image: the files
// come from the build, and the CA bundle from a Go module pinned in go.mod
// (see CABundle).
//
// The result is reproducible: file times and the image creation time are
// Options.Created, so the same inputs give the same digest.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Paths and identity inside the image; the Dockerfile says the same.
const (
	BinaryPath = "/usr/local/bin/registry-cos"
	ConfigPath = "/etc/registry/config.yml"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID of the unprivileged user the registry runs as.
	UID, GID = 10001, 10001
	// Port is the registry's listen port (http.addr in the configuration).
	Port = "5000/tcp"
)

// DefaultName is the repository the image is named after in its layout
// (what `podman load` and `ctr import` call it): the chart's default
// image.repository.
const DefaultName = "ccr.ccs.tencentyun.com/registry-cos/registry-cos"

// Env is the image's environment. Tracing is off: Distribution otherwise
// exports traces to https://localhost:4318 and logs every failed export at
// error level (the chart's tracing values turn it on). No REGISTRY_*
// variable: each is a configuration override, and one the configuration
// does not have is reported on a plain-text line before the log starts
// (the command line names the configuration file).
var Env = []string{
	"PATH=/usr/local/bin",
	"OTEL_TRACES_EXPORTER=none",
}

// Options describe the image to build.
type Options struct {
	// Binaries maps a platform ("linux/amd64") to the path of its static
	// registry-cos binary. At least one is needed.
	Binaries map[string]string
	// Config is the file installed as ConfigPath.
	Config string
	// CABundle is a PEM file installed as CAPath instead of the pinned
	// bundle (PinnedCABundle); empty means the pinned one.
	CABundle string
	// Version and Revision go into the OCI labels and annotations.
	Version, Revision string
	// Source is the project's URL for org.opencontainers.image.source.
	Source string
	// Created stamps the image and every file; zero means the Unix epoch.
	Created time.Time
}

// Build assembles the image index.
func Build(opts Options) (v1.ImageIndex, error) {
	if len(opts.Binaries) == 0 {
		return nil, fmt.Errorf("imagebuild: no binary given: want at least one platform=path")
	}
	if opts.Config == "" {
		return nil, fmt.Errorf("imagebuild: no configuration file given")
	}
	if opts.Created.IsZero() {
		opts.Created = time.Unix(0, 0)
	}
	opts.Created = opts.Created.UTC()

	ca := PinnedCABundle()
	if opts.CABundle != "" {
		var err error
		ca, err = os.ReadFile(opts.CABundle)
		if err != nil {
			return nil, fmt.Errorf("imagebuild: reading the CA bundle: %w", err)
		}
		if !bytes.Contains(ca, []byte("BEGIN CERTIFICATE")) {
			return nil, fmt.Errorf("imagebuild: %s holds no PEM certificate", opts.CABundle)
		}
	}
	config, err := os.ReadFile(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: reading the configuration: %w", err)
	}
	base, err := layer(opts.Created, []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf(
			"root:x:0:0:root:/root:/sbin/nologin\nregistry:x:%d:%d:registry-cos:/nonexistent:/sbin/nologin\n", UID, GID))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nregistry:x:%d:\n", GID))},
		{name: "etc/registry/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(ConfigPath, "/"), mode: 0o644, data: config},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(CAPath, "/"), mode: 0o644, data: ca},
		// Go's os.TempDir and the registry's temporary files.
		{name: "tmp/", mode: 0o1777, dir: true},
	})
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       "registry-cos",
		"org.opencontainers.image.description": "CNCF Distribution registry with the Tencent Cloud COS storage driver",
		"org.opencontainers.image.version":     opts.Version,
		"org.opencontainers.image.revision":    opts.Revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     opts.Created.Format(time.RFC3339),
	}
	if opts.Source != "" {
		labels["org.opencontainers.image.source"] = opts.Source
	}

	platforms := make([]string, 0, len(opts.Binaries))
	for p := range opts.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		platform, err := v1.ParsePlatform(p)
		if err != nil || platform.OS == "" || platform.Architecture == "" {
			return nil, fmt.Errorf("imagebuild: platform %q: want os/arch such as linux/amd64", p)
		}
		img, err := platformImage(opts, base, *platform, opts.Binaries[p], labels)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	return mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.version":  opts.Version,
		"org.opencontainers.image.revision": opts.Revision,
		"org.opencontainers.image.created":  opts.Created.Format(time.RFC3339),
	}).(v1.ImageIndex), nil
}

func platformImage(opts Options, base v1.Layer, platform v1.Platform, binaryPath string, labels map[string]string) (v1.Image, error) {
	binary, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: binary for %s: %w", platform, err)
	}
	bin, err := layer(opts.Created, []file{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: binary},
	})
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, bin)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = platform.OS, platform.Architecture, platform.Variant
	cfg.Created = v1.Time{Time: opts.Created}
	cfg.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, GID),
		ExposedPorts: map[string]struct{}{Port: {}},
		Env:          Env,
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", ConfigPath},
		WorkingDir:   "/",
		Labels:       labels,
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %w", err)
	}
	return img, nil
}

// file is one entry of a layer.
type file struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// layer makes a gzipped OCI layer of files, owned by root.
func layer(mtime time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: mtime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("imagebuild: %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("imagebuild: %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// PinnedCABundle is the image's CA bundle: the roots of Mozilla's NSS
// trust store as golang.org/x/crypto/x509roots/fallback/bundle carries
// them, at the version go.mod pins (and go.sum hashes), in PEM. The same
// commit builds the same bundle on any machine; `go get` of a newer module
// version updates it. Roots NSS trusts only for certificates issued before
// a date are left out: a PEM bundle cannot say so.
func PinnedCABundle() []byte {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return buf.Bytes()
}

// WriteLayout writes idx as an OCI image layout in dir (replacing what is
// there), named name:version: the version is its ref.name annotation (what
// `skopeo copy oci:DIR:VERSION` selects), name:version its
// io.containerd.image.name (what `podman load` and `ctr import` call it).
// An empty name is DefaultName.
func WriteLayout(dir string, idx v1.ImageIndex, name, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("imagebuild: %w", err)
	}
	var opts []layout.Option
	if version != "" {
		if name == "" {
			name = DefaultName
		}
		opts = append(opts, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": version,
			"io.containerd.image.name":          name + ":" + version,
		}))
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		return fmt.Errorf("imagebuild: writing %s: %w", dir, err)
	}
	return nil
}

// ReadLayout returns the image index a WriteLayout call wrote to dir.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: reading the layout %s: %w", dir, err)
	}
	manifest, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("imagebuild: %s: %w", dir, err)
	}
	if len(manifest.Manifests) != 1 || !manifest.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("imagebuild: %s holds %d entries; want one image index (make image writes it)", dir, len(manifest.Manifests))
	}
	return top.ImageIndex(manifest.Manifests[0].Digest)
}

// Push uploads idx to ref (registry/repository:tag), with the credentials
// docker or crane login stored. Registries on localhost may be plain http.
func Push(ref string, idx v1.ImageIndex, opts ...remote.Option) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("imagebuild: image reference %q: %w", ref, err)
	}
	opts = append([]remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		return fmt.Errorf("imagebuild: pushing %s: %w", r, err)
	}
	return nil
}
