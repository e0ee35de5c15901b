package costest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// benchPartCopy builds a 256 MiB object of 16 MiB parts, then times Upload
// Part - Copy of it in 32 MiB ranges (the registry's server-side Move), one
// request at a time; ns/part is the cost of one 32 MiB part copy.
func benchPartCopy(b *testing.B, dir string, parallel bool) {
	const (
		objectSize = 256 << 20
		partSize   = 16 << 20
		copySize   = 32 << 20
	)
	srv := startServer(b, Options{Dir: dir})
	c := newClient(b, srv)
	c.Conf.EnableCRC = false
	ctx := context.Background()
	block := randomBytes(partSize, 7)
	parts := make([][]byte, objectSize/partSize)
	for i := range parts {
		parts[i] = block
	}
	id, done := uploadParts(b, c, "bench/src", parts)
	if _, _, err := c.Object.CompleteMultipartUpload(ctx, "bench/src", id, &cos.CompleteMultipartUploadOptions{Parts: done}); err != nil {
		b.Fatal(err)
	}
	src := strings.TrimPrefix(srv.URL, "http://") + "/bench/src"
	b.ResetTimer()
	copies := 0
	for b.Loop() {
		init, _, err := c.Object.InitiateMultipartUpload(ctx, "bench/dst", nil)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, objectSize/copySize)
		for i := range objectSize / copySize {
			first := int64(i) * copySize
			copyPart := func() {
				_, _, err := c.Object.CopyPart(ctx, "bench/dst", init.UploadID, i+1, src,
					&cos.ObjectCopyPartOptions{XCosCopySourceRange: fmt.Sprintf("bytes=%d-%d", first, first+copySize-1)})
				errs <- err
			}
			if parallel {
				wg.Go(copyPart)
			} else {
				copyPart()
			}
			copies++
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		c.Object.AbortMultipartUpload(ctx, "bench/dst", init.UploadID)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(copies), "ns/part")
}

// BenchmarkUploadPartCopy measures the server-side part copy of a registry
// Move: 32 MiB ranges of a 256 MiB object made of 16 MiB parts.
func BenchmarkUploadPartCopy(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchPartCopy(b, "", false) })
	b.Run("disk", func(b *testing.B) { benchPartCopy(b, b.TempDir(), false) })
	b.Run("memory-parallel", func(b *testing.B) { benchPartCopy(b, "", true) })
	b.Run("disk-parallel", func(b *testing.B) { benchPartCopy(b, b.TempDir(), true) })
}
