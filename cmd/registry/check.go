package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/check"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// newCheckCommand is `registry-cos check`: the operator's preflight
// against the bucket a configuration names.
func newCheckCommand() *cobra.Command {
	var opts check.Options
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "check [CONFIG]",
		Short: "check the COS bucket of a configuration: permissions, behaviour and settings the driver relies on",
		Long: `check reads the configuration as serve does (the file, or REGISTRY_CONFIGURATION_PATH,
and REGISTRY_STORAGE_COS_* variables), then tries every COS operation and behaviour
the driver relies on under a scratch prefix below rootdirectory, removes what it
wrote, and prints one line per check: ok, warn or FAIL. It exits 1 on any FAIL.
Against registry-cos dev, use the check-config.yml it writes in its data directory.`,
		Args: cobra.MaximumNArgs(1),
		Run: func(cmd *cobra.Command, args []string) {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			os.Exit(runCheck(ctx, args, opts, jsonOut, cmd.OutOrStdout()))
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the results as JSON")
	cmd.Flags().BoolVar(&opts.AbortStale, "abort-stale", false, "abort the multipart uploads under the root older than a day")
	return cmd
}

// runCheck runs the probe and returns the exit code. A configuration that
// cannot even reach the bucket is one FAIL line.
func runCheck(ctx context.Context, args []string, opts check.Options, jsonOut bool, out io.Writer) int {
	logrus.SetOutput(io.Discard) // the report is the output
	report := probe(ctx, args, opts)
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report)
	} else {
		for _, r := range report.Results {
			fmt.Fprintln(out, r)
		}
	}
	if report.Failed() {
		return 1
	}
	return 0
}

func probe(ctx context.Context, args []string, opts check.Options) check.Report {
	failure := func(name, expected string, err error) check.Report {
		return check.Report{Results: []check.Result{{Name: name, Status: check.Fail, Expected: expected, Got: strings.Join(strings.Fields(err.Error()), " ")}}}
	}
	config, err := resolveConfiguration(args)
	if err != nil {
		return failure("configuration", "a readable configuration", err)
	}
	if config.Storage.Type() != cos.DriverName {
		return failure("configuration", "storage: cos", fmt.Errorf("storage driver %q", config.Storage.Type()))
	}
	params, err := cos.ParseParameters(config.Storage.Parameters())
	if err != nil {
		return failure("configuration", "valid cos parameters", err)
	}
	d, err := cos.New(ctx, params)
	if err != nil {
		return failure("bucket reachable", "the bucket reachable with these credentials", err)
	}
	return check.Run(ctx, d, params, opts)
}
