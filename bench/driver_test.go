package bench

import (
	"context"
	"fmt"
	"io"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// BenchmarkMove moves a 6 GiB blob with the driver's Move on a disk-backed
// emulator: above multipartcopythreshold the copy is a multipart upload of
// Upload Part - Copy requests run in parallel (a single PUT Object - Copy
// is limited to 5 GB on COS), then the source is deleted. The source is
// written through the driver's Writer first, outside the timer. The
// emulator shares the data of a copy with its source, so the move needs the
// disk space of one copy (it reads it all to checksum each part).
func BenchmarkMove(b *testing.B) {
	ctx := context.Background()
	size := scaled[int64](6*gib, 256*mib)
	emulator := newEmulator(b, costest.Faults{})
	if free := freeBytes(b.TempDir()); free >= 0 && free < size+2*gib {
		b.Skipf("needs %d GiB of free disk for the %d GiB blob, %d GiB free", (size+2*gib)/gib, size/gib, free/gib)
	}
	driver := newDriver(b, emulator)

	var stats costest.Stats
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		src := fmt.Sprintf("/bench/move/%d/source", i)
		dst := fmt.Sprintf("/bench/move/%d/destination", i)
		writeStream(b, driver, src, testenv.NewPatternReader(6, size))
		emulator.ResetStats()
		b.StartTimer()
		if err := driver.Move(ctx, src, dst); err != nil {
			b.Fatalf("move %d GiB: %v", size/gib, err)
		}
		b.StopTimer()
		stats = settledStats(emulator)
		if fi, err := driver.Stat(ctx, dst); err != nil || fi.Size() != size {
			b.Fatalf("after the move: stat %s = %v, %v; want %d bytes", dst, fi, err, size)
		}
		if err := driver.Delete(ctx, dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.SetBytes(size)
	reportRequests(b, "move", stats)
	b.Logf("move of %d MiB, COS requests:%s", size/mib, requestTable(stats))
}

// writeStream writes r to path through the driver's Writer and commits it.
func writeStream(b *testing.B, driver storagedriver.StorageDriver, path string, r io.Reader) {
	ctx := context.Background()
	w, err := driver.Writer(ctx, path, false)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		b.Fatalf("write %s: %v", path, err)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatalf("commit %s: %v", path, err)
	}
	if err := w.Close(); err != nil {
		b.Fatalf("close %s: %v", path, err)
	}
}

// BenchmarkDeleteTree deletes a tree of 10,000 small objects (100
// directories of 100 files) with one driver Delete: one listing page and
// one quiet multi-delete per 1,000 keys, plus the check for multipart
// uploads under the tree.
func BenchmarkDeleteTree(b *testing.B) {
	ctx := context.Background()
	dirs, files := scaled(100, 10), 100
	emulator := newEmulator(b, costest.Faults{})
	driver := newDriver(b, emulator)

	var stats costest.Stats
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		root := fmt.Sprintf("/bench/tree-%d", i)
		seedObjects(b, driver, dirs*files, func(j int) (string, []byte) {
			return fmt.Sprintf("%s/dir-%03d/file-%03d", root, j/files, j%files), []byte("x")
		})
		emulator.ResetStats()
		b.StartTimer()
		if err := driver.Delete(ctx, root); err != nil {
			b.Fatalf("delete a tree of %d objects: %v", dirs*files, err)
		}
		b.StopTimer()
		stats = settledStats(emulator)
		if _, err := driver.Stat(ctx, root); err == nil {
			b.Fatalf("%s is still there after Delete", root)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(dirs*files), "objects")
	reportRequests(b, "delete", stats)
	b.Logf("delete of %d objects, COS requests:%s", dirs*files, requestTable(stats))
}

// seedObjects writes n objects through the driver's PutContent, 32 at a
// time; object(i) names the path and content of the i-th.
func seedObjects(b testing.TB, driver storagedriver.StorageDriver, n int, object func(i int) (string, []byte)) {
	ctx := context.Background()
	err := parallel(n, 32, func(i int) error {
		path, content := object(i)
		return driver.PutContent(ctx, path, content)
	})
	if err != nil {
		b.Fatalf("seed %d objects: %v", n, err)
	}
}
