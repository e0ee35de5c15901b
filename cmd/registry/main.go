// Command registry-cos is the CNCF Distribution registry (v3) built with the
// Tencent Cloud COS storage driver.
//
// It carries every upstream storage driver, auth provider, storage middleware
// and the pull-through proxy, plus the "cos" driver, and adds a "dev"
// subcommand that runs a registry on an embedded, disk-backed COS emulator:
//
//	registry-cos serve config.yml            # a registry on real COS (see config-cos.yml)
//	registry-cos garbage-collect config.yml  # remove blobs no manifest references
//	registry-cos dev                         # a local registry, no cloud account needed
//	registry-cos registryctl -c ctl.yml      # Harbor's registry controller on this storage
//	registry-cos --version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	_ "net/http/pprof"

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/silly"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/proxy"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/cloudfront"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/redirect"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/middleware/rewrite"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"github.com/distribution/distribution/v3/version"
	"github.com/spf13/cobra"

	_ "github.com/registry-cos/cos"
	_ "github.com/registry-cos/cos/tencentcdn"
)

// programName prefixes every error line the binary prints.
const programName = "registry-cos"

func init() {
	registry.RootCmd.Use = programName
	registry.RootCmd.Short = "a container registry (CNCF Distribution) with the Tencent Cloud COS storage driver"
	registry.RootCmd.Long = registry.RootCmd.Short
	registry.RootCmd.Run = runRoot
	// The upstream commands panic or print stack traces when storage fails to
	// start; these wrappers report one line and exit non-zero instead.
	registry.ServeCmd.Run = runServe
	registry.ServeCmd.Flags().Bool(debugProfilingFlag, false, "also serve pprof (/debug/pprof/) and expvar (/debug/vars) on the debug listener (http.debug.addr)")
	registry.GCCmd.Run = runGarbageCollect
	registry.RootCmd.AddCommand(newDevCommand(), newCheckCommand(), newRegistryctlCommand())
}

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		// cobra has already printed the error and the usage.
		os.Exit(1)
	}
}

// runRoot replaces the upstream root command's Run: --version prints this
// binary's version (stamped with -X .../version.version, see the Makefile)
// rather than the path it was started from and distribution's package path.
func runRoot(cmd *cobra.Command, _ []string) {
	if show, _ := cmd.Flags().GetBool("version"); show {
		printVersion(cmd.OutOrStdout())
		return
	}
	_ = cmd.Usage()
}

// printVersion writes one line: the stamped version, the revision when it was
// stamped, and the distribution and Go versions the binary was built with.
func printVersion(w io.Writer) {
	details := []string{}
	if rev := version.Revision(); rev != "" {
		details = append(details, "revision "+rev)
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/distribution/distribution/v3" {
				details = append(details, "distribution "+dep.Version)
			}
		}
	}
	details = append(details, runtime.Version())
	fmt.Fprintf(w, "%s %s (%s)\n", programName, versionString(), strings.Join(details, ", "))
}
