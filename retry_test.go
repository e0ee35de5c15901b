package cos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/stretchr/testify/require"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

func TestRetries(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 4 })
	require.NoError(t, d.PutContent(ctx, "/file", []byte("x")))

	t.Run("4xx is not retried", func(t *testing.T) {
		srv.ResetStats()
		_, err := d.GetContent(ctx, "/missing")
		require.IsType(t, storagedriver.PathNotFoundError{}, err)
		require.EqualValues(t, 1, srv.Stats().Total())
	})
	t.Run("5xx is retried up to maxretries", func(t *testing.T) {
		srv.SetFaults(costest.Faults{ErrorRate: 1})
		defer srv.SetFaults(costest.Faults{})
		srv.ResetStats()
		_, err := d.GetContent(ctx, "/file")
		require.Error(t, err)
		require.EqualValues(t, 5, srv.Stats().Count("GetObject"), "1 try + 4 retries")
	})
	t.Run("retries stop at the context deadline", func(t *testing.T) {
		d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = maxRetries })
		srv.SetFaults(costest.Faults{ErrorRate: 1})
		defer srv.SetFaults(costest.Faults{})
		srv.ResetStats()
		deadline, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := d.GetContent(deadline, "/file")
		require.Error(t, err)
		// Deterministic bound: far fewer tries than maxretries allows.
		require.Less(t, srv.Stats().Count("GetObject"), int64(maxRetries/2))
		require.Less(t, time.Since(start), 10*time.Second)
	})
	t.Run("transient 5xx recovers", func(t *testing.T) {
		d := newTestDriver(t, srv, func(p *Parameters) { p.MaxRetries = 20 })
		srv.SetFaults(costest.Faults{ErrorRate: 0.5})
		defer srv.SetFaults(costest.Faults{})
		for range 10 {
			got, err := d.GetContent(ctx, "/file")
			require.NoError(t, err)
			require.Equal(t, "x", string(got))
		}
	})
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	for attempt := range 12 {
		ceiling := min(retryMaxDelay, retryBaseDelay<<attempt)
		for range 50 {
			delay := backoff(attempt)
			require.GreaterOrEqual(t, delay, time.Duration(0))
			require.LessOrEqual(t, delay, ceiling, "attempt %d", attempt)
		}
	}
}

// TestCompleteAppliedButAnswerLost: COS applies a Complete, the answer is
// lost (503), the retry finds NoSuchUpload; a HEAD shows the object is
// whole, so the commit succeeds instead of failing the push.
func TestCompleteAppliedButAnswerLost(t *testing.T) {
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	lost := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadId") && lost == 0 {
			lost++
			h.ServeHTTP(httptest.NewRecorder(), r) // applied...
			w.Header().Set("x-cos-request-id", "lost")
			http.Error(w, "", http.StatusServiceUnavailable) // ...but the answer is lost
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	p := DefaultParameters()
	p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	p.Bucket, p.Region, p.Endpoint = costest.DefaultBucket, costest.DefaultRegion, ts.URL
	p.ChunkSize = MinChunkSize
	ctx := context.Background()
	d, err := New(ctx, p)
	require.NoError(t, err)
	content := testenv.RandomBytes(MinChunkSize+100, 108)
	w, err := d.Writer(ctx, "/blob", false)
	require.NoError(t, err)
	_, err = w.Write(content)
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	require.Equal(t, 1, lost)
	got, err := d.GetContent(ctx, "/blob")
	require.NoError(t, err)
	require.Equal(t, content, got)
}

// TestPurgeUploadsLeavesNoParts runs the registry's upload purger: the
// multipart uploads of purged uploads are aborted, not left billed.
func TestPurgeUploadsLeavesNoParts(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	const upload = "/docker/registry/v2/repositories/library/app/_uploads/0b8d2a6e-7b5b-4c8e-9d0e-1f2a3b4c5d6e"
	w, err := d.Writer(ctx, upload+"/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(MinChunkSize+1, 109))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	old := time.Now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	require.NoError(t, d.PutContent(ctx, upload+"/startedat", []byte(old)))
	require.Equal(t, 1, openUploads(t, d))

	deleted, errs := storage.PurgeUploads(ctx, d, time.Now().Add(-time.Hour), true)
	require.Empty(t, errs)
	require.NotEmpty(t, deleted)
	require.Equal(t, 0, openUploads(t, d), "multipart uploads left after the purge")
	// The directory's startedat goes last, once a listing confirms the
	// delete, in Delete's background part (delete.go).
	require.NoError(t, d.Wait(ctx))
	_, err = d.Stat(ctx, upload)
	require.ErrorAs(t, err, new(storagedriver.PathNotFoundError), "the upload directory is gone")
}

func openUploads(t *testing.T, d *Driver) int {
	t.Helper()
	res, _, err := internal(d).client.Object.ListUploads(context.Background(), &cossdk.ObjectListUploadsOptions{})
	require.NoError(t, err)
	n := 0
	for _, u := range res.Upload {
		if !strings.HasPrefix(u.Key, "#") {
			n++
		}
	}
	return n
}
