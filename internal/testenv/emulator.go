package testenv

import (
	"testing"

	"github.com/registry-cos/cos/costest"
)

// StartEmulator starts a COS emulator with opts for one test and stops it
// when the test ends. The zero Options give a memory-backed emulator; set
// Dir (tb.TempDir()) for one on disk, whose memory stays flat however much
// the test writes.
func StartEmulator(tb testing.TB, opts costest.Options) *costest.Server {
	tb.Helper()
	srv, err := costest.NewServer(opts)
	if err != nil {
		tb.Fatalf("starting the COS emulator: %v", err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return srv
}

// DriverParameters are the storage parameters that point the cos driver at
// srv, in the form of the registry's configuration (the `storage: cos:`
// map that FromParameters takes, keyed by parameter name). Callers add
// parameters to the map they get; each call returns a new map.
func DriverParameters(srv *costest.Server) map[string]any {
	return map[string]any{
		"secretid":  srv.SecretID,
		"secretkey": srv.SecretKey,
		"bucket":    srv.Bucket,
		"region":    srv.Region,
		"endpoint":  srv.URL,
	}
}
