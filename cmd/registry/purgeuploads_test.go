package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestPurgeUploads starts two uploads, one holding a multipart upload (a
// chunk larger than a part): purge-uploads --dry-run reports both and
// deletes nothing, --older-than 1h spares them, and a real run deletes
// both directories, startedat included, and aborts the multipart upload.
func TestPurgeUploads(t *testing.T) {
	ctx := testContext(t)
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, emulator, registryOptions{})
	patchChunk(t, startUpload(t, reg, "p/a"), bytes.Repeat([]byte("x"), testChunkSize+1000), 0)
	patchChunk(t, startUpload(t, reg, "p/b"), []byte("small"), 0)
	if open := openMultipartUploads(t, emulator); len(open) != 1 {
		t.Fatalf("%d multipart uploads open before the purge (%v), want 1", len(open), open)
	}
	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, registryOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	driver, err := storageDriver(ctx, config)
	if err != nil {
		t.Fatal(err)
	}
	uploadFiles := func() int {
		n := 0
		for _, repo := range []string{"p/a", "p/b"} {
			err := driver.Walk(ctx, "/docker/registry/v2/repositories/"+repo+"/_uploads", func(fi storagedriver.FileInfo) error {
				if !fi.IsDir() {
					n++
				}
				return nil
			})
			if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
				t.Fatal(err)
			}
		}
		return n
	}
	before := uploadFiles()

	var out strings.Builder
	dirs, err := purgeUploads(ctx, config, 0, true, &out)
	if err != nil || len(dirs) != 2 || !strings.Contains(out.String(), "2 upload directories started more than 0s ago eligible for deletion") {
		t.Fatalf("purge-uploads --dry-run: %v, %v, printed:\n%s", dirs, err, out.String())
	}
	if uploadFiles() != before || len(openMultipartUploads(t, emulator)) != 1 {
		t.Fatal("purge-uploads --dry-run deleted something")
	}
	if dirs, err := purgeUploads(ctx, config, time.Hour, false, &out); err != nil || len(dirs) != 0 {
		t.Fatalf("purge-uploads --older-than 1h: %v, %v; want nothing (the uploads are seconds old)", dirs, err)
	}

	out.Reset()
	dirs, err = purgeUploads(ctx, config, 0, false, &out)
	if err != nil || len(dirs) != 2 || !strings.Contains(out.String(), "2 upload directories started more than 0s ago deleted") {
		t.Fatalf("purge-uploads: %v, %v, printed:\n%s", dirs, err, out.String())
	}
	if n := uploadFiles(); n != 0 {
		t.Errorf("%d files left under _uploads after purge-uploads", n)
	}
	if open := openMultipartUploads(t, emulator); len(open) != 0 {
		t.Errorf("multipart uploads left open after purge-uploads: %v", open)
	}
}
