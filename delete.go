package cos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Delete removes path and everything under "path/" (never a sibling such
// as "path-x"), in quiet batches of 1000, and aborts the multipart uploads
// under it so no parts are left behind. A tree is usually found with one
// listing: the key itself sorts first among the keys it prefixes.
//
// Listings may lag behind writes (another replica's PUT a moment ago is
// not listed yet; the emulator's ListLag plays this), so Delete removes
// what was written before it was called, lag or no lag: a key that is not
// listed is looked up by name (HEAD), and after a tree is deleted it is
// listed again until the listing no longer shows the keys just deleted.
// Such a listing reflects a moment after the delete, so it shows every key
// written before it; those are deleted too. Without lag this costs one
// more listing per tree. The registry deletes trees whose children it
// writes from several replicas (_uploads/<id>/ with startedat, data and
// hashstates/<alg>/<offset>; tag and repository directories), so naming
// known children would miss some (hashstate offsets are not known).
func (d *driver) Delete(ctx context.Context, path string) error {
	key := d.key(path)
	keys, mayHoldUpload, err := d.listTree(ctx, key)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		_, err := d.head(ctx, key)
		if err == nil {
			return d.deleteKeys(ctx, []string{key})
		}
		if !isNotFound(err) {
			return err
		}
		// Nothing listed and no such file: a tree written within the
		// lag looks the same as no tree at all. A marker written now
		// tells when the listing has caught up with this call.
		if keys, mayHoldUpload, err = d.listAfterMarker(ctx, key); err != nil {
			return err
		}
		if len(keys) == 1 {
			if err := d.deleteKeys(ctx, keys); err != nil {
				return err
			}
			return storagedriver.PathNotFoundError{Path: path}
		}
	}
	// An upload directory's startedat goes last: the upload purger finds
	// what to purge by it, so keys left by a Delete cut short (a crash)
	// stay purgeable.
	startedAt := key + "/startedat"
	anchored := slices.Contains(keys, startedAt)
	first := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == startedAt })
	if len(first) > 0 {
		if err := d.deleteKeys(ctx, first); err != nil {
			return err
		}
	}
	if len(keys) == 1 && keys[0] == key {
		return nil // a file: nothing under it to wait for
	}
	if err := d.settleTree(ctx, key, first, startedAt, &mayHoldUpload); err != nil {
		return err
	}
	if anchored {
		if err := d.deleteKeys(ctx, []string{startedAt}); err != nil {
			return err
		}
	}
	if !mayHoldUpload {
		return nil
	}
	return d.abortUploads(ctx, key)
}

// maxSettle bounds how long Delete waits for a listing to show its delete
// (the waits double from 50ms). What is written under the tree after the
// bound is left to the upload purger.
const maxSettle = 20 * time.Second

// settleTree lists the tree under key again until the listing no longer
// shows any of the deleted keys, deleting what it shows that was not
// deleted yet (keys the first listing missed) but keep, which the caller
// deletes last.
func (d *driver) settleTree(ctx context.Context, key string, deleted []string, keep string, mayHoldUpload *bool) error {
	gone := make(map[string]bool, len(deleted))
	for _, k := range deleted {
		gone[k] = true
	}
	wait := time.Duration(0)
	for waited := time.Duration(0); waited <= maxSettle; waited += wait {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		wait = max(2*wait, 50*time.Millisecond)
		keys, upload, err := d.listTree(ctx, key)
		if err != nil {
			return err
		}
		var fresh []string
		stale := false
		for _, k := range keys {
			if k == keep {
				continue
			}
			if gone[k] {
				stale = true
			} else {
				fresh = append(fresh, k)
				gone[k] = true
			}
		}
		if len(fresh) > 0 {
			*mayHoldUpload = *mayHoldUpload || upload
			if err := d.deleteKeys(ctx, fresh); err != nil {
				return err
			}
		}
		if !stale {
			return nil
		}
	}
	return nil
}

// deleteMarker names the object Delete writes under a tree it found
// nothing of, to learn when a listing reflects a moment after the call.
const deleteMarker = ".registry-cos-delete-marker"

// listAfterMarker writes a marker under "key/" and lists the tree until
// the listing shows it; the keys returned include the marker.
func (d *driver) listAfterMarker(ctx context.Context, key string) ([]string, bool, error) {
	marker := key + "/" + deleteMarker
	if err := d.putObject(ctx, marker, nil, nil); err != nil {
		return nil, false, err
	}
	wait := time.Duration(0)
	for waited := time.Duration(0); ; waited += wait {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil, false, ctx.Err()
			case <-time.After(wait):
			}
		}
		wait = max(2*wait, 50*time.Millisecond)
		keys, mayHoldUpload, err := d.listTree(ctx, key)
		if err != nil || slices.Contains(keys, marker) {
			return keys, mayHoldUpload, err
		}
		if waited > maxSettle {
			return append(keys, marker), mayHoldUpload, nil
		}
	}
}

// listTree lists key and the keys under "key/", and whether one of them
// may be an upload-state record.
func (d *driver) listTree(ctx context.Context, key string) (keys []string, mayHoldUpload bool, err error) {
	opt := &cossdk.BucketGetOptions{Prefix: key, MaxKeys: maxListKeys}
	for {
		res, err := d.list(ctx, opt)
		if err != nil {
			return nil, false, err
		}
		for _, obj := range res.Contents {
			if obj.Key == key || strings.HasPrefix(obj.Key, key+"/") {
				keys = append(keys, obj.Key)
				mayHoldUpload = mayHoldUpload || isUploadRecordSize(obj.Size)
			}
		}
		if !res.IsTruncated {
			return keys, mayHoldUpload, nil
		}
		// Go on under "key/" only, skipping siblings such as "key-x/...".
		opt.Prefix = key + "/"
		opt.Marker = max(res.NextMarker, key+"/")
	}
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
