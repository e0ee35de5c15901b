package cos

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestEncryptionHeadersOnEveryWrite: with encrypt (SSE-COS) or encrypt and
// kmskeyid (SSE-KMS), an object written by PUT, by a multipart upload, by
// a single copy and by a multipart copy is stored encrypted as asked (the
// emulator keeps the request's encryption headers, and a copy takes them
// from the copy request, not from its source); with encrypt off, none is.
func TestEncryptionHeadersOnEveryWrite(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		encrypt      bool
		kmsKeyID     string
		wantSSE      string
		wantKMSKeyID string
	}{
		"off":     {},
		"sse-cos": {encrypt: true, wantSSE: "AES256"},
		"sse-kms": {encrypt: true, kmsKeyID: "kms-key-1", wantSSE: "cos/kms", wantKMSKeyID: "kms-key-1"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := testenv.StartEmulator(t, costest.Options{})
			d := newTestDriver(t, srv, func(p *Parameters) {
				p.Encrypt, p.KMSKeyID = tc.encrypt, tc.kmsKeyID
				p.MultipartCopyThreshold = minPartSize
				p.MultipartCopyChunkSize = minPartSize
			})
			id := internal(d)
			require.NoError(t, d.PutContent(ctx, "/put", []byte("small")))
			w, err := d.Writer(ctx, "/multipart", false)
			require.NoError(t, err)
			_, err = w.Write(testenv.RandomBytes(2*minPartSize+1, 105))
			require.NoError(t, err)
			require.NoError(t, w.Commit(ctx))
			require.NoError(t, w.Close())
			check := func(path string) {
				t.Helper()
				resp, err := id.client.Object.Head(ctx, id.key(path), nil)
				require.NoError(t, err, path)
				require.Equal(t, tc.wantSSE, resp.Header.Get("x-cos-server-side-encryption"), path)
				require.Equal(t, tc.wantKMSKeyID, resp.Header.Get("x-cos-server-side-encryption-cos-kms-key-id"), path)
			}
			check("/put")
			check("/multipart")
			require.NoError(t, d.PutContent(ctx, "/copy-src", []byte("small")))
			srv.ResetStats()
			require.NoError(t, d.Move(ctx, "/copy-src", "/copied"))
			require.EqualValues(t, 1, srv.Stats().Count("CopyObject"))
			check("/copied")
			srv.ResetStats()
			require.NoError(t, d.Move(ctx, "/multipart", "/part-copied"))
			require.EqualValues(t, 3, srv.Stats().Count("UploadPartCopy"))
			check("/part-copied")
		})
	}
}
