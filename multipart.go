package cos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Multipart uploads, as the writer and Move's multipart copy both use them.

// initiate starts a multipart upload at key with the driver's write headers
// and meta (x-cos-meta-* headers, nil for none).
// An Initiate whose answer was lost may have made an upload all the same,
// which nothing would ever abort: after a retried Initiate, the uploads of
// exactly key that started since the first try (give or take clock skew)
// and are neither the one answered nor one of keep (uploads of key this
// process still uses) are aborted. COS cannot tag an upload at Initiate for
// a retry to find, so this one listing, only after a retry, is the way; it
// is cleanup only (a listing that lags misses the orphan, and the bucket's
// lifecycle rule is then the safety net).
func (d *driver) initiate(ctx context.Context, key string, meta http.Header, keep ...string) (string, error) {
	var uploadID string
	attempts := 0
	start := time.Now()
	err := d.do(ctx, "InitiateMultipartUpload", key, func(ctx context.Context) (*cossdk.Response, error) {
		attempts++
		opt := &cossdk.InitiateMultipartUploadOptions{ObjectPutHeaderOptions: d.putHeaders(key, -1)}
		if meta != nil {
			opt.XCosMetaXXX = &meta
		}
		res, resp, err := d.client.Object.InitiateMultipartUpload(ctx, key, opt)
		if err == nil {
			uploadID = res.UploadID
		}
		return resp, err
	})
	if err == nil && attempts > 1 {
		d.abortOrphans(ctx, key, append(keep, uploadID), start.Add(-maxClockSkew))
	}
	return uploadID, err
}

// maxClockSkew is how far COS's clock may be from ours: COS refuses
// requests signed more than 15 minutes off, but a minute covers NTP'd hosts.
const maxClockSkew = time.Minute

// abortOrphans aborts the uploads of exactly key, other than keep, that
// started at or after since. Failures are left to the lifecycle rule.
func (d *driver) abortOrphans(ctx context.Context, key string, keep []string, since time.Time) {
	_ = d.abortUploadsOf(ctx, key, keep, since)
}

// abortUploadsOf aborts the uploads of exactly key, other than keep, that
// started at or after since (all of them for a zero since).
func (d *driver) abortUploadsOf(ctx context.Context, key string, keep []string, since time.Time) error {
	var res *cossdk.ObjectListUploadsResult
	err := d.do(ctx, "ListMultipartUploads", key, func(ctx context.Context) (*cossdk.Response, error) {
		var resp *cossdk.Response
		var err error
		res, resp, err = d.bucketClient.Object.ListUploads(ctx, &cossdk.ObjectListUploadsOptions{Prefix: key, MaxUploads: maxListKeys})
		return resp, err
	})
	if err != nil {
		return err
	}
	for _, u := range res.Upload {
		if u.Key != key || slices.Contains(keep, u.UploadID) {
			continue
		}
		if !since.IsZero() {
			started, perr := time.Parse(time.RFC3339, u.Initiated)
			if perr != nil || started.Before(since) {
				continue
			}
		}
		if aerr := d.abort(ctx, key, u.UploadID); aerr != nil && err == nil {
			err = aerr // and the others are still aborted
		}
	}
	return err
}

// completion is what a completed upload must be: its size and the CRC64
// COS must compute for it, and whether it is an upload-state record;
// describe names the object in errors.
type completion struct {
	size     int64
	crc64    string // "" when unknown: not checked
	record   bool
	describe string // such as "/docker/registry/v2/blobs/..." or "copy of a to b"
}

// complete completes a multipart upload, checks the object COS made
// against want and returns its ETag. A CRC64 mismatch is final (sending
// again cannot fix it). A Complete whose answer was lost may still have
// been applied, so a retry then finds NoSuchUpload: before failing, HEAD
// says whether the object is already what was asked.
func (d *driver) complete(ctx context.Context, key, uploadID string, parts []cossdk.Object, want completion) (string, error) {
	var etag string
	err := d.do(ctx, "CompleteMultipartUpload", key, func(ctx context.Context) (*cossdk.Response, error) {
		res, resp, err := d.client.Object.CompleteMultipartUpload(ctx, key, uploadID,
			&cossdk.CompleteMultipartUploadOptions{Parts: parts})
		if err != nil {
			return resp, err
		}
		if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != "" && want.crc64 != "" && got != want.crc64 {
			return resp, &localError{fmt.Errorf("cos: %s is corrupt: COS computed CRC64 %s, want %s", want.describe, got, want.crc64)}
		}
		etag = res.ETag
		return resp, nil
	})
	if err == nil || want.crc64 == "" {
		return etag, err
	}
	var local *localError
	if !errors.As(err, &local) {
		if head, herr := d.head(ctx, key); herr == nil && (head.uploadSize >= 0) == want.record && head.size == want.size && head.crc64 == want.crc64 {
			return head.etag, nil
		}
	}
	return "", err
}

// partCopy is one Upload Part - Copy: part number of upload uploadID at
// dst made a server-side copy of n bytes of src from first.
type partCopy struct {
	dst, uploadID string
	number        int
	src           string
	first, n      int64
	// ifMatch, when set, pins the source to that version
	// (x-cos-copy-source-If-Match).
	ifMatch string
	// wantCRC, when known, is checked against the CRC64 COS reports for
	// the part: a mismatch is final.
	wantCRC string
}

// copyPart makes the part c describes and returns its ETag.
func (d *driver) copyPart(ctx context.Context, c partCopy) (string, error) {
	var etag string
	err := d.do(ctx, "UploadPartCopy", c.dst, func(ctx context.Context) (*cossdk.Response, error) {
		res, resp, err := d.client.Object.CopyPart(ctx, c.dst, c.uploadID, c.number, d.copySource(c.src),
			&cossdk.ObjectCopyPartOptions{XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", c.first, c.first+c.n-1), XCosCopySourceIfMatch: c.ifMatch})
		if err != nil {
			return resp, err
		}
		if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != "" && c.wantCRC != "" && got != c.wantCRC {
			return resp, &localError{fmt.Errorf("cos: part %d of %s, copied from %s: COS computed CRC64 %s, want %s", c.number, c.dst, c.src, got, c.wantCRC)}
		}
		etag = res.ETag
		return resp, nil
	})
	return etag, err
}

// abort aborts one multipart upload; one already gone is not an error.
func (d *driver) abort(ctx context.Context, key, uploadID string) error {
	err := d.do(ctx, "AbortMultipartUpload", key, func(ctx context.Context) (*cossdk.Response, error) {
		return d.client.Object.AbortMultipartUpload(ctx, key, uploadID)
	})
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}

// abortUploads aborts the in-progress multipart uploads of key, of the
// assemblies of its parts (key.partN) and of every key under "key/".
func (d *driver) abortUploads(ctx context.Context, key string) error {
	return d.abortUploadsWhere(ctx, key, func(k string) bool {
		return k == key || key == "" || strings.HasPrefix(k, key+"/") || isAssemblyOf(k, key)
	})
}

// abortUploadsWhere aborts the in-progress multipart uploads listed under
// prefix whose key match accepts.
func (d *driver) abortUploadsWhere(ctx context.Context, prefix string, match func(key string) bool) error {
	key := prefix
	opt := &cossdk.ObjectListUploadsOptions{Prefix: prefix, MaxUploads: maxListKeys}
	for {
		var res *cossdk.ObjectListUploadsResult
		err := d.do(ctx, "ListMultipartUploads", key, func(ctx context.Context) (*cossdk.Response, error) {
			var resp *cossdk.Response
			var err error
			res, resp, err = d.bucketClient.Object.ListUploads(ctx, opt)
			return resp, err
		})
		if err != nil {
			return err
		}
		for _, u := range res.Upload {
			if match(u.Key) {
				if err := d.abort(ctx, u.Key, u.UploadID); err != nil {
					return err
				}
			}
		}
		if !res.IsTruncated || res.NextKeyMarker == "" {
			return nil
		}
		opt.KeyMarker, opt.UploadIdMarker = res.NextKeyMarker, res.NextUploadIdMarker
	}
}
