package costest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// countingBackend counts the bytes read from blobs.
type countingBackend struct {
	backend
	read atomic.Int64
}

func (b *countingBackend) OpenBlob(id string) (blobReader, error) {
	br, err := b.backend.OpenBlob(id)
	if err != nil {
		return nil, err
	}
	return &countingBlob{blobReader: br, n: &b.read}, nil
}

// countingBlob hides the concrete blob type, so reads go through ReadAt.
type countingBlob struct {
	blobReader
	n *atomic.Int64
}

func (b *countingBlob) ReadAt(p []byte, off int64) (int, error) {
	k, err := b.blobReader.ReadAt(p, off)
	b.n.Add(int64(k))
	return k, err
}

// TestUploadPartCopyChecksums copies ranges of a multipart object (parts of
// 1 MiB, 1 MiB, 1 MiB and 300 KiB) and checks each part's CRC64 against
// the bytes, and how much the emulator read to get it: nothing for ranges
// of whole parts, only the cut parts otherwise.
func TestUploadPartCopyChecksums(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		name := "memory"
		if dir != "" {
			name = "disk"
		}
		t.Run(name, func(t *testing.T) { testUploadPartCopyChecksums(t, dir) })
	}
}

func testUploadPartCopyChecksums(t *testing.T, dir string) {
	srv := startServer(t, Options{Dir: dir})
	counter := &countingBackend{backend: srv.Handler.backend}
	srv.Handler.backend = counter // the handler reads blobs through this field
	c := newClient(t, srv)
	ctx := context.Background()
	const mib = 1 << 20
	parts := [][]byte{randomBytes(mib, 1), randomBytes(mib, 2), randomBytes(mib, 3), randomBytes(300<<10, 4)}
	data := bytes.Join(parts, nil)
	id, done := uploadParts(t, c, "src/multipart", parts)
	if _, _, err := c.Object.CompleteMultipartUpload(ctx, "src/multipart", id, &cos.CompleteMultipartUploadOptions{Parts: done}); err != nil {
		t.Fatal(err)
	}
	putBytes(t, c, "src/single", parts[0])
	host := strings.TrimPrefix(srv.URL, "http://")
	size := int64(len(data))
	tests := []struct {
		name        string
		src         string
		first, n    int64 // n == 0: no range header, the whole source
		wantRead    int64
		wantMD5ETag bool
	}{
		{"whole parts 2-3", "src/multipart", mib, 2 * mib, 0, false},
		{"whole object", "src/multipart", 0, 0, 0, false},
		{"one whole part", "src/multipart", 2 * mib, mib, 0, true},
		{"last part", "src/multipart", 3 * mib, size - 3*mib, 0, true},
		{"single-part object", "src/single", 0, 0, 0, true},
		{"part of a piece", "src/multipart", 100, 1000, 1000, true},
		{"across pieces, cut at both ends", "src/multipart", mib / 2, 2 * mib, mib, false},
		{"cut at the start only", "src/multipart", mib / 2, mib/2 + mib, mib / 2, false},
		{"cut at the end only", "src/multipart", mib, mib + 10, 10, false},
	}
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "dst", nil)
	if err != nil {
		t.Fatal(err)
	}
	var completeParts []cos.Object
	var joined []byte
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcData := data
			if tt.src == "src/single" {
				srcData = parts[0]
			}
			var opt *cos.ObjectCopyPartOptions
			want := srcData
			if tt.n > 0 {
				opt = &cos.ObjectCopyPartOptions{XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", tt.first, tt.first+tt.n-1)}
				want = srcData[tt.first : tt.first+tt.n]
			}
			before := counter.read.Load()
			res, resp, err := c.Object.CopyPart(ctx, "dst", init.UploadID, i+1, host+"/"+tt.src, opt)
			if err != nil {
				t.Fatal(err)
			}
			if read := counter.read.Load() - before; read != tt.wantRead {
				t.Errorf("read %d bytes to copy the part, want %d", read, tt.wantRead)
			}
			wantCRC := strconv.FormatUint(crc64.Checksum(want, crcTable), 10)
			if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != wantCRC {
				t.Errorf("CRC64 %s, want %s", got, wantCRC)
			}
			sum := md5.Sum(want)
			md5ETag := `"` + hex.EncodeToString(sum[:]) + `"`
			if tt.wantMD5ETag && res.ETag != md5ETag {
				t.Errorf("ETag %s, want the MD5 %s", res.ETag, md5ETag)
			}
			if len(strings.Trim(res.ETag, `"`)) != 32 {
				t.Errorf("ETag %s is not 32 hex digits", res.ETag)
			}
			if len(want) >= mib { // smaller parts may only come last
				completeParts = append(completeParts, cos.Object{PartNumber: i + 1, ETag: res.ETag})
				joined = append(joined, want...)
			}
		})
	}
	// The copied parts, slices with checksums computed on the way, make an
	// object whose bytes and CRC64 are right.
	_, resp, err := c.Object.CompleteMultipartUpload(ctx, "dst", init.UploadID, &cos.CompleteMultipartUploadOptions{Parts: completeParts})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got, want := resp.Header.Get("x-cos-hash-crc64ecma"), strconv.FormatUint(crc64.Checksum(joined, crcTable), 10); got != want {
		t.Errorf("object CRC64 %s, want %s", got, want)
	}
	if got, _ := getBytes(t, c, "dst", nil); !bytes.Equal(got, joined) {
		t.Errorf("object made of copied parts differs (%d bytes, want %d)", len(got), len(joined))
	}
	// A part copied from the copy, across its cut pieces, reads nothing:
	// the slices kept the checksums computed when they were cut.
	init2, _, _ := c.Object.InitiateMultipartUpload(ctx, "dst2", nil)
	before := counter.read.Load()
	// dst is 2 MiB (parts 2-3), 3 MiB + 300 KiB (the whole source), 1 MiB
	// (one part), 1 MiB (the single-part object), then the 2 MiB part cut
	// at both ends: copy exactly that one and the three parts before it.
	first, n := int64(2*mib), int64(5*mib+300<<10+2*mib)
	_, resp, err = c.Object.CopyPart(ctx, "dst2", init2.UploadID, 1, host+"/dst", &cos.ObjectCopyPartOptions{
		XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", first, first+n-1)})
	if err != nil {
		t.Fatal(err)
	}
	if read := counter.read.Load() - before; read != 0 {
		t.Errorf("second-generation copy read %d bytes", read)
	}
	if got, want := resp.Header.Get("x-cos-hash-crc64ecma"), strconv.FormatUint(crc64.Checksum(joined[first:first+n], crcTable), 10); got != want {
		t.Errorf("second-generation CRC64 %s, want %s", got, want)
	}
}

// TestUploadPartCopyLegacySegments copies from an object whose segments
// carry no checksums (a record persisted before they existed): the
// emulator reads the range and still reports the right CRC64.
func TestUploadPartCopyLegacySegments(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Options{Dir: dir})
	c := newClient(t, srv)
	ctx := context.Background()
	data := randomBytes(3<<20, 9)
	putBytes(t, c, "legacy", data)
	// Strip the checksums as an old record would have none.
	_, err := srv.Handler.store.updateObject(DefaultBucket, "legacy", func(old *objectRecord) (*objectRecord, error) {
		rec := *old
		rec.Segments = nil
		for _, sg := range old.Segments {
			rec.Segments = append(rec.Segments, segment{Blob: sg.Blob, Offset: sg.Offset, Size: sg.Size})
		}
		return &rec, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	init, _, _ := c.Object.InitiateMultipartUpload(ctx, "dst", nil)
	host := strings.TrimPrefix(srv.URL, "http://")
	res, resp, err := c.Object.CopyPart(ctx, "dst", init.UploadID, 1, host+"/legacy", &cos.ObjectCopyPartOptions{XCosCopySourceRange: "bytes=0-2097151"})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data[:2<<20])
	got := resp.Header.Get("x-cos-hash-crc64ecma")
	if want := strconv.FormatUint(crc64.Checksum(data[:2<<20], crcTable), 10); got != want || res.ETag != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("CRC64 %s ETag %s, want %s and the MD5", got, res.ETag, want)
	}
}
