package cos

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUploadStateVersion: records carry a version; an unknown one is refused.
func TestUploadStateVersion(t *testing.T) {
	s := &uploadState{UploadID: "u", Size: 3}
	rec := s.encode([]byte("abc"))
	got, tail, err := decodeUploadState(rec)
	require.NoError(t, err)
	require.Equal(t, uploadStateVersion, got.Version)
	require.Equal(t, "abc", string(tail))
	require.True(t, isUploadRecordSize(int64(len(rec))))
	for _, header := range []string{`{"size":3,"tailSize":0}`, `{"v":99,"size":3,"tailSize":0}`} {
		_, _, err = decodeUploadState([]byte(header + "\n"))
		require.ErrorContains(t, err, "version", header)
	}
	_, _, err = decodeUploadState([]byte(`{"v":1,"size":3,"parts":[{"n":1,"etag":"e","size":3}]}` + "\n"))
	require.ErrorContains(t, err, "part 1 has no CRC64")
}
