package registrytest_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	_ "github.com/registry-cos/cos" // registers storage: cos:
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

func TestConfigYAMLWritesParameters(t *testing.T) {
	got := registrytest.ConfigYAML(registrytest.Options{
		Parameters: map[string]any{"bucket": "b-1", "chunksize": 5 << 20, "secretkey": registrytest.RawYAML("{nested: x}")},
	})
	for _, want := range []string{"  cos:\n    bucket: \"b-1\"\n    chunksize: 5242880\n    secretkey: {nested: x}\n", "level: warn", "disable: true"} {
		if !strings.Contains(got, want) {
			t.Errorf("configuration lacks %q:\n%s", want, got)
		}
	}
}

// TestPushAndFetchBlob pushes blobs with and without a known digest through
// a registry on the emulator and fetches them with redirects on and off.
func TestPushAndFetchBlob(t *testing.T) {
	logrus.SetLevel(logrus.ErrorLevel)
	ctx := context.Background()
	emulator := testenv.StartEmulator(t, costest.Options{})
	params := testenv.DriverParameters(emulator)
	redirecting := registrytest.Start(t, registrytest.Config(t, registrytest.Options{Parameters: params, Redirect: true}))
	streaming := registrytest.Start(t, registrytest.Config(t, registrytest.Options{Parameters: params}))

	known := testenv.RandomBytes(3000, 1)
	if err := registrytest.PushBlob(ctx, http.DefaultClient, redirecting.URL, "t/a", bytes.NewReader(known), int64(len(known)), digest.FromBytes(known)); err != nil {
		t.Fatal(err)
	}
	hashed := testenv.RandomBytes(5000, 2)
	if err := registrytest.PushBlob(ctx, http.DefaultClient, redirecting.URL, "t/a", bytes.NewReader(hashed), int64(len(hashed)), ""); err != nil {
		t.Fatal(err)
	}
	if err := registrytest.PushBlob(ctx, http.DefaultClient, redirecting.URL, "t/a", bytes.NewReader(hashed), int64(len(hashed)), digest.FromBytes(known)); err == nil {
		t.Fatal("a push under another blob's digest succeeded")
	}

	for _, tc := range []struct {
		reg          *registrytest.Registry
		wantRedirect bool
	}{{redirecting, true}, {streaming, false}} {
		for _, blob := range [][]byte{known, hashed} {
			var got bytes.Buffer
			n, redirected, err := registrytest.FetchBlob(ctx, http.DefaultClient, tc.reg.URL, "t/a", digest.FromBytes(blob), &got)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(blob)) || !bytes.Equal(got.Bytes(), blob) {
				t.Fatalf("fetched %d bytes that differ from the %d pushed", n, len(blob))
			}
			if (redirected != "") != tc.wantRedirect || (tc.wantRedirect && !strings.HasPrefix(redirected, emulator.URL+"/")) {
				t.Fatalf("redirected to %q; want a redirect to the emulator: %v", redirected, tc.wantRedirect)
			}
		}
	}
	if _, _, err := registrytest.FetchBlob(ctx, http.DefaultClient, streaming.URL, "t/a", digest.FromString("absent"), &bytes.Buffer{}); err == nil {
		t.Fatal("fetching a blob never pushed succeeded")
	}
}

// TestChunkedUploadReportsRange checks the Range PatchUpload returns.
func TestChunkedUploadReportsRange(t *testing.T) {
	logrus.SetLevel(logrus.ErrorLevel)
	ctx := context.Background()
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := registrytest.Start(t, registrytest.Config(t, registrytest.Options{Parameters: testenv.DriverParameters(emulator)}))
	blob := testenv.RandomBytes(100, 3)
	loc, err := registrytest.StartUpload(ctx, http.DefaultClient, reg.URL, "t/c")
	if err != nil {
		t.Fatal(err)
	}
	loc, rng, err := registrytest.PatchUpload(ctx, http.DefaultClient, loc, bytes.NewReader(blob[:40]), 40, 0)
	if err != nil || rng != "0-39" {
		t.Fatalf("first PATCH: Range %q, %v; want 0-39", rng, err)
	}
	loc, rng, err = registrytest.PatchUpload(ctx, http.DefaultClient, loc, bytes.NewReader(blob[40:]), 60, 40)
	if err != nil || rng != "0-99" {
		t.Fatalf("second PATCH: Range %q, %v; want 0-99", rng, err)
	}
	if err := registrytest.FinishUpload(ctx, http.DefaultClient, loc, digest.FromBytes(blob), nil, 0); err != nil {
		t.Fatal(err)
	}
}

func TestNewImageDistinctSeeds(t *testing.T) {
	a, _ := registrytest.NewImage(t, 1, 10).Digest()
	again, _ := registrytest.NewImage(t, 1, 10).Digest()
	b, _ := registrytest.NewImage(t, 2, 10).Digest()
	empty1, _ := registrytest.NewImage(t, 1).Digest()
	empty2, _ := registrytest.NewImage(t, 2).Digest()
	if a != again || a == b || empty1 == empty2 {
		t.Fatalf("image digests: seed 1 %s and %s, seed 2 %s, empty %s and %s", a, again, b, empty1, empty2)
	}
	idx, images := registrytest.NewIndex(t, 3, 2, 10)
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 2 || len(images) != 2 || m.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index of 2 images: %+v, %v", m, err)
	}
}
