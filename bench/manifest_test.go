package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// TestManifestPutRoundTrips counts the COS requests of the last step of an
// image push, the manifest PUT by tag, after its config and layer are
// pushed. They are all the registry's own, one after another: the
// referenced blobs are known to the blob descriptor cache (in memory here,
// Redis across replicas) from their own pushes, so none is looked up; the
// manifest is stored as a blob (a Stat of its data path, which is not
// there yet: a HEAD, then a listing in case it is a directory, then one
// PUT), then its revision link and the tag's current and index links (one
// PUT each). The driver adds nothing of its own.
func TestManifestPutRoundTrips(t *testing.T) {
	ctx := context.Background()
	emulator := newEmulator(t, costest.Faults{})
	reg := registrytest.Start(t, registrytest.Config(t, registrytest.Options{
		Driver: "cos", Parameters: testenv.DriverParameters(emulator), BlobDescriptorCache: true,
	}))
	base := reg.URL
	const repo = "bench/manifest"

	type descriptor struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	push := func(mediaType string, content []byte) descriptor {
		d := digest.FromBytes(content)
		require.NoError(t, pushBlob(ctx, base, repo, bytes.NewReader(content), int64(len(content)), d))
		return descriptor{mediaType, d, int64(len(content))}
	}
	config := push("application/vnd.oci.image.config.v1+json", []byte(`{"architecture":"amd64","os":"linux"}`))
	layer := push("application/vnd.oci.image.layer.v1.tar+gzip", bytes.Repeat([]byte("layer"), 1000))
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        config,
		"layers":        []descriptor{layer},
	})
	require.NoError(t, err)

	// The blob commits' upload-directory Deletes finish in the background:
	// their requests are not the manifest PUT's.
	reg.Wait(t)
	emulator.ResetStats()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("%s/v2/%s/manifests/v1", base, repo), bytes.NewReader(manifest))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	reg.Wait(t)
	stats := emulator.Stats()
	t.Logf("manifest PUT:%s", requestTable(stats))
	require.EqualValues(t, 0, stats.Count("GetObject"), "a manifest PUT reads nothing the client just sent")
	require.EqualValues(t, 0, stats.Count("InitiateMultipartUpload"), "a manifest is small content: one PUT, no multipart upload")
	require.EqualValues(t, 1, stats.Count("HeadObject"), "the Stat of the manifest's blob path")
	require.EqualValues(t, 1, stats.Count("ListObjects"), "the Stat of the manifest's blob path, not a file: is it a directory?")
	require.EqualValues(t, 4, stats.Count("PutObject"), "the manifest, its revision link, the tag's current and index links")
	require.EqualValues(t, 6, stats.Total(), "COS requests of the manifest PUT")
}
