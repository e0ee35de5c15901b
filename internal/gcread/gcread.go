// Package gcread is the storage driver registry-cos garbage-collect runs
// the upstream collector on.
package gcread

import (
	"context"
	"maps"
	"strings"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Driver is the storage driver the garbage collector runs on: it answers
// a repeated read of a content-addressed path from the first answer. The
// collector's mark phase reads every manifest revision link and every
// layer link two or three times, and Stats each blob it reaches twice,
// one request after another: at 20 ms per COS request that was half of
// its wall time. What such a path holds never changes (a link's content
// is the digest its path names, a blob's data is its digest's), so the
// only change to miss is its deletion: by the collector itself (Delete
// forgets what it removes) or by a registry that is not read-only, as the
// collector requires; a blob then looks used and is kept, the safe side.
// Errors are never remembered.
type Driver struct {
	storagedriver.StorageDriver

	mu      sync.Mutex
	content map[string][]byte
	stats   map[string]storagedriver.FileInfo
}

// New wraps d.
func New(d storagedriver.StorageDriver) *Driver {
	return &Driver{StorageDriver: d, content: map[string][]byte{}, stats: map[string]storagedriver.FileInfo{}}
}

// ContentAddressed reports whether what path holds is fixed by its name:
// a blob's data, a manifest revision link, a layer link.
func ContentAddressed(path string) bool {
	return (strings.Contains(path, "/blobs/") && strings.HasSuffix(path, "/data")) ||
		((strings.Contains(path, "/_manifests/revisions/") || strings.Contains(path, "/_layers/")) && strings.HasSuffix(path, "/link"))
}

func (g *Driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	if !ContentAddressed(path) {
		return g.StorageDriver.GetContent(ctx, path)
	}
	g.mu.Lock()
	content, ok := g.content[path]
	g.mu.Unlock()
	if ok {
		return content, nil
	}
	content, err := g.StorageDriver.GetContent(ctx, path)
	if err == nil {
		g.mu.Lock()
		g.content[path] = content
		g.mu.Unlock()
	}
	return content, err
}

func (g *Driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	if !ContentAddressed(path) {
		return g.StorageDriver.Stat(ctx, path)
	}
	g.mu.Lock()
	fi, ok := g.stats[path]
	g.mu.Unlock()
	if ok {
		return fi, nil
	}
	fi, err := g.StorageDriver.Stat(ctx, path)
	if err == nil {
		g.mu.Lock()
		g.stats[path] = fi
		g.mu.Unlock()
	}
	return fi, err
}

// Delete forgets everything at and under path, then deletes it.
func (g *Driver) Delete(ctx context.Context, path string) error {
	under := func(p string) bool { return p == path || strings.HasPrefix(p, path+"/") }
	g.mu.Lock()
	maps.DeleteFunc(g.content, func(p string, _ []byte) bool { return under(p) })
	maps.DeleteFunc(g.stats, func(p string, _ storagedriver.FileInfo) bool { return under(p) })
	g.mu.Unlock()
	return g.StorageDriver.Delete(ctx, path)
}
