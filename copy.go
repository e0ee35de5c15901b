package cos

import (
	"context"
	"fmt"
	"sync"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// multipartCopy copies src to dst on the server in parallel Upload Part -
// Copy requests of multipartcopychunksize, so objects above COS's 5 GB
// single-copy limit move too. A failed copy aborts its upload.
func (d *driver) multipartCopy(ctx context.Context, src, dst string, head objectHead) error {
	var uploadID string
	err := d.do(ctx, "InitiateMultipartUpload", dst, func(ctx context.Context) (*cossdk.Response, error) {
		res, resp, err := d.client.Object.InitiateMultipartUpload(ctx, dst,
			&cossdk.InitiateMultipartUploadOptions{ObjectPutHeaderOptions: d.putHeaders(-1)})
		if err == nil {
			uploadID = res.UploadID
		}
		return resp, err
	})
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
				errs <- d.do(ctx, "UploadPartCopy", dst, func(ctx context.Context) (*cossdk.Response, error) {
					res, resp, err := d.client.Object.CopyPart(ctx, dst, uploadID, i+1, d.copySource(src),
						&cossdk.ObjectCopyPartOptions{XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", first, last)})
					if err == nil {
						parts[i] = cossdk.Object{PartNumber: i + 1, ETag: res.ETag}
					}
					return resp, err
				})
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
		err = d.do(ctx, "CompleteMultipartUpload", dst, func(ctx context.Context) (*cossdk.Response, error) {
			_, resp, err := d.client.Object.CompleteMultipartUpload(ctx, dst, uploadID, &cossdk.CompleteMultipartUploadOptions{Parts: parts})
			if err == nil && head.crc64 != "" {
				if got := resp.Header.Get("x-cos-hash-crc64ecma"); got != "" && got != head.crc64 {
					return resp, &localError{fmt.Errorf("cos: copy of %s to %s: CRC64 %s does not match the source's %s", src, dst, got, head.crc64)}
				}
			}
			return resp, err
		})
		if err != nil {
			// The Complete may have been applied before its answer was lost.
			if h, herr := d.head(ctx, dst); herr == nil && h.size == head.size && h.crc64 == head.crc64 && head.crc64 != "" {
				return nil
			}
		}
	}
	if err != nil {
		_ = d.abort(context.WithoutCancel(ctx), dst, uploadID)
		return err
	}
	return nil
}
