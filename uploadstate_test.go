package cos

import (
	"bytes"
	"hash/crc64"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUploadStateVersion: records carry a version; version 1 (header
// first) and 2 (header last) are read, another is refused.
func TestUploadStateVersion(t *testing.T) {
	s := &uploadState{UploadID: "u", Size: 3}
	header := s.headerBlock(3, 0, crc64.Checksum([]byte("abc"), crcTable))
	require.True(t, isUploadRecordSize(int64(3+len(header))), "record size residue")
	got, err := decodeHeader(header, 3)
	require.NoError(t, err)
	require.Equal(t, uploadStateVersion, got.Version)
	require.Equal(t, "u", got.UploadID)
	_, err = decodeHeader(header, 4)
	require.ErrorContains(t, err, "corrupt")

	v1 := []byte(`{"v":1,"uploadId":"u","size":3,"tailSize":3}` + "   \nabc")
	got, tail, err := decodeRecordV1(v1)
	require.NoError(t, err)
	require.Equal(t, "abc", string(tail))
	require.Equal(t, crc64.Checksum(tail, crcTable), *got.TailCRC64)

	for _, h := range []string{`{"size":3,"tailSize":0}`, `{"v":99,"size":3,"tailSize":0}`} {
		_, _, err = decodeRecordV1([]byte(h + "\n"))
		require.ErrorContains(t, err, "version", h)
		_, err = decodeHeader([]byte(h), 0)
		require.ErrorContains(t, err, "version", h)
	}
	_, _, err = decodeRecordV1([]byte(`{"v":1,"size":3,"parts":[{"n":1,"etag":"e","size":3}]}` + "\n"))
	require.ErrorContains(t, err, "part 1 has no CRC64")
	_, err = decodeHeader(bytes.TrimSpace([]byte(`{"v":2,"size":3,"tailSize":0,"tailCrc64":0,"parts":[{"n":1,"etag":"e","size":3}]}`)), 0)
	require.ErrorContains(t, err, "part 1 has no CRC64")
}
