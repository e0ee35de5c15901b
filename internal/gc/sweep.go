package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// fileDeleter is a driver that deletes many named files at once (the cos
// driver: multi-object deletes of a thousand keys).
type fileDeleter interface {
	DeleteFiles(ctx context.Context, paths []string) error
}

// sweep prints upstream's decision lines and, unless DryRun, deletes in
// upstream's order: untagged manifests (their tag index entries, then the
// revision), blobs, layer links.
func (c *collector) sweep(ctx context.Context, inv *inventory, res *Result) error {
	var manifestFiles []string
	for _, m := range res.Manifests {
		r := inv.byName[m.Name]
		for _, tag := range m.Tags {
			if t := r.tags[tag]; t != nil {
				manifestFiles = append(manifestFiles, t.index[m.Digest]...)
			}
		}
		manifestFiles = append(manifestFiles, r.revision(m.Digest).files...)
	}
	c.emit("\n%d blobs marked, %d blobs and %d manifests eligible for deletion", len(res.Marked), len(res.Blobs), len(res.Manifests))
	if len(res.KeptYoung) > 0 {
		c.emit("%d blobs kept: they or a repository link to them were written less than --min-age (%s) ago", len(res.KeptYoung), c.opts.MinAge)
	}
	var blobFiles []string
	for _, dgst := range res.Blobs {
		c.emit("blob eligible for deletion: %s", dgst)
		blobFiles = append(append(blobFiles, blobDataPath(dgst)), inv.blobs[dgst].others...)
	}
	var layerFiles []string
	for _, r := range inv.repos {
		for _, dgst := range res.LayerLinks[r.name] {
			c.emit("%s: layer link eligible for deletion: %s", r.name, dgst)
			layerFiles = append(layerFiles, r.layers[r.layerAt[dgst]].files...)
		}
	}
	if c.opts.DryRun {
		return nil
	}
	c.progress.deletesTotal.Add(int64(len(manifestFiles) + len(blobFiles) + len(layerFiles)))
	if err := c.deleteFiles(ctx, manifestFiles); err != nil {
		return fmt.Errorf("failed to delete manifests: %w", err)
	}
	if err := c.deleteFiles(ctx, blobFiles); err != nil {
		return fmt.Errorf("failed to delete blobs: %w", err)
	}
	if err := c.deleteFiles(ctx, layerFiles); err != nil {
		return fmt.Errorf("failed to delete layer links: %w", err)
	}
	if c.opts.Evict == nil {
		return nil
	}
	deleted := Deleted{Blobs: res.Blobs, Links: map[string][]digest.Digest{}}
	gone := map[digest.Digest]bool{}
	for _, d := range res.Blobs {
		gone[d] = true
	}
	// A deleted manifest is a blob the repository's manifest store
	// cached too.
	for _, m := range res.Manifests {
		deleted.Links[m.Name] = append(deleted.Links[m.Name], m.Digest)
	}
	for _, r := range append(slices.Clip(inv.repos), inv.others...) {
		unlinked := map[digest.Digest]bool{}
		for _, d := range res.LayerLinks[r.name] {
			unlinked[d] = true
		}
		for _, l := range r.layers {
			if gone[l.digest] || unlinked[l.digest] {
				deleted.Links[r.name] = append(deleted.Links[r.name], l.digest)
			}
		}
	}
	c.progress.phase("evict")
	if err := c.opts.Evict(ctx, deleted); err != nil {
		return fmt.Errorf("deleted, but failed to evict the deleted blobs from the blob descriptor cache: %w", err)
	}
	return nil
}

// deleteFiles deletes paths: in batches where the driver can, otherwise one
// Delete each, Concurrency at once.
func (c *collector) deleteFiles(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	if fd, ok := c.driver.(fileDeleter); ok {
		const batch = 1000
		for len(paths) > 0 {
			n := min(len(paths), batch)
			if err := fd.DeleteFiles(ctx, paths[:n]); err != nil {
				return err
			}
			c.progress.deleted.Add(int64(n))
			paths = paths[n:]
		}
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, p := range paths {
		g.Go(func() error {
			err := c.driver.Delete(gctx, p)
			if errors.As(err, new(storagedriver.PathNotFoundError)) {
				err = nil // gone already: what the sweep wants
			}
			c.progress.deleted.Add(1)
			return err
		})
	}
	return g.Wait()
}
