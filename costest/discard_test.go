package costest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tencentyun/cos-go-sdk-v5"
)

// TestDiscardKeepsSumsNotBytes: with Discard, objects and parts of every
// size get the CRC64, MD5 and ETags the memory backend gives them, small
// objects stay readable, and a read of discarded bytes (or a copy whose
// range cuts them) answers an error that says so.
func TestDiscardKeepsSumsNotBytes(t *testing.T) {
	ctx := context.Background()
	type answers struct{ put, complete, copied, copyObject []string }
	run := func(opts Options) (answers, *cos.Client) {
		c := newClient(t, startServer(t, opts))
		var a answers
		big, small := randomBytes(3<<20+5, 1), randomBytes(1000, 2)
		for _, o := range []struct {
			key  string
			data []byte
		}{{"big", big}, {"small", small}} {
			resp := putBytes(t, c, o.key, o.data)
			a.put = append(a.put, resp.Header.Get("ETag"), resp.Header.Get("x-cos-hash-crc64ecma"))
		}
		init, _, err := c.Object.InitiateMultipartUpload(ctx, "multi", nil)
		require.NoError(t, err)
		var parts []cos.Object
		for _, n := range []int{1, 3} {
			data := map[int][]byte{1: big, 3: small}[n]
			resp, err := c.Object.UploadPart(ctx, "multi", init.UploadID, n, strings.NewReader(string(data)), nil)
			require.NoError(t, err)
			parts = append(parts, cos.Object{PartNumber: n, ETag: resp.Header.Get("ETag")})
		}
		// A copy of whole segments needs no bytes.
		res, cresp, err := c.Object.CopyPart(ctx, "multi", init.UploadID, 2, c.BaseURL.BucketURL.Host+"/big", nil)
		require.NoError(t, err)
		a.copied = append(a.copied, res.ETag, cresp.Header.Get("x-cos-hash-crc64ecma"))
		parts = []cos.Object{parts[0], {PartNumber: 2, ETag: res.ETag}, parts[1]}
		done, resp, err := c.Object.CompleteMultipartUpload(ctx, "multi", init.UploadID, &cos.CompleteMultipartUploadOptions{Parts: parts})
		require.NoError(t, err)
		a.complete = append(a.complete, done.ETag, resp.Header.Get("x-cos-hash-crc64ecma"))
		cp, _, err := c.Object.Copy(ctx, "copy", c.BaseURL.BucketURL.Host+"/multi", nil)
		require.NoError(t, err)
		a.copyObject = append(a.copyObject, cp.ETag, cp.CRC64)
		head, err := c.Object.Head(ctx, "copy", nil)
		require.NoError(t, err)
		require.EqualValues(t, 2*(3<<20+5)+1000, head.ContentLength)
		got, _ := getBytes(t, c, "small", nil)
		require.Equal(t, small, got, "a small object stays readable")
		return a, c
	}
	want, _ := run(Options{})
	got, c := run(Options{Discard: true})
	require.Equal(t, want, got, "ETags and CRC64s with and without Discard")

	kept := fmt.Sprintf("bytes=%d-%d", 2*(3<<20+5), 2*(3<<20+5)+999)
	for _, rng := range []string{"", "bytes=0-9", "bytes=3145733-3145740", kept} {
		_, err := c.Object.Get(ctx, "multi", &cos.ObjectGetOptions{Range: rng})
		if rng == kept {
			require.NoError(t, err, "the small part of the object is kept")
			continue
		}
		wantCode(t, err, "DiscardedContent", http.StatusBadRequest)
		require.ErrorContains(t, err, "discarded", "range %q", rng)
	}
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "cut", nil)
	require.NoError(t, err)
	_, _, err = c.Object.CopyPart(ctx, "cut", init.UploadID, 1, c.BaseURL.BucketURL.Host+"/big", &cos.ObjectCopyPartOptions{XCosCopySourceRange: "bytes=0-1048576"})
	wantCode(t, err, "DiscardedContent", http.StatusBadRequest)
}

// TestDiscardNeedsMemory: Discard with Dir is refused.
func TestDiscardNeedsMemory(t *testing.T) {
	_, err := NewHandler(Options{Discard: true, Dir: t.TempDir()})
	require.ErrorContains(t, err, "Discard")
}

// TestMaxPartsLowersThePartLimit: a part number above MaxParts is refused.
func TestMaxPartsLowersThePartLimit(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, startServer(t, Options{MaxParts: 3}))
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "k", nil)
	require.NoError(t, err)
	_, err = c.Object.UploadPart(ctx, "k", init.UploadID, 3, strings.NewReader("x"), nil)
	require.NoError(t, err)
	_, err = c.Object.UploadPart(ctx, "k", init.UploadID, 4, strings.NewReader("x"), nil)
	wantCode(t, err, "InvalidArgument", http.StatusBadRequest)
	require.ErrorContains(t, err, "between 1 and 3")
	_, err = NewHandler(Options{MaxParts: 10001})
	require.Error(t, err)
}
