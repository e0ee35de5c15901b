// Package gc is the garbage collector behind registry-cos garbage-collect.
//
// It decides what distribution's storage.MarkAndSweep decides, on the same
// storage layout, but pays for it the way object storage wants: the whole
// repository tree and the blob store are read as flat listings (a page
// per thousand keys, not a request per directory), tags and manifests are
// read many at once, each once, and the sweep removes what it found with
// multi-object deletes of up to a thousand keys. Upstream's algorithm is
// then replayed on what was read, in upstream's order, so its decisions
// (order-dependent ones included) carry over exactly; the differential
// test holds it to that.
//
// Nothing is deleted until every listing and read has succeeded: a failure
// stops the run having deleted nothing.
package gc

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// Options are a collection's settings. The zero value is upstream's
// default run (delete, keep untagged manifests, print every decision),
// with no min-age and the default concurrency.
type Options struct {
	// DryRun decides and reports, and deletes nothing (--dry-run).
	DryRun bool
	// RemoveUntagged also deletes manifests no tag currently points to
	// (--delete-untagged).
	RemoveUntagged bool
	// Quiet silences the decision lines, the progress and the summary
	// (--quiet).
	Quiet bool
	// MinAge keeps what was written less than MinAge ago: blobs, their
	// repository links and, with RemoveUntagged, untagged manifests
	// (--min-age). A push in flight has written such things and not yet
	// the manifest that references them.
	MinAge time.Duration
	// Concurrency is how many reads (tags, manifests) and deletes are in
	// flight at once. Default DefaultConcurrency.
	Concurrency int
	// Out receives upstream's decision lines ("N blobs marked, ..."). Nil
	// discards them.
	Out io.Writer
	// Progress receives the progress lines and the summary. Nil discards
	// them.
	Progress io.Writer
	// ProgressInterval is the least time between two progress lines.
	// Default DefaultProgressInterval.
	ProgressInterval time.Duration
	// Evict, when set, is called with what the sweep deleted, after it
	// deleted it (the Redis blob-descriptor cache's eviction).
	Evict func(ctx context.Context, deleted Deleted) error
	// Now is the clock min-age is measured against. Default time.Now.
	Now func() time.Time
}

// DefaultConcurrency is Options.Concurrency's default: enough reads in
// flight to hide a 20 ms round trip, few enough not to be throttled.
const DefaultConcurrency = 32

// DefaultProgressInterval is Options.ProgressInterval's default.
const DefaultProgressInterval = 5 * time.Second

// Result is what a collection decided and did.
type Result struct {
	// Marked is the set of blobs in use, upstream's mark set.
	Marked map[digest.Digest]struct{}
	// Blobs are the unreferenced blobs, deleted unless DryRun.
	Blobs []digest.Digest
	// Manifests are the untagged manifests, deleted unless DryRun.
	Manifests []storage.ManifestDel
	// LayerLinks are the repository links to unmarked blobs, by
	// repository, deleted unless DryRun.
	LayerLinks map[string][]digest.Digest
	// KeptYoung are unreferenced blobs kept because they, or a link to
	// them, were written less than MinAge ago.
	KeptYoung []digest.Digest
	// BytesFreed is the size of the Blobs.
	BytesFreed int64
}

// Deleted is what a sweep removed, as a cache must forget it.
type Deleted struct {
	// Blobs were removed from the blob store.
	Blobs []digest.Digest
	// Links are the repository links to each digest that no longer lead
	// to a blob: the layer links of the deleted blobs, the layer links
	// deleted and the untagged manifests deleted.
	Links map[string][]digest.Digest
}

// Collect collects the garbage of the registry stored on d.
func Collect(ctx context.Context, d storagedriver.StorageDriver, opts Options) (*Result, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Out == nil || opts.Quiet {
		opts.Out = io.Discard
	}
	if opts.Progress == nil || opts.Quiet {
		opts.Progress = io.Discard
	}
	p := newProgress(opts.Progress, opts.ProgressInterval)
	defer p.stop()
	c := &collector{driver: d, opts: opts, progress: p, start: opts.Now()}

	p.phase("list")
	inv, err := c.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to mark: %w", err)
	}
	p.phase("read")
	manifests, tags, err := c.read(ctx, inv)
	if err != nil {
		return nil, fmt.Errorf("failed to mark: %w", err)
	}
	p.phase("mark")
	res, err := c.mark(inv, manifests, tags)
	if err != nil {
		return nil, fmt.Errorf("failed to mark: %w", err)
	}
	p.phase("sweep")
	if err := c.sweep(ctx, inv, res); err != nil {
		return res, err
	}
	p.phase("")
	p.summary(res, opts.DryRun)
	return res, nil
}

// collector is one collection's state.
type collector struct {
	driver   storagedriver.StorageDriver
	opts     Options
	progress *progress
	start    time.Time
}

// young reports whether something written at mod is within MinAge of the
// start of the run.
func (c *collector) young(mod time.Time) bool {
	return c.opts.MinAge > 0 && c.start.Sub(mod) < c.opts.MinAge
}

func (c *collector) emit(format string, a ...any) {
	fmt.Fprintf(c.opts.Out, format+"\n", a...)
}
