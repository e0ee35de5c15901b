package cos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/testsuites"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// serverParameters are the parameters that address srv.
func serverParameters(srv *costest.Server) Parameters {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = srv.SecretID, srv.SecretKey
	p.Bucket, p.Region = srv.Bucket, srv.Region
	p.Endpoint = srv.URL
	return p
}

// newTestDriver builds a driver on srv; tune adjusts the parameters.
func newTestDriver(t testing.TB, srv *costest.Server, tune func(*Parameters)) *Driver {
	t.Helper()
	p := serverParameters(srv)
	if tune != nil {
		tune(&p)
	}
	d, err := New(context.Background(), p)
	require.NoError(t, err, "creating the driver")
	return d
}

// internal returns the implementation behind a Driver.
func internal(d *Driver) *driver { return d.Base.StorageDriver.(*driver) }

// TestDriverSuite runs distribution's full storage-driver suite (including
// the 5 GiB stream) against a disk-backed emulator, so memory stays flat.
func TestDriverSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("the full suite moves about 6 GiB; skipped with -short")
	}
	srv := testenv.StartEmulator(t, costest.Options{Dir: t.TempDir()})
	testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
		p := serverParameters(srv)
		p.RootDirectory = "/suite"
		return New(context.Background(), p)
	}, false)
}

// TestDriverSuiteRealCOS runs the same suite against real COS when
// COS_SECRET_ID, COS_SECRET_KEY, COS_BUCKET and COS_REGION are set.
func TestDriverSuiteRealCOS(t *testing.T) {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = os.Getenv("COS_SECRET_ID"), os.Getenv("COS_SECRET_KEY")
	p.Bucket, p.Region = os.Getenv("COS_BUCKET"), os.Getenv("COS_REGION")
	if p.SecretID == "" || p.SecretKey == "" || p.Bucket == "" || p.Region == "" {
		t.Skip("real COS not configured: set COS_SECRET_ID, COS_SECRET_KEY, COS_BUCKET (name-appid) and COS_REGION to run the suite against a real bucket")
	}
	p.RootDirectory = fmt.Sprintf("registry-cos-test/%d", time.Now().UnixNano())
	testsuites.Driver(t, func() (storagedriver.StorageDriver, error) {
		return New(context.Background(), p)
	}, false)
}

func TestKeyMapping(t *testing.T) {
	for _, tc := range []struct{ root, path, key, prefix string }{
		{"", "/", "", ""},
		{"", "/a/b", "a/b", "a/b/"},
		{"/registry/", "/", "registry", "registry/"},
		{"registry", "/a", "registry/a", "registry/a/"},
		{"x/y", "/a", "x/y/a", "x/y/a/"},
	} {
		d := &driver{root: strings.Trim(tc.root, "/")}
		require.Equal(t, tc.key, d.key(tc.path), "key of %q under %q", tc.path, tc.root)
		require.Equal(t, tc.prefix, d.dirPrefix(tc.path))
		if tc.path != "/" {
			require.Equal(t, tc.path, d.pathOf(tc.key))
		}
	}
}

func driverOn(t *testing.T, url string, tune func(*Parameters)) *Driver {
	p := DefaultParameters()
	p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	p.Bucket, p.Region = costest.DefaultBucket, costest.DefaultRegion
	p.Endpoint = url
	if tune != nil {
		tune(&p)
	}
	d, err := New(context.Background(), p)
	require.NoError(t, err)
	return d
}
