package registrytest

import (
	"fmt"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-cos/cos/internal/testenv"
)

// NewImage builds an OCI image (linux/amd64) whose layers have the given
// sizes, of testenv.RandomBytes content. Distinct seeds give distinct
// layers and distinct images, even with no layers.
func NewImage(tb testing.TB, seed uint64, layerSizes ...int) v1.Image {
	tb.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	layers := make([]v1.Layer, 0, len(layerSizes))
	for i, size := range layerSizes {
		layers = append(layers, static.NewLayer(testenv.RandomBytes(size, seed*1000+uint64(i)), types.OCILayer))
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		tb.Fatalf("building an image: %v", err)
	}
	// A distinct config keeps images of different seeds distinct even with
	// no layers.
	cfg, err := img.ConfigFile()
	if err != nil {
		tb.Fatalf("reading the image config: %v", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{"seed": fmt.Sprint(seed)}
	cfg.Architecture, cfg.OS = "amd64", "linux"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		tb.Fatalf("setting the image config: %v", err)
	}
	return img
}

// NewIndex builds an image index of count images (NewImage with seeds
// derived from seed) for different platforms, and returns it with them.
func NewIndex(tb testing.TB, seed uint64, count int, layerSizes ...int) (v1.ImageIndex, []v1.Image) {
	tb.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	archs := []string{"amd64", "arm64", "riscv64", "s390x", "ppc64le"}
	images := make([]v1.Image, 0, count)
	for i := range count {
		img := NewImage(tb, seed*100+uint64(i), layerSizes...)
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: archs[i%len(archs)]},
			},
		})
	}
	return idx, images
}

// ReadImage reads img's config and every layer to the end, as a container
// runtime pulling it does (reading a remote image to the end checks each
// blob's digest).
func ReadImage(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
