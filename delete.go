package cos

import (
	"context"
	"fmt"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Delete removes path and everything under "path/" (never a sibling such
// as "path-x"), in quiet batches of 1000, and aborts the multipart uploads
// under it so no parts are left behind. A tree is usually found with one
// listing: the key itself sorts first among the keys it prefixes.
func (d *driver) Delete(ctx context.Context, path string) error {
	key := d.key(path)
	var keys []string
	mayHoldUpload := false
	opt := &cossdk.BucketGetOptions{Prefix: key, MaxKeys: maxListKeys}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return err
		}
		for _, obj := range res.Contents {
			if obj.Key == key || strings.HasPrefix(obj.Key, key+"/") {
				keys = append(keys, obj.Key)
				mayHoldUpload = mayHoldUpload || isUploadRecordSize(obj.Size)
			}
		}
		if !res.IsTruncated {
			break
		}
		// Go on under "key/" only, skipping siblings such as "key-x/...".
		opt.Prefix = key + "/"
		opt.Marker = max(res.NextMarker, key+"/")
	}
	if len(keys) == 0 {
		return storagedriver.PathNotFoundError{Path: path}
	}
	if err := d.deleteKeys(ctx, keys); err != nil {
		return err
	}
	if !mayHoldUpload {
		return nil
	}
	return d.abortUploads(ctx, key)
}

func (d *driver) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), maxDeleteBatch)
		batch := make([]cossdk.Object, n)
		for i, k := range keys[:n] {
			batch[i] = cossdk.Object{Key: k}
		}
		keys = keys[n:]
		var result *cossdk.ObjectDeleteMultiResult
		err := d.do(ctx, "DeleteMultipleObjects", batch[0].Key, func(ctx context.Context) (*cossdk.Response, error) {
			var resp *cossdk.Response
			var err error
			result, resp, err = d.bucketClient.Object.DeleteMulti(ctx, &cossdk.ObjectDeleteMultiOptions{Quiet: true, Objects: batch})
			return resp, err
		})
		if err != nil {
			return err
		}
		if len(result.Errors) > 0 {
			errs := storagedriver.Errors{DriverName: DriverName}
			for _, e := range result.Errors {
				errs.Errs = append(errs.Errs, fmt.Errorf("delete %s: %s: %s", e.Key, e.Code, e.Message))
			}
			return errs
		}
	}
	return nil
}
