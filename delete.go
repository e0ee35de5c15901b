package cos

import (
	"context"
	"fmt"
	"path"
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
// listed is looked up by name (HEAD); a tree none of which is listed is
// found through a marker Delete writes under it and waits to see listed;
// and after a tree is deleted it is listed again until the listing no
// longer shows the keys just deleted. Such a listing reflects a moment
// after the delete, so it shows every key written before it; those are
// deleted too. The registry deletes trees whose children it writes from
// several replicas (_uploads/<id>/ with startedat, data and
// hashstates/<alg>/<offset>; tag and repository directories), so naming
// known children would miss some (hashstate offsets are not known).
//
// Where the registry reads what it deleted by name (a tag's current/link,
// a blob's data, a revision's link) that confirming listing is part of the
// Delete. An upload directory is different: the registry never reads it
// again once it deletes it, every key written there is garbage from then
// on, and it deletes one in every blob commit; so it is confirmed in the
// background (settleUpload), off the push's critical path.
func (d *driver) Delete(ctx context.Context, path string) error {
	key := d.key(path)
	keys, mayHoldUpload, err := d.listTree(ctx, key)
	if err != nil {
		return err
	}
	if slices.Contains(keys, markerOf(key)) {
		// Left by a Delete of key cut short (a crash), or another's in
		// progress (which then waits longer): it goes with the tree.
		if err := d.deleteKeys(ctx, []string{markerOf(key)}); err != nil {
			return err
		}
	}
	keys = slices.DeleteFunc(keys, isDeleteMarker)
	if isUploadDir(key) {
		return d.deleteUpload(ctx, path, key, keys, mayHoldUpload)
	}
	if len(keys) == 0 || (len(keys) == 1 && keys[0] == key) {
		// A file, or nothing listed: a file written within the lag is
		// found by name. Whether it is an upload-state record, and of
		// which upload, is read from the file itself (the listing may not
		// show it, or show an older version of another size), so its
		// upload is aborted rather than left open and billed.
		uploadID, record, err := d.recordedUpload(ctx, key)
		if err == nil {
			if err := d.deleteKeys(ctx, []string{key}); err != nil {
				return err
			}
			if uploadID != "" {
				if err := d.abort(ctx, key, uploadID); err != nil {
					return err
				}
			}
			// Nothing under a file to wait for, but uploads an unreadable
			// record or another version of it may have left, when the
			// file or the listing says it may be one.
			return d.abortUploadsIf(ctx, key, mayHoldUpload || (record && uploadID == ""))
		}
		if !isNotFound(err) {
			return err
		}
		if len(keys) > 0 {
			return d.deleteKeys(ctx, keys) // gone since it was listed
		}
		// Nothing listed and no such file: a tree written within the
		// lag looks the same as no tree at all. A marker written now
		// tells when the listing has caught up with this call.
		found, _, err := d.awaitListing(ctx, key, listingWait{marker: markerOf(key)})
		if err != nil {
			return err
		}
		if !found {
			return storagedriver.PathNotFoundError{Path: path}
		}
		return d.abortUploads(ctx, key)
	}
	if err := d.deleteKeys(ctx, keys); err != nil {
		return err
	}
	if _, _, err := d.awaitListing(ctx, key, listingWait{deleted: keys}); err != nil {
		return err
	}
	// Always, not only when an upload-state record was listed: Move's
	// multipart copy to a blob's data, cut short by a crash, leaves an
	// upload with no record, which only this (when the garbage collector
	// deletes the blob) or the bucket's lifecycle rule removes.
	return d.abortUploads(ctx, key)
}

// isUploadDir reports whether key is an upload directory of the registry,
// <repository>/_uploads/<id>.
func isUploadDir(key string) bool {
	return path.Base(path.Dir(key)) == "_uploads"
}

// deleteUpload deletes the upload directory at key, of which the first
// listing showed keys: those at once, then the rest in the background.
// Its startedat goes last, after the listing has caught up: the upload
// purger finds what to purge by it, so a Delete cut short (a crash, a
// replica stopped before its background work ended) leaves a directory
// the purger still removes. An upload directory is never written again
// under the same id, so whatever the background finds there later is the
// deleted upload's.
func (d *driver) deleteUpload(ctx context.Context, path, key string, keys []string, mayHoldUpload bool) error {
	startedAt := key + "/startedat"
	anchored := slices.Contains(keys, startedAt)
	if !anchored {
		// Not listed yet: written within the lag, or gone.
		_, err := d.head(ctx, startedAt)
		if err != nil && !isNotFound(err) {
			return err
		}
		anchored = err == nil
	}
	if len(keys) == 0 && !anchored {
		return storagedriver.PathNotFoundError{Path: path}
	}
	first := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == startedAt })
	if err := d.deleteKeys(ctx, first); err != nil {
		return err
	}
	// A listed upload-state record's multipart upload is listed too (it
	// was initiated before the record was written): abort it now.
	if err := d.abortUploadsIf(ctx, key, mayHoldUpload); err != nil {
		return err
	}
	d.background.start(ctx, "settling deleted upload directory "+key, func(ctx context.Context) error {
		return d.settleUpload(ctx, key, first, anchored)
	})
	return nil
}

// settleUpload deletes what the first listing of a deleted upload
// directory missed: it waits for a listing that shows the delete (or, when
// nothing had been listed to delete, a marker written now), deletes the
// keys it shows, aborts the multipart uploads under the directory, and
// deletes startedat last (if
// anchored: it was there).
func (d *driver) settleUpload(ctx context.Context, key string, deleted []string, anchored bool) error {
	startedAt := key + "/startedat"
	marker := ""
	if len(deleted) == 0 {
		marker = markerOf(key)
	}
	if _, _, err := d.awaitListing(ctx, key, listingWait{deleted: deleted, marker: marker, keep: startedAt, firstWait: backgroundFirstWait}); err != nil {
		return err
	}
	// Always, off the push's path: a record rebuilt on the server
	// (writer.go extendRecord) by a process killed before its Complete
	// leaves a multipart upload at the data key that no record names once
	// the upload was committed and moved elsewhere.
	if err := d.abortUploads(ctx, key); err != nil {
		return err
	}
	if !anchored {
		return nil
	}
	return d.deleteKeys(ctx, []string{startedAt})
}

func (d *driver) abortUploadsIf(ctx context.Context, key string, mayHoldUpload bool) error {
	if !mayHoldUpload {
		return nil
	}
	return d.abortUploads(ctx, key)
}

// Bounds of the waits for a listing to catch up.
const (
	// maxSettle bounds how long a Delete (or its background part) waits
	// for a listing to show its delete; the waits double. What is written
	// under the tree after the bound is left to the upload purger.
	maxSettle = 20 * time.Second
	// maxSettleWait bounds one wait, so a listing that catches up is
	// seen soon after.
	maxSettleWait = 2 * time.Second
	// backgroundFirstWait is the first wait of the background part: a
	// listing right after the delete would show it only without lag, and
	// without lag one listing a moment later suffices.
	backgroundFirstWait = 250 * time.Millisecond
	// maxBackground bounds the background parts a driver runs at once;
	// beyond it a Delete does its part before it returns (background.go).
	maxBackground = 256
)

// listingWait says what awaitListing waits for. The zero value waits for
// nothing in particular: one listing, at once.
type listingWait struct {
	// deleted are keys deleted just before: the listing has caught up
	// when it shows none of them.
	deleted []string
	// marker, unless "", is written first: the listing has caught up when
	// it shows it. It is deleted whatever ends the wait.
	marker string
	// keep is a key the caller deletes itself, left alone when listed.
	keep string
	// firstWait is the wait before the first listing.
	firstWait time.Duration
}

// awaitListing lists the tree under key until the listing reflects a
// moment after this call, as w says. On the way it deletes every listed
// key not deleted yet (keys an earlier listing missed) but w.keep and
// w.marker; found tells whether there were such keys. The first wait is
// w.firstWait, then 50ms, and the waits double up to maxSettleWait, for at
// most maxSettle in all.
//
// A key deleted here and written again meanwhile keeps being listed, so
// the wait runs to maxSettle; it is not deleted again.
func (d *driver) awaitListing(ctx context.Context, key string, w listingWait) (found, mayHoldUpload bool, err error) {
	gone := make(map[string]bool, len(w.deleted))
	for _, k := range w.deleted {
		gone[k] = true
	}
	marker, keep := w.marker, w.keep
	if marker != "" {
		// The marker goes whatever ends the wait (an error, the caller
		// giving up): one left would be there for good.
		defer func() {
			if derr := d.deleteKeys(context.WithoutCancel(ctx), []string{marker}); err == nil {
				err = derr
			}
		}()
		if err := d.putObject(ctx, marker, nil); err != nil {
			return false, false, err
		}
	}
	waited, wait := time.Duration(0), w.firstWait
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return found, mayHoldUpload, ctx.Err()
			case <-time.After(wait):
			}
			waited += wait
		}
		wait = min(max(2*wait, 50*time.Millisecond), maxSettleWait)
		keys, upload, err := d.listTree(ctx, key)
		if err != nil {
			return found, mayHoldUpload, err
		}
		var fresh []string
		caughtUp := marker == "" || slices.Contains(keys, marker)
		for _, k := range keys {
			switch {
			case k == keep || isDeleteMarker(k): // this Delete's or another's
			case gone[k]:
				caughtUp = false
			default:
				fresh = append(fresh, k)
				gone[k] = true
			}
		}
		if len(fresh) > 0 {
			found = true
			mayHoldUpload = mayHoldUpload || upload
			if err := d.deleteKeys(ctx, fresh); err != nil {
				return found, mayHoldUpload, err
			}
		}
		if caughtUp || waited >= maxSettle {
			return found, mayHoldUpload, nil
		}
	}
}

// deleteMarkerSuffix makes the key of the marker Delete writes beside a
// tree it found nothing of (markerOf), to learn when a listing reflects a
// moment after the call. The marker is no registry data: '!' is in no
// path the registry writes, so the marker never names a path (a tag, a
// repository) and listings drop it (isDeleteMarker); and, sorting before
// every other character of a path, it comes first in a listing of the
// tree, right after the key itself.
const deleteMarkerSuffix = "!registry-cos-delete-marker"

// markerOf is the key of the marker of a Delete of the tree at key: beside
// it, not under it, so that while it exists no listing shows a directory
// there.
func markerOf(key string) string { return key + deleteMarkerSuffix }

func isDeleteMarker(key string) bool { return strings.HasSuffix(key, deleteMarkerSuffix) }

// listTree lists key and the keys under "key/", and whether one of them
// may be an upload-state record.
func (d *driver) listTree(ctx context.Context, key string) (keys []string, mayHoldUpload bool, err error) {
	opt := &cossdk.BucketGetOptions{Prefix: key, MaxKeys: maxListKeys}
	for {
		res, err := d.listWithMarkers(ctx, opt)
		if err != nil {
			return nil, false, err
		}
		for _, obj := range res.Contents {
			if obj.Key == key || strings.HasPrefix(obj.Key, key+"/") || obj.Key == markerOf(key) {
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
