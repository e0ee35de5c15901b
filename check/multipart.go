package check

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

const mib = 1 << 20

// multipart checks parts, Complete, the 1 MiB minimum part and Upload
// Part - Copy with a range.
func (pr *prober) multipart(ctx context.Context) {
	data := randomBytes(mib + 100)
	key := pr.key("multipart")
	parts, ok := pr.uploadParts(ctx, "multipart upload", key, [][]byte{data[:mib], data[mib:]})
	if !ok {
		return
	}
	uploadID := parts.uploadID
	_, resp, err := pr.complete(ctx, key, uploadID, parts.list)
	if err != nil {
		pr.failed("Complete CRC64", "Complete Multipart Upload 200", err)
		return
	}
	pr.checkCRC("Complete CRC64", resp, crcOf(data))

	small := randomBytes(100 << 10)
	key = pr.key("small-parts")
	parts, ok = pr.uploadParts(ctx, "minimum part size", key, [][]byte{small, small[:100]})
	if ok {
		_, _, err := pr.complete(ctx, key, parts.uploadID, parts.list)
		if status, code := statusOf(err); status != http.StatusBadRequest || code != "EntityTooSmall" {
			got := "200: the upload completed"
			if err != nil {
				got = describe(err)
			}
			pr.fail("minimum part size", "400 EntityTooSmall for a 100 KiB part that is not the last", got)
		} else {
			pr.ok("minimum part size", "parts but the last must hold 1 MiB (400 EntityTooSmall)")
		}
		pr.abort(ctx, key, parts.uploadID)
	}

	pr.partCopy(ctx, pr.key("multipart"), data)
}

type uploadedParts struct {
	uploadID string
	list     []cossdk.Object
}

// initiate starts a multipart upload at key with the x-cos-meta-* headers
// meta (nil for none).
func (pr *prober) initiate(ctx context.Context, key string, meta http.Header) (string, error) {
	var id string
	_, err := pr.call("name/cos:InitiateMultipartUpload", func() (*cossdk.Response, error) {
		opt := &cossdk.InitiateMultipartUploadOptions{}
		if meta != nil {
			opt.ObjectPutHeaderOptions = &cossdk.ObjectPutHeaderOptions{XCosMetaXXX: &meta}
		}
		res, resp, err := pr.c.Object.InitiateMultipartUpload(ctx, key, opt)
		if err == nil {
			id = res.UploadID
		}
		return resp, err
	})
	return id, err
}

func (pr *prober) uploadParts(ctx context.Context, name, key string, chunks [][]byte) (uploadedParts, bool) {
	id, err := pr.initiate(ctx, key, nil)
	if err != nil {
		pr.failed(name, "Initiate Multipart Upload 200", err)
		return uploadedParts{}, false
	}
	parts := uploadedParts{uploadID: id}
	for i, chunk := range chunks {
		resp, err := pr.uploadPart(ctx, key, id, i+1, chunk)
		if err != nil {
			pr.failed(name, "Upload Part 200", err)
			pr.abort(ctx, key, id)
			return parts, false
		}
		if i == 0 && name == "multipart upload" {
			pr.checkCRC("Upload Part CRC64", resp, crcOf(chunk))
		}
		parts.list = append(parts.list, cossdk.Object{PartNumber: i + 1, ETag: resp.Header.Get("ETag")})
	}
	return parts, true
}

func (pr *prober) uploadPart(ctx context.Context, key, id string, number int, data []byte) (*cossdk.Response, error) {
	return pr.call("name/cos:UploadPart", func() (*cossdk.Response, error) {
		return pr.c.Object.UploadPart(ctx, key, id, number, bytes.NewReader(data), &cossdk.ObjectUploadPartOptions{ContentLength: int64(len(data))})
	})
}

// complete completes an upload and returns the ETag its answer gives the
// object (the one the driver pins later reads and copies to).
func (pr *prober) complete(ctx context.Context, key, id string, parts []cossdk.Object) (string, *cossdk.Response, error) {
	var etag string
	resp, err := pr.call("name/cos:CompleteMultipartUpload", func() (*cossdk.Response, error) {
		res, resp, err := pr.c.Object.CompleteMultipartUpload(ctx, key, id, &cossdk.CompleteMultipartUploadOptions{Parts: parts})
		if err == nil {
			etag = res.ETag
		}
		return resp, err
	})
	return etag, resp, err
}

// copyPart makes part number of upload id at dst a copy of the bytes
// first..last of src, pinned to ifMatch when it is set
// (x-cos-copy-source-If-Match), and returns the part's ETag.
func (pr *prober) copyPart(ctx context.Context, dst, id string, number int, src string, first, last int, ifMatch string) (string, *cossdk.Response, error) {
	var etag string
	resp, err := pr.call("name/cos:UploadPartCopy", func() (*cossdk.Response, error) {
		res, resp, err := pr.c.Object.CopyPart(ctx, dst, id, number, pr.copySource(src), &cossdk.ObjectCopyPartOptions{
			XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", first, last), XCosCopySourceIfMatch: ifMatch})
		if err == nil {
			etag = res.ETag
		}
		return resp, err
	})
	return etag, resp, err
}

func (pr *prober) abort(ctx context.Context, key, id string) {
	_, _ = pr.call("name/cos:AbortMultipartUpload", func() (*cossdk.Response, error) {
		return pr.c.Object.AbortMultipartUpload(context.WithoutCancel(ctx), key, id)
	})
}

// partCopy copies src in two ranged Upload Part - Copy requests, as Move
// does above multipartcopythreshold.
func (pr *prober) partCopy(ctx context.Context, src string, data []byte) {
	const name = "Upload Part - Copy with a range"
	dst := pr.key("part-copy")
	id, err := pr.initiate(ctx, dst, nil)
	if err != nil {
		pr.failed(name, "Initiate Multipart Upload 200", err)
		return
	}
	ranges := [][2]int{{0, mib - 1}, {mib, len(data) - 1}}
	var parts []cossdk.Object
	for i, r := range ranges {
		etag, _, err := pr.copyPart(ctx, dst, id, i+1, src, r[0], r[1], "")
		if err != nil {
			pr.failed(name, "Upload Part - Copy 200", err)
			pr.abort(ctx, dst, id)
			return
		}
		parts = append(parts, cossdk.Object{PartNumber: i + 1, ETag: etag})
	}
	_, resp, err := pr.complete(ctx, dst, id, parts)
	if err != nil {
		pr.failed(name, "Complete Multipart Upload 200", err)
		pr.abort(ctx, dst, id)
		return
	}
	if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != crcOf(data) {
		pr.fail(name, "the copy's CRC64 "+crcOf(data), fmt.Sprintf("%q", got))
		return
	}
	pr.ok(name, "two ranges copied, CRC64 of the whole matches")
}
