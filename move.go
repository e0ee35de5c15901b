package cos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

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
		if head, err = d.headContent(ctx, src, sourcePath); err != nil {
			return err
		}
	}
	if src == dst {
		// A copy onto itself then a delete would lose the only copy:
		// the content is already where it is asked to be.
		return nil
	}
	// The destination holds an upload in progress: its writer may be
	// growing the record (a multipart upload at dst whose Complete COS
	// cannot make conditional) while the copy runs.
	ontoUpload := (<-dstHead).uploadSize >= 0
	if pinned {
		err = d.copy(ctx, src, dst, head, head.etag)
		if statusOf(err) == http.StatusPreconditionFailed || isNotFound(err) {
			// Changed or removed since the Stat: look again.
			if head, err = d.headContent(ctx, src, sourcePath); err != nil {
				return err
			}
			err = d.copy(ctx, src, dst, head, "")
		}
	} else {
		err = d.copy(ctx, src, dst, head, "")
	}
	if err != nil {
		return err
	}
	if ontoUpload {
		if err := d.replaceUpload(ctx, dst, head); err != nil {
			return fmt.Errorf("cos: move of %s to %s: %w", sourcePath, destPath, err)
		}
	}
	return d.deleteObject(ctx, src)
}

// replaceUpload makes a Move onto an upload in progress win over that
// upload, once the copy to dst (of the source as head describes it) is
// done: it aborts every multipart upload at dst (the upload's own, so its
// Commit fails, and any growing its record, so that record cannot land
// over the copy; a growth started after the copy fails anyway, its copy of
// the old record being pinned to that record's ETag), then checks with
// HEAD that dst is still the copy. If a record landed first, the Move
// fails and the source stays.
func (d *driver) replaceUpload(ctx context.Context, dst string, head objectHead) error {
	if err := d.abortUploadsOf(ctx, dst, nil, time.Time{}); err != nil {
		return err
	}
	got, err := d.head(ctx, dst)
	if err != nil {
		return err
	}
	if got.uploadSize >= 0 || got.size != head.size || (head.crc64 != "" && got.crc64 != head.crc64) {
		return errors.New("an upload in progress there replaced the copy; the source is kept")
	}
	return nil
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
		h := &cossdk.ObjectCopyHeaderOptions{
			XCosStorageClass:      d.storageClass(dst, head.size),
			XCosCopySourceIfMatch: ifMatch,
			XOptionHeader:         d.encryptionHeader(),
		}
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
// Copy requests, so objects above COS's 5 GB single-copy limit move too.
// The first failure stops the copies not yet sent, and the upload is
// aborted.
func (d *driver) multipartCopy(ctx context.Context, src, dst string, head objectHead, ifMatch string) error {
	chunk, err := copyPartSize(head.size, d.params.MultipartCopyChunkSize, cmp.Or(d.maxParts, maxPartCount))
	if err != nil {
		return fmt.Errorf("cos: copy of %s to %s: %w", src, dst, err)
	}
	uploadID, err := d.initiate(ctx, dst, nil)
	if err != nil {
		return err
	}
	count := int((head.size + chunk - 1) / chunk)
	parts := make([]cossdk.Object, count)
	copying, stop := context.WithCancel(ctx)
	defer stop()
	var failed sync.Once
	numbers := make(chan int)
	var wg sync.WaitGroup
	for range min(count, d.params.MaxConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range numbers {
				first := int64(i) * chunk
				last := min(first+chunk, head.size) - 1
				etag, cerr := d.copyPart(copying, partCopy{dst: dst, uploadID: uploadID, number: i + 1, src: src, first: first, n: last - first + 1, ifMatch: ifMatch})
				if cerr != nil {
					failed.Do(func() { err = cerr; stop() })
				}
				parts[i] = cossdk.Object{PartNumber: i + 1, ETag: etag}
			}
		}()
	}
	go func() {
		defer close(numbers)
		for i := range count {
			select {
			case numbers <- i:
			case <-copying.Done():
				return
			}
		}
	}()
	wg.Wait()
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

// copyPartSize is the part size of a multipart copy of size bytes:
// multipartcopychunksize, or more (whole MiB) where that would take more
// than limit parts (COS: part numbers 1 to 10,000); each part at most
// 5 GiB.
func copyPartSize(size, chunk int64, limit int) (int64, error) {
	if (size+chunk-1)/chunk <= int64(limit) {
		return chunk, nil
	}
	part := (size + int64(limit) - 1) / int64(limit)
	part = (part + mib - 1) / mib * mib
	if part > maxPartSize {
		return 0, fmt.Errorf("%d bytes take more than %d parts of at most %d bytes", size, limit, int64(maxPartSize))
	}
	return part, nil
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
