package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/spf13/cobra"

	"github.com/registry-cos/cos/internal/gc"
	"github.com/registry-cos/cos/internal/gcdriver"
)

// defaultMinAge is --min-age's default: longer than any push takes between
// its first blob and its manifest.
const defaultMinAge = time.Hour

func init() {
	flags := registry.GCCmd.Flags()
	flags.Duration("min-age", defaultMinAge, "never delete a blob, a repository link or (with --delete-untagged) a manifest written less than this long ago (0 turns the protection off)")
	flags.Int("concurrency", gc.DefaultConcurrency, "reads and deletes in flight at once")
	flags.Duration("progress-interval", gc.DefaultProgressInterval, "least time between two progress lines on standard error")
	flags.Bool("upstream", false, "run distribution's own MarkAndSweep instead (one request after another; for comparison)")
	registry.GCCmd.Long = "`garbage-collect` deletes blobs no manifest references (and, with --delete-untagged, manifests no tag points to), " +
		"deciding exactly what distribution's collector decides, with flat listings, parallel reads and multi-object deletes. " +
		"Decisions are printed on standard output, progress and a summary on standard error."
}

// gcOptions are the garbage-collect command's flags.
type gcOptions struct {
	gc.Options
	upstream bool
}

// runGarbageCollect replaces the upstream garbage-collect command's Run:
// the collector of internal/gc, with upstream's flags (--dry-run,
// --delete-untagged, --quiet) and output lines, and a storage driver that
// cannot start reported on one line.
func runGarbageCollect(cmd *cobra.Command, args []string) {
	flags := cmd.Flags()
	var opts gcOptions
	opts.DryRun, _ = flags.GetBool("dry-run")
	opts.RemoveUntagged, _ = flags.GetBool("delete-untagged")
	opts.Quiet, _ = flags.GetBool("quiet")
	opts.MinAge, _ = flags.GetDuration("min-age")
	opts.Concurrency, _ = flags.GetInt("concurrency")
	opts.ProgressInterval, _ = flags.GetDuration("progress-interval")
	opts.upstream, _ = flags.GetBool("upstream")
	opts.Out, opts.Progress = os.Stdout, os.Stderr
	if opts.MinAge < 0 || opts.Concurrency < 1 {
		exitWithError(os.Stderr, fmt.Errorf("configuration error: --min-age must be 0 or more (got %s) and --concurrency 1 or more (got %d)", opts.MinAge, opts.Concurrency))
	}

	config, err := resolveConfiguration(args)
	if err != nil {
		exitWithError(os.Stderr, err)
	}
	if err := configureLogging(config); err != nil {
		exitWithError(os.Stderr, err)
	}
	if err := garbageCollect(context.Background(), config, opts); err != nil {
		exitWithError(os.Stderr, err)
	}
}

// garbageCollect collects the garbage of the storage named in config.
func garbageCollect(ctx context.Context, config *configuration.Configuration, opts gcOptions) error {
	driver, err := storageDriver(ctx, config)
	if err != nil {
		return err
	}
	if opts.upstream {
		return upstreamGarbageCollect(ctx, driver, storage.GCOpts{DryRun: opts.DryRun, RemoveUntagged: opts.RemoveUntagged, Quiet: opts.Quiet})
	}
	cache, err := gc.RedisCache(config)
	if err != nil {
		return err
	}
	if cache != nil {
		defer cache.Close()
		opts.Evict = gc.RedisEvictor(cache, opts.Concurrency)
	}
	if _, err := gc.Collect(ctx, driver, opts.Options); err != nil {
		return fmt.Errorf("failed to garbage collect: %w", errors.Join(err, waitBackground(ctx, driver)))
	}
	if err := waitBackground(ctx, driver); err != nil {
		return fmt.Errorf("failed to garbage collect: %w", err)
	}
	if cache == nil && !opts.DryRun && !opts.Quiet && inMemoryCache(config) {
		fmt.Fprintln(opts.Progress, "garbage-collect: the registry's in-memory blob descriptor cache may still list deleted blobs: restart the replicas (see docs/garbage-collection.md)")
	}
	return nil
}

// inMemoryCache reports whether config's registries keep blob descriptors
// in their own memory.
func inMemoryCache(config *configuration.Configuration) bool {
	cc, ok := config.Storage["cache"]
	if !ok {
		return false
	}
	v, ok := cc["blobdescriptor"]
	if !ok {
		v = cc["layerinfo"]
	}
	return v == "inmemory"
}

// storageDriver starts the storage driver config names.
func storageDriver(ctx context.Context, config *configuration.Configuration) (driver storagedriver.StorageDriver, err error) {
	defer func() {
		// Storage.Type panics when the configuration names two drivers.
		if r := recover(); r != nil {
			err = startupError(r)
		}
	}()
	return factory.Create(ctx, config.Storage.Type(), config.Storage.Parameters())
}

// upstreamGarbageCollect runs distribution's MarkAndSweep on
// gcdriver.Driver, the collector this command ran before internal/gc.
func upstreamGarbageCollect(ctx context.Context, driver storagedriver.StorageDriver, opts storage.GCOpts) error {
	d := gcdriver.New(driver)
	namespace, err := storage.NewRegistry(ctx, d)
	if err != nil {
		return fmt.Errorf("failed to construct registry: %w", err)
	}
	err = storage.MarkAndSweep(ctx, d, namespace, opts)
	err = errors.Join(err, d.Wait(), waitBackground(ctx, driver))
	if err != nil {
		return fmt.Errorf("failed to garbage collect: %w", err)
	}
	return nil
}

// waitBackground waits for the work driver's Deletes left running (the cos
// driver ends a Delete's confirming part off the caller's path, see
// cos.Driver.Wait): a command must not exit before it ends.
func waitBackground(ctx context.Context, driver storagedriver.StorageDriver) error {
	if bg, ok := driver.(interface{ Wait(context.Context) error }); ok {
		return bg.Wait(ctx)
	}
	return nil
}
