// Package gcdriver is the storage driver registry-cos garbage-collect runs
// the upstream collector on. The collector makes one storage request after
// another; where COS is far away (20 ms a request) that, not bandwidth,
// is its wall time. Driver cuts what the collector does not need and runs
// its blob deletes side by side.
package gcdriver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// Driver answers a repeated read of a content-addressed path from the
// first answer: the collector's mark phase reads every manifest revision
// link three times and every layer link twice, and Stats each manifest
// blob twice. What such a path holds never changes (a link's content is
// the digest its path names, a blob's data is its digest's), so the only
// change to miss is its deletion: by the collector itself (Delete forgets
// what it removes) or by a registry that is not read-only, as the
// collector requires; a blob then looks used and is kept, the safe side.
// Errors are never remembered.
//
// The sweep deletes unreferenced blobs one by one (a listing and a delete
// each); Driver runs those deletes in the background, Workers at once, and
// Wait reports their errors.
type Driver struct {
	storagedriver.StorageDriver

	mu      sync.Mutex
	content map[string][]byte
	stats   map[string]storagedriver.FileInfo

	deletes sync.WaitGroup
	slots   chan struct{}
	errs    []error
}

// Workers is how many blob deletes run at once.
const Workers = 10

// New wraps d.
func New(d storagedriver.StorageDriver) *Driver {
	return &Driver{
		StorageDriver: d,
		content:       map[string][]byte{},
		stats:         map[string]storagedriver.FileInfo{},
		slots:         make(chan struct{}, Workers),
	}
}

// ContentAddressed reports whether what path holds is fixed by its name:
// a blob's data, a manifest revision link, a layer link.
func ContentAddressed(path string) bool {
	return (strings.Contains(path, "/blobs/") && strings.HasSuffix(path, "/data")) ||
		((strings.Contains(path, "/_manifests/revisions/") || strings.Contains(path, "/_layers/")) && strings.HasSuffix(path, "/link"))
}

// blobDir matches a blob's directory in the blob store, what the sweep
// deletes: .../blobs/<algorithm>/<2 hex>/<hex>.
var blobDir = regexp.MustCompile(`/blobs/[a-z0-9]+/[0-9a-f]{2}/[0-9a-f]+$`)

func (g *Driver) GetContent(ctx context.Context, path string) ([]byte, error) {
	return remembered(g, g.content, path, func() ([]byte, error) { return g.StorageDriver.GetContent(ctx, path) })
}

func (g *Driver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	return remembered(g, g.stats, path, func() (storagedriver.FileInfo, error) { return g.StorageDriver.Stat(ctx, path) })
}

// remembered answers read for path from answers, where a content-addressed
// path's first successful answer is kept.
func remembered[T any](g *Driver, answers map[string]T, path string, read func() (T, error)) (T, error) {
	if !ContentAddressed(path) {
		return read()
	}
	g.mu.Lock()
	v, ok := answers[path]
	g.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := read()
	if err == nil {
		g.mu.Lock()
		answers[path] = v
		g.mu.Unlock()
	}
	return v, err
}

// Delete forgets everything at and under path and deletes it: a blob's
// directory in the background (see Wait), anything else before it returns.
func (g *Driver) Delete(ctx context.Context, path string) error {
	under := func(p string) bool { return p == path || strings.HasPrefix(p, path+"/") }
	g.mu.Lock()
	maps.DeleteFunc(g.content, func(p string, _ []byte) bool { return under(p) })
	maps.DeleteFunc(g.stats, func(p string, _ storagedriver.FileInfo) bool { return under(p) })
	g.mu.Unlock()
	if !blobDir.MatchString(path) {
		return g.StorageDriver.Delete(ctx, path)
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.deletes.Add(1)
	go func() {
		defer func() { <-g.slots; g.deletes.Done() }()
		if err := g.StorageDriver.Delete(ctx, path); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("failed to delete blob %s: %w", path, err))
			g.mu.Unlock()
		}
	}()
	return nil
}

// Wait waits for the blob deletes Delete started and returns their errors.
func (g *Driver) Wait() error {
	g.deletes.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}
