package gcdriver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// gate holds every Delete of the driver under it until want of them are
// in flight at once (or a deadline passes), and fails the one it is told.
type gate struct {
	storagedriver.StorageDriver
	want int
	fail string

	mu       sync.Mutex
	inFlight int
	most     int
	all      chan struct{}
	open     sync.Once
}

func (g *gate) Delete(ctx context.Context, path string) error {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	if g.inFlight == g.want {
		g.open.Do(func() { close(g.all) })
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(10 * time.Second): // they do not overlap: let all pass
		g.open.Do(func() { close(g.all) })
	}
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	if path == g.fail {
		return errors.New("injected failure")
	}
	return g.StorageDriver.Delete(ctx, path)
}

func blobPath(i int) string {
	return fmt.Sprintf("/docker/registry/v2/blobs/sha256/%02x/%02x%062x", i, i, i)
}

// TestBlobDeletesRunSideBySide: the sweep's blob deletes run Workers at
// once (the gate opens only when that many are in flight), every blob is
// gone after Wait, and a failed delete is reported by Wait, naming the
// blob, without stopping the others.
func TestBlobDeletesRunSideBySide(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	const blobs = 3 * Workers
	for i := range blobs {
		if err := mem.PutContent(ctx, blobPath(i)+"/data", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	g := &gate{StorageDriver: mem, want: Workers, fail: blobPath(7), all: make(chan struct{})}
	d := New(g)
	for i := range blobs {
		if err := d.Delete(ctx, blobPath(i)); err != nil {
			t.Fatalf("Delete of blob %d: %v", i, err)
		}
	}
	err := d.Wait()
	if err == nil || !containsAll(err.Error(), blobPath(7), "injected failure") {
		t.Fatalf("Wait: %v, want the failure of %s", err, blobPath(7))
	}
	if g.most != Workers {
		t.Fatalf("at most %d blob deletes were in flight at once, want %d", g.most, Workers)
	}
	for i := range blobs {
		_, err := mem.Stat(ctx, blobPath(i)+"/data")
		if gone := errors.As(err, new(storagedriver.PathNotFoundError)); gone == (i == 7) {
			t.Fatalf("blob %d: Stat after the sweep: %v", i, err)
		}
	}
}

// TestOtherDeletesAreImmediate: a Delete of anything but a blob directory
// (a manifest's links, a repository) is done when Delete returns.
func TestOtherDeletesAreImmediate(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	link := "/docker/registry/v2/repositories/a/_manifests/revisions/sha256/" + fmt.Sprintf("%064x", 1)
	if err := mem.PutContent(ctx, link+"/link", []byte("sha256:1")); err != nil {
		t.Fatal(err)
	}
	d := New(mem)
	if err := d.Delete(ctx, link); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Stat(ctx, link+"/link"); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Fatalf("Stat of a deleted link right after Delete: %v", err)
	}
}

// TestDeleteForgetsReads: a content-addressed path read before is read
// again after a Delete at or above it.
func TestDeleteForgetsReads(t *testing.T) {
	ctx := context.Background()
	mem := inmemory.New()
	data := blobPath(1) + "/data"
	if err := mem.PutContent(ctx, data, []byte("x")); err != nil {
		t.Fatal(err)
	}
	d := New(mem)
	if _, err := d.Stat(ctx, data); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetContent(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, blobPath(1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stat(ctx, data); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Fatalf("Stat after Delete: %v, want PathNotFound (not the remembered answer)", err)
	}
	if _, err := d.GetContent(ctx, data); !errors.As(err, new(storagedriver.PathNotFoundError)) {
		t.Fatalf("GetContent after Delete: %v, want PathNotFound", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
