package costest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"net/http"
	"strconv"
	"sync"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// uploadParts initiates an upload of key and uploads the given parts in
// parallel, returning the upload id and the parts for Complete.
func uploadParts(t testing.TB, c *cos.Client, key string, parts [][]byte) (string, []cos.Object) {
	t.Helper()
	ctx := context.Background()
	init, _, err := c.Object.InitiateMultipartUpload(ctx, key, nil)
	if err != nil {
		t.Fatalf("Initiate: %v", err)
	}
	out := make([]cos.Object, len(parts))
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Object.UploadPart(ctx, key, init.UploadID, i+1, bytes.NewReader(p), nil)
			if err != nil {
				errs <- fmt.Errorf("part %d: %w", i+1, err)
				return
			}
			out[i] = cos.Object{PartNumber: i + 1, ETag: resp.Header.Get("ETag")}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("UploadPart: %v", err)
	}
	return init.UploadID, out
}

func multipartETag(parts [][]byte) string {
	h := md5.New()
	for _, p := range parts {
		s := md5.Sum(p)
		h.Write(s[:])
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)) + `"`
}

func TestMultipartUpload(t *testing.T) {
	for _, backend := range []string{"memory", "disk"} {
		t.Run(backend, func(t *testing.T) {
			opts := Options{}
			if backend == "disk" {
				opts.Dir = t.TempDir()
			}
			srv := startServer(t, opts)
			c := newClient(t, srv)
			ctx := context.Background()
			parts := [][]byte{randomBytes(1<<20, 1), randomBytes(1<<20+5, 2), randomBytes(1000, 3)}
			id, list := uploadParts(t, c, "mp/obj", parts)
			res, resp, err := c.Object.CompleteMultipartUpload(ctx, "mp/obj", id, &cos.CompleteMultipartUploadOptions{Parts: list})
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			whole := bytes.Join(parts, nil)
			if res.ETag != multipartETag(parts) {
				t.Errorf("ETag = %s, want %s", res.ETag, multipartETag(parts))
			}
			wantCRC := strconv.FormatUint(crc64.Checksum(whole, crcTable), 10)
			if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != wantCRC {
				t.Errorf("Complete CRC = %s, want %s", got, wantCRC)
			}
			got, gresp := getBytes(t, c, "mp/obj", nil)
			if !bytes.Equal(got, whole) || gresp.Header.Get("x-cos-hash-crc64ecma") != wantCRC {
				t.Errorf("GET after Complete: %d bytes, CRC %s", len(got), gresp.Header.Get("x-cos-hash-crc64ecma"))
			}
			mid, _ := getBytes(t, c, "mp/obj", &cos.ObjectGetOptions{Range: "bytes=1048570-1048590"})
			if !bytes.Equal(mid, whole[1048570:1048591]) {
				t.Errorf("range across parts differs")
			}
			// A repeated Complete finds no upload.
			_, _, err = c.Object.CompleteMultipartUpload(ctx, "mp/obj", id, &cos.CompleteMultipartUploadOptions{Parts: list})
			wantCode(t, err, "NoSuchUpload", http.StatusNotFound)
		})
	}
}

func TestCompleteErrors(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	small := [][]byte{randomBytes(1000, 1), randomBytes(1000, 2)}
	big := [][]byte{randomBytes(1<<20, 1), randomBytes(10, 2)}
	tests := []struct {
		name   string
		parts  [][]byte
		mangle func([]cos.Object) []cos.Object
		code   string
	}{
		{"part under 1 MiB before the last", small, nil, "EntityTooSmall"},
		{"descending order", big, func(o []cos.Object) []cos.Object { return []cos.Object{o[1], o[0]} }, "InvalidPartOrder"},
		{"wrong ETag", big, func(o []cos.Object) []cos.Object { o[1].ETag = `"00"`; return o }, "InvalidPart"},
		{"missing part", big, func(o []cos.Object) []cos.Object { o[1].PartNumber = 7; return o }, "InvalidPart"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "bad/" + strconv.Itoa(i)
			id, list := uploadParts(t, c, key, tt.parts)
			if tt.mangle != nil {
				list = tt.mangle(list)
			}
			_, _, err := c.Object.CompleteMultipartUpload(ctx, key, id, &cos.CompleteMultipartUploadOptions{Parts: list})
			wantCode(t, err, tt.code, http.StatusBadRequest)
		})
	}
}

func TestUploadPartErrors(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	init, _, err := c.Object.InitiateMultipartUpload(ctx, "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 10001} {
		_, err := c.Object.UploadPart(ctx, "k", init.UploadID, n, bytes.NewReader([]byte("x")), nil)
		wantCode(t, err, "InvalidArgument", http.StatusBadRequest)
	}
	_, err = c.Object.UploadPart(ctx, "k", "nope", 1, bytes.NewReader([]byte("x")), nil)
	wantCode(t, err, "NoSuchUpload", http.StatusNotFound)
	// A reader of unknown length is sent chunked, without Content-Length.
	_, err = c.Object.UploadPart(ctx, "k", init.UploadID, 1, struct{ *bytes.Reader }{bytes.NewReader([]byte("x"))}, nil)
	wantCode(t, err, "MissingContentLength", http.StatusLengthRequired)

	if _, err := c.Object.AbortMultipartUpload(ctx, "k", init.UploadID); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	_, err = c.Object.AbortMultipartUpload(ctx, "k", init.UploadID)
	wantCode(t, err, "NoSuchUpload", http.StatusNotFound)
	_, err = c.Object.UploadPart(ctx, "k", init.UploadID, 1, bytes.NewReader([]byte("x")), nil)
	wantCode(t, err, "NoSuchUpload", http.StatusNotFound)
}

func TestListParts(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	parts := make([][]byte, 5)
	for i := range parts {
		parts[i] = []byte(strconv.Itoa(i))
	}
	id, _ := uploadParts(t, c, "lp", parts)
	res, _, err := c.Object.ListParts(ctx, "lp", id, &cos.ObjectListPartsOptions{MaxParts: "2", PartNumberMarker: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Parts) != 2 || res.Parts[0].PartNumber != 2 || !res.IsTruncated || res.NextPartNumberMarker != "3" {
		t.Errorf("ListParts page = %+v", res)
	}
	_, _, err = c.Object.ListParts(ctx, "lp", "nope", nil)
	wantCode(t, err, "NoSuchUpload", http.StatusNotFound)
}

func TestListMultipartUploads(t *testing.T) {
	srv := startServer(t, Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	var ids []string
	for _, key := range []string{"a/1", "a/1", "a/2", "b/x/1", "c"} {
		init, _, err := c.Object.InitiateMultipartUpload(ctx, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, init.UploadID)
	}
	res, _, err := c.Object.ListUploads(ctx, &cos.ObjectListUploadsOptions{MaxUploads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upload) != 2 || res.Upload[0].UploadID != ids[0] || res.Upload[1].UploadID != ids[1] || !res.IsTruncated {
		t.Fatalf("first page = %+v", res)
	}
	res, _, err = c.Object.ListUploads(ctx, &cos.ObjectListUploadsOptions{KeyMarker: res.NextKeyMarker, UploadIdMarker: res.NextUploadIdMarker, Delimiter: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upload) != 1 || res.Upload[0].Key != "c" || len(res.CommonPrefixes) != 1 || res.CommonPrefixes[0] != "b/" {
		t.Fatalf("second page = %+v", res)
	}
	res, _, err = c.Object.ListUploads(ctx, &cos.ObjectListUploadsOptions{Prefix: "a/", KeyMarker: "a/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Upload) != 1 || res.Upload[0].Key != "a/2" {
		t.Fatalf("key-marker page = %+v", res)
	}
}
