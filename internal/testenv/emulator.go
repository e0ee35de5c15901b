package testenv

import (
	"net/http"
	"net/url"
	"testing"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"

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

// SDKClient is a COS SDK client for srv's bucket, signing with its first
// credential, for tests that look at the bucket past the driver.
func SDKClient(tb testing.TB, srv *costest.Server) *cossdk.Client {
	tb.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		tb.Fatalf("emulator URL %q: %v", srv.URL, err)
	}
	return cossdk.NewClient(&cossdk.BaseURL{BucketURL: u}, &http.Client{
		Transport: &cossdk.AuthorizationTransport{SecretID: srv.SecretID, SecretKey: srv.SecretKey},
	})
}
