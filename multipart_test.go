package cos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/stretchr/testify/require"
)

// loseAnswers wraps the emulator: the first n requests of operation op are
// applied and their answer replaced by a dropped connection.
func loseAnswers(t *testing.T, op string, n int32) (*costest.Handler, *httptest.Server) {
	return loseAnswersOf(t, op, func(i int32) bool { return i <= n })
}

// loseAnswersOf is loseAnswers for the requests of op whose count (from 1)
// lose says.
func loseAnswersOf(t *testing.T, op string, lose func(i int32) bool) (*costest.Handler, *httptest.Server) {
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		before := h.Stats().Count(op)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if h.Stats().Count(op) > before && lose(seen.Add(1)) {
			panic(http.ErrAbortHandler) // the answer is lost
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

// TestLostInitiateLeavesNoUpload: an Initiate whose answer is lost is
// retried; the upload the first one made is aborted.
func TestLostInitiateLeavesNoUpload(t *testing.T) {
	ctx := context.Background()
	h, srv := loseAnswers(t, "InitiateMultipartUpload", 1)
	d := driverOn(t, srv.URL, func(p *Parameters) { p.ChunkSize = MinChunkSize })
	w, err := d.Writer(ctx, "/lost/data", false)
	require.NoError(t, err)
	_, err = w.Write(testenv.RandomBytes(MinChunkSize+10, 902))
	require.NoError(t, err)
	require.NoError(t, w.Commit(ctx))
	require.EqualValues(t, 2, h.Stats().Count("InitiateMultipartUpload"))
	require.Empty(t, uploadsOf(t, d, ""), "no upload left behind")
}

func uploadsOf(t *testing.T, d *Driver, prefix string) []string {
	res, _, err := d.Client().Object.ListUploads(context.Background(), nil)
	require.NoError(t, err)
	var ids []string
	for _, u := range res.Upload {
		if strings.HasPrefix(u.Key, prefix) {
			ids = append(ids, u.Key+" "+u.UploadID)
		}
	}
	return ids
}
