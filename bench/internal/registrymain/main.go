// Command registrymain is the smallest registry with the COS driver: the
// upstream registry command (serve, garbage-collect) with the driver
// blank-imported and the pprof handlers on the debug server. BenchmarkMemory
// builds it only when ./cmd/registry does not build.
package main

import (
	_ "net/http/pprof"
	"os"

	"github.com/distribution/distribution/v3/registry"

	_ "github.com/registry-cos/cos"
)

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
