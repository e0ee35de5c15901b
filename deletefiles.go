package cos

import (
	"context"
	"strings"
)

// DeleteFiles removes the files at paths: exactly those keys, nothing under
// them, in quiet multi-object deletes of up to 1,000 keys a request. The
// multipart uploads open at the blob data keys among them (a server-side
// copy of a large blob that was cut short leaves one) are aborted, found
// with one upload listing under the prefix those keys share.
//
// It is for a caller that listed what it deletes and knows nothing writes
// there meanwhile, the garbage collector: unlike Delete it neither lists a
// tree nor waits for a lagging listing, so deleting n files costs about
// n/1000 requests instead of two or more each.
func (d *Driver) DeleteFiles(ctx context.Context, paths []string) error {
	dr := d.Base.StorageDriver.(*driver)
	keys := make([]string, len(paths))
	data := map[string]bool{}
	prefix := ""
	for i, p := range paths {
		keys[i] = dr.key(p)
		// Only blob data is ever written with a multipart upload (links,
		// tags and startedat are single PUTs; upload-state records live
		// under _uploads, which the collector does not delete).
		if strings.HasSuffix(keys[i], "/data") {
			if len(data) == 0 {
				prefix = keys[i]
			} else {
				prefix = commonPrefix(prefix, keys[i])
			}
			data[keys[i]] = true
		}
	}
	if err := dr.deleteKeys(ctx, keys); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	return dr.abortUploadsWhere(ctx, prefix, func(key string) bool { return data[key] })
}

// commonPrefix is the longest prefix a and b share.
func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}
