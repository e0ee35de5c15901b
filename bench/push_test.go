package bench

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// pushPhases pushes one blob of size through a registry on the emulator,
// one upload request at a time, and returns the COS requests each made
// and, as after, the requests Delete makes in the background once the PUT
// has been answered (it confirms the upload directory's delete and
// deletes its startedat last).
func pushPhases(t *testing.T, size int64) (post, patch, put, after costest.Stats) {
	ctx := context.Background()
	emulator := newEmulator(t, costest.Faults{})
	reg := registrytest.Start(t, registrytest.Config(t, registrytest.Options{
		Driver:              "cos",
		Parameters:          testenv.DriverParameters(emulator),
		BlobDescriptorCache: true,
	}))
	emulator.ResetStats()
	loc, err := registrytest.StartUpload(ctx, httpClient, reg.URL, "bench/push")
	require.NoError(t, err)
	post = emulator.Stats()
	emulator.ResetStats()
	loc, _, err = registrytest.PatchUpload(ctx, httpClient, loc, testenv.NewPatternReader(1, size), size, 0)
	require.NoError(t, err)
	patch = emulator.Stats()
	emulator.ResetStats()
	require.NoError(t, registrytest.FinishUpload(ctx, httpClient, loc, patternDigest(1, size), nil, 0))
	// The emulator counts a request when it arrives, and the registry
	// answers once its requests are answered: these counts are final. The
	// background part's first request comes backgroundFirstWait (250 ms)
	// after the Delete.
	put = emulator.Stats()
	reg.Wait(t)
	all := emulator.Stats()
	after = costest.Stats{Requests: map[string]int64{}}
	for op, n := range all.Requests {
		if n -= put.Requests[op]; n != 0 {
			after.Requests[op] = n
		}
	}
	return post, patch, put, after
}

// TestPushRoundTrips counts the COS requests of each request of a blob
// upload, one after another on the push's critical path. The registry's
// own: startedat and hash states (PUT, GET, a listing), Stats of the
// upload and the blob (HEAD, and a listing when the blob is new), the
// layer link, deleting the upload directory (a listing and a batch
// delete of what it lists but startedat; the listing that shows the
// delete and the delete of startedat follow in the background, off the
// critical path). The driver's: the upload-state record (GETs, PUT), the parts,
// the copy of the record's tail into the last part, completing, and a Move that reuses the HEAD of the registry's Stat just
// before it (it HEADs the destination only, for an upload in progress there): one CopyObject up to multipartcopythreshold (32 MiB), else
// an initiate, parallel part copies and a completion; then the DELETE of
// the source.
func TestPushRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		size             int64
		patch, put       int64
		copies, initiate int64
	}{
		// 1 MiB: the PATCH's Close keeps the data in the state record (one
		// PUT, no part); the commit copies it out of the record (initiate,
		// part copy, complete) instead of completing an uploaded part.
		{size: 1 << 20, patch: 5, put: 18, copies: 1, initiate: 1},
		// 40 MiB: 2 parts of 16 MiB uploaded by the PATCH, whose Close puts
		// the last 8 MiB in the record; the commit copies them out as part
		// 3; then 2 part copies of 32 MiB by Move.
		{size: 40 << 20, patch: 8, put: 20, copies: 3, initiate: 1},
	} {
		post, patch, put, after := pushPhases(t, tc.size)
		t.Logf("%d bytes\nPOST:%s\nPATCH:%s\nPUT:%s\nafter the PUT:%s", tc.size, requestTable(post), requestTable(patch), requestTable(put), requestTable(after))
		require.EqualValues(t, 3, post.Total(), "%d bytes: COS requests of the POST", tc.size)
		require.EqualValues(t, tc.patch, patch.Total(), "%d bytes: COS requests of the PATCH", tc.size)
		require.EqualValues(t, tc.put, put.Total(), "%d bytes: COS requests of the PUT", tc.size)
		require.EqualValues(t, 4, put.Count("HeadObject"), "%d bytes: the registry's 3 Stats and the destination's HEAD, none of the source by Move", tc.size)
		require.EqualValues(t, tc.copies, put.Count("UploadPartCopy"), "%d bytes: part copies", tc.size)
		require.EqualValues(t, tc.initiate, put.Count("InitiateMultipartUpload"), "%d bytes: a multipart copy only above the threshold", tc.size)
		require.EqualValues(t, 3, after.Total(), "%d bytes: requests after the PUT (Delete's background part: a listing, the abort of uploads under the directory, the delete of startedat)", tc.size)
		require.EqualValues(t, 1, after.Count("ListObjects"), "%d bytes: the listing that shows the upload directory's delete", tc.size)
	}
}
