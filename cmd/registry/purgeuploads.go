package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/spf13/cobra"
)

// defaultPurgeAge is --older-than's default: the registry's own default
// for storage.maintenance.uploadpurging.age.
const defaultPurgeAge = 168 * time.Hour

func init() {
	registry.RootCmd.AddCommand(newPurgeUploadsCommand())
}

// newPurgeUploadsCommand is "registry-cos purge-uploads": once, what every
// replica's upload purger does in the background.
func newPurgeUploadsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge-uploads [--older-than D] [--dry-run] <config>",
		Short: "delete upload directories (and their multipart uploads) started longer ago than --older-than",
		Long: "`purge-uploads` does once what each replica's upload purger (storage.maintenance.uploadpurging) does in the background: " +
			"it deletes every _uploads directory started longer ago than --older-than, which on COS also aborts the multipart upload it holds, " +
			"and reports how many.",
		Args: cobra.MaximumNArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			olderThan, _ := cmd.Flags().GetDuration("older-than")
			dryRun, _ := cmd.Flags().GetBool("dry-run")
			quiet, _ := cmd.Flags().GetBool("quiet")
			if olderThan < 0 {
				exitWithError(os.Stderr, fmt.Errorf("configuration error: --older-than must be 0 or more, got %s", olderThan))
			}
			config, err := resolveConfiguration(args)
			if err != nil {
				exitWithError(os.Stderr, err)
			}
			if err := configureLogging(config); err != nil {
				exitWithError(os.Stderr, err)
			}
			out := io.Writer(os.Stdout)
			if quiet {
				out = io.Discard
			}
			if _, err := purgeUploads(context.Background(), config, olderThan, dryRun, out); err != nil {
				exitWithError(os.Stderr, err)
			}
		},
	}
	cmd.Flags().Duration("older-than", defaultPurgeAge, "delete uploads started longer ago than this")
	cmd.Flags().BoolP("dry-run", "d", false, "report what would be deleted, delete nothing")
	cmd.Flags().BoolP("quiet", "q", false, "print nothing but errors")
	return cmd
}

// purgeUploads runs distribution's PurgeUploads, the function behind the
// registry's upload purger, once over the storage of config, prints each
// upload directory it deletes (or would) and a count, and returns them.
func purgeUploads(ctx context.Context, config *configuration.Configuration, olderThan time.Duration, dryRun bool, out io.Writer) ([]string, error) {
	driver, err := storageDriver(ctx, config)
	if err != nil {
		return nil, err
	}
	deleted, errs := storage.PurgeUploads(ctx, driver, time.Now().Add(-olderThan), !dryRun)
	// The cos driver confirms an upload directory's delete (its startedat
	// goes last) after Delete returns; a process that exited first would
	// leave the directory for the next purge.
	if err := waitBackground(ctx, driver); err != nil {
		errs = append(errs, err)
	}
	verb := "deleted"
	if dryRun {
		verb = "eligible for deletion"
	}
	for _, dir := range deleted {
		fmt.Fprintf(out, "upload %s: %s\n", verb, dir)
	}
	fmt.Fprintf(out, "%d upload directories started more than %s ago %s\n", len(deleted), olderThan, verb)
	if len(errs) > 0 {
		return deleted, fmt.Errorf("purge-uploads: %d errors: %w", len(errs), errors.Join(errs...))
	}
	return deleted, nil
}
