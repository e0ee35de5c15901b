package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// startEdgeRegistry starts a registry on the emulator with extra driver
// parameters and storage middlewares.
func startEdgeRegistry(t *testing.T, emulator *costest.Server, redirect bool, params map[string]any, middlewares ...configuration.Middleware) *registrytest.Registry {
	t.Helper()
	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, registryOptions{Redirect: redirect})))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		config.Storage["cos"][k] = v
	}
	if len(middlewares) > 0 {
		config.Middleware = map[string][]configuration.Middleware{"storage": middlewares}
	}
	return serveConfig(t, config)
}

// storageClasses counts the emulator's objects by storage class, and the
// blob data objects by class.
func storageClasses(t *testing.T, emulator *costest.Server) (all, blobData map[string]int, large int) {
	t.Helper()
	all, blobData = map[string]int{}, map[string]int{}
	opt := &cossdk.BucketGetOptions{MaxKeys: 1000}
	for {
		res, _, err := emulator.Client().Bucket.Get(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Contents {
			all[o.StorageClass]++
			if strings.HasPrefix(o.Key, "docker/registry/v2/blobs/") && strings.HasSuffix(o.Key, "/data") {
				blobData[o.StorageClass]++
				if o.Size >= 64<<10 {
					large++
				}
			}
		}
		if !res.IsTruncated {
			return all, blobData, large
		}
		opt.Marker = res.NextMarker
	}
}

// TestStorageClassOnlyWhereItPays pushes an image with a small layer, a
// mid-sized one and one written in multipart parts, with storageclass
// STANDARD_IA (and MAZ_STANDARD_IA), and counts the classes on the
// emulator: blob data of 64 KiB and more has the class, every other object
// (links, manifests' links, small blobs, upload data moved away) is
// STANDARD (MAZ_STANDARD).
func TestStorageClassOnlyWhereItPays(t *testing.T) {
	for _, tc := range []struct{ class, standard string }{
		{"STANDARD_IA", "STANDARD"},
		{"MAZ_STANDARD_IA", "MAZ_STANDARD"},
	} {
		t.Run(tc.class, func(t *testing.T) {
			emulator := testenv.StartEmulator(t, costest.Options{})
			reg := startEdgeRegistry(t, emulator, false, map[string]any{"storageclass": tc.class})
			img := registrytest.NewImage(t, 26, 1000, 700<<10, 6*mib+5)
			push(t, reg.Ref(t, "library/classes:v1"), img)

			all, blobData, large := storageClasses(t, emulator)
			t.Logf("objects by class: %v; blob data by class: %v", all, blobData)
			// Three layers and the config are blobs, the manifest is one too:
			// the 700 KiB and 6 MiB layers are the large ones.
			if large != 2 {
				t.Fatalf("%d blob data objects of 64 KiB or more, want 2 (the test's image changed?)", large)
			}
			if all[tc.class] != large || blobData[tc.class] != large {
				t.Fatalf("%d objects (%d blob data) have %s, want exactly the %d large blobs", all[tc.class], blobData[tc.class], tc.class, large)
			}
			total := 0
			for _, n := range all {
				total += n
			}
			if all[tc.standard] != total-large || all[tc.standard] < 8 {
				t.Fatalf("%d of %d objects are %s, want every object but the %d large blobs", all[tc.standard], total, tc.standard, large)
			}
			pullAndVerifyImage(t, reg.Ref(t, "library/classes:v1"), img)
		})
	}
}

// TestTencentCDNMiddlewareIsRegistered: the binary registers the
// tencentcdn middleware, so `middleware: storage: - name: tencentcdn`
// redirects blob pulls to the CDN domain, with the type's signature.
func TestTencentCDNMiddlewareIsRegistered(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startEdgeRegistry(t, emulator, true, nil, configuration.Middleware{Name: "tencentcdn", Options: configuration.Parameters{
		"baseurl": "https://registry-cdn.example.com", "authtype": "d", "key": "cdnKey2026",
	}})
	content := testenv.RandomBytes(10<<10, 26)
	dgst := digest.FromBytes(content)
	if err := registrytest.PushBlob(context.Background(), http.DefaultClient, reg.URL, "library/cdn", bytes.NewReader(content), int64(len(content)), dgst); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(reg.URL + "/v2/library/cdn/blobs/" + dgst.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusTemporaryRedirect || loc.Host != "registry-cdn.example.com" ||
		!strings.HasSuffix(loc.Path, "/"+dgst.Encoded()+"/data") || len(loc.Query().Get("sign")) != 32 || loc.Query().Get("t") == "" {
		t.Fatalf("GET of a blob: %d to %q, want a type D signed URL on the CDN domain", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestTrafficLimitCapsDownloads pulls a blob through a redirect and
// through the registry itself with trafficlimit 1 MiB/s: the redirect URL
// carries x-cos-traffic-limit 8388608 (bit/s) as a signed parameter, the
// driver's read of the blob sends it, and the emulator served both downloads at that
// limit.
func TestTrafficLimitCapsDownloads(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	params := map[string]any{"trafficlimit": "1MiB"}
	redirecting := startEdgeRegistry(t, emulator, true, params)
	streaming := startEdgeRegistry(t, emulator, false, params)
	content := testenv.RandomBytes(256<<10, 26)
	dgst := digest.FromBytes(content)
	if err := registrytest.PushBlob(context.Background(), http.DefaultClient, redirecting.URL, "library/capped", bytes.NewReader(content), int64(len(content)), dgst); err != nil {
		t.Fatal(err)
	}
	const limit = "GetObject 8388608"

	emulator.ResetStats()
	var got bytes.Buffer
	_, redirected, err := registrytest.FetchBlob(context.Background(), http.DefaultClient, redirecting.URL, "library/capped", dgst, &got)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(redirected)
	if u.Query().Get("x-cos-traffic-limit") != "8388608" || !strings.Contains(u.Query().Get("q-url-param-list"), "x-cos-traffic-limit") {
		t.Fatalf("redirect %s: want x-cos-traffic-limit=8388608, signed (in q-url-param-list)", redirected)
	}
	if !bytes.Equal(got.Bytes(), content) {
		t.Fatal("the capped redirect download differs from what was pushed")
	}
	if n := emulator.Stats().TrafficLimits[limit]; n != 1 {
		t.Fatalf("the emulator served %d downloads at %q, want the redirected one: %v", n, limit, emulator.Stats().TrafficLimits)
	}

	emulator.ResetStats()
	got.Reset()
	if _, _, err := registrytest.FetchBlob(context.Background(), http.DefaultClient, streaming.URL, "library/capped", dgst, &got); err != nil {
		t.Fatal(err)
	}
	stats := emulator.Stats()
	// The blob's read is capped; the link file's read before it is not.
	if !bytes.Equal(got.Bytes(), content) || stats.TrafficLimits[limit] == 0 || stats.TrafficLimits[limit] >= stats.Count("GetObject") {
		t.Fatalf("the registry's own read: %d GETs, %v at a limit, want the blob's GETs at %q and not the link's", stats.Count("GetObject"), stats.TrafficLimits, limit)
	}

	// COS refuses a limit outside its range.
	bad := strings.Replace(redirected, "x-cos-traffic-limit=8388608", "x-cos-traffic-limit=100", 1)
	resp, err := http.Get(bad)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a redirect with x-cos-traffic-limit=100: %d, want 400 (or 403: it is signed)", resp.StatusCode)
	}
}
