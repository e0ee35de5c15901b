package cos

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Move copies sourcePath to destPath on the server (in parallel parts above
// multipartcopythreshold), then deletes the source key.
//
// The registry Stats the source right before it moves it; a source whose
// Stat this driver answered is copied without a HEAD of its own, pinned to
// the ETag that Stat saw (x-cos-copy-source-If-Match): if another process
// changed or removed the source since, the copy fails and Move looks again.
func (d *driver) Move(ctx context.Context, sourcePath, destPath string) error {
	src, dst := d.key(sourcePath), d.key(destPath)
	// The destination may hold an upload in progress, whose state record
	// the copy replaces: nothing could find that upload to abort it then.
	// Its HEAD runs alongside the source's when the source needs one; after
	// the registry's Stat of the source it is the one serial request
	// before the copy (an answer remembered from an earlier Stat of the
	// destination could be stale: another process may have started an
	// upload there since).
	dstHead := make(chan objectHead, 1)
	if src != dst {
		go func() {
			h, err := d.head(ctx, dst)
			if err != nil {
				h.uploadSize = -1 // nothing there, or nothing known to abort
			}
			dstHead <- h
		}()
	}
	head, pinned := d.heads.take(src)
	pinned = pinned && head.uploadSize < 0 && head.etag != ""
	var err error
	if !pinned {
		if head, err = d.head(ctx, src); err != nil {
			if isNotFound(err) {
				return storagedriver.PathNotFoundError{Path: sourcePath}
			}
			return err
		}
	}
	if head.uploadSize >= 0 {
		return storagedriver.PathNotFoundError{Path: sourcePath}
	}
	if src == dst {
		// A copy onto itself then a delete would lose the only copy:
		// the content is already where it is asked to be.
		return nil
	}
	var replaced string // the upload whose record the copy replaces
	if h := <-dstHead; h.uploadSize >= 0 {
		if replaced, err = d.recordedUpload(ctx, dst); err != nil {
			return err
		}
	}
	if pinned {
		err = d.copy(ctx, src, dst, head, head.etag)
		if statusOf(err) == http.StatusPreconditionFailed || isNotFound(err) {
			// Changed or removed since the Stat: look again.
			if head, err = d.head(ctx, src); err != nil {
				if isNotFound(err) {
					return storagedriver.PathNotFoundError{Path: sourcePath}
				}
				return err
			}
			if head.uploadSize >= 0 {
				return storagedriver.PathNotFoundError{Path: sourcePath}
			}
			err = d.copy(ctx, src, dst, head, "")
		}
	} else {
		err = d.copy(ctx, src, dst, head, "")
	}
	if err != nil {
		return err
	}
	if replaced != "" {
		if err := d.abort(ctx, dst, replaced); err != nil {
			return err
		}
	}
	return d.deleteObject(ctx, src)
}

// copy copies src, as head describes it, to dst; with ifMatch set, only
// the source version of that ETag.
func (d *driver) copy(ctx context.Context, src, dst string, head objectHead, ifMatch string) error {
	// Validate caps the threshold at COS's 5 GB single-copy limit.
	if head.size > d.params.MultipartCopyThreshold {
		return d.multipartCopy(ctx, src, dst, head, ifMatch)
	}
	return d.copyObject(ctx, src, dst, head, ifMatch)
}

// copySource is the x-cos-copy-source value of key.
func (d *driver) copySource(key string) string {
	return d.endpoints.copySourceHost + "/" + key
}

// copyObject copies src to dst in one request.
func (d *driver) copyObject(ctx context.Context, src, dst string, head objectHead, ifMatch string) error {
	var result *cossdk.ObjectCopyResult
	err := d.do(ctx, "CopyObject", dst, func(ctx context.Context) (*cossdk.Response, error) {
		h := &cossdk.ObjectCopyHeaderOptions{XCosStorageClass: d.storageClass(dst, head.size), XCosCopySourceIfMatch: ifMatch}
		d.encryption(func(name, value string) {
			if h.XOptionHeader == nil {
				h.XOptionHeader = &http.Header{}
			}
			h.XOptionHeader.Set(name, value)
		})
		var resp *cossdk.Response
		var err error
		result, resp, err = d.client.Object.Copy(ctx, dst, d.copySource(src), &cossdk.ObjectCopyOptions{ObjectCopyHeaderOptions: h})
		if err == nil && result != nil && result.CRC64 != "" && head.crc64 != "" && result.CRC64 != head.crc64 {
			return resp, &localError{fmt.Errorf("cos: copy of %s to %s: CRC64 %s does not match the source's %s", src, dst, result.CRC64, head.crc64)}
		}
		return resp, err
	})
	return err
}

// multipartCopy copies src to dst on the server in parallel Upload Part -
// Copy requests of multipartcopychunksize, so objects above COS's 5 GB
// single-copy limit move too. A failed copy aborts its upload.
func (d *driver) multipartCopy(ctx context.Context, src, dst string, head objectHead, ifMatch string) error {
	uploadID, err := d.initiate(ctx, dst, nil)
	if err != nil {
		return err
	}
	chunk := d.params.MultipartCopyChunkSize
	count := int((head.size + chunk - 1) / chunk)
	parts := make([]cossdk.Object, count)
	errs := make(chan error, count)
	numbers := make(chan int)
	var wg sync.WaitGroup
	for range min(count, d.params.MaxConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range numbers {
				first := int64(i) * chunk
				last := min(first+chunk, head.size) - 1
				etag, err := d.copyPart(ctx, dst, uploadID, i+1, src, first, last-first+1, ifMatch, "")
				parts[i] = cossdk.Object{PartNumber: i + 1, ETag: etag}
				errs <- err
			}
		}()
	}
	go func() {
		defer close(numbers)
		for i := range count {
			select {
			case numbers <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		_, err = d.complete(ctx, dst, uploadID, parts, completion{size: head.size, crc64: head.crc64, describe: "copy of " + src + " to " + dst})
	}
	if err != nil {
		_ = d.abort(context.WithoutCancel(ctx), dst, uploadID)
		return err
	}
	return nil
}

// headMemo holds the HEAD answers of the last Stats, a few at most: the
// registry's Move follows its Stat of the same key within one request.
type headMemo struct {
	mu    sync.Mutex
	heads map[string]objectHead
}

const headMemoSize = 64

func (m *headMemo) put(key string, h objectHead) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heads == nil {
		m.heads = map[string]objectHead{}
	}
	if _, ok := m.heads[key]; !ok && len(m.heads) >= headMemoSize {
		for k := range m.heads { // forget any one
			delete(m.heads, k)
			break
		}
	}
	m.heads[key] = h
}

// take returns and forgets the remembered HEAD of key.
func (m *headMemo) take(key string) (objectHead, bool) {
	if m == nil {
		return objectHead{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.heads[key]
	delete(m.heads, key)
	return h, ok
}
