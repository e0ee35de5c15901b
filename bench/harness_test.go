package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"

	// The yardstick: the upstream filesystem driver.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// Size units.
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// megabyte is the unit of every MB/s figure, as in Go's own benchmark output.
const megabyte = 1e6

func init() {
	// The registry logs every request at info level, and every 404 (the
	// existence checks of a push) at error level; a benchmark run would
	// drown in it and pay for it in CPU.
	logrus.SetLevel(logrus.FatalLevel)
	if os.Getenv("BENCH_COS_DEBUG") != "" {
		// One line per COS request from the driver (and the registry's
		// own debug lines): what docs/benchmarks.md cites to explain
		// which requests a push makes.
		logrus.SetLevel(logrus.DebugLevel)
	}
}

// scaled returns full, or small when the run is -short (a smoke test of the
// harness on little data).
func scaled[T any](full, small T) T {
	if testing.Short() {
		return small
	}
	return full
}

// patternDigests caches the digest of each (seed, size) stream: hashing a
// gigabyte takes seconds, and a client that pushes knows its digest anyway.
var patternDigests sync.Map

// patternDigest returns the sha256 digest of testenv.NewPatternReader(seed, size).
func patternDigest(seed uint64, size int64) digest.Digest {
	key := fmt.Sprint(seed, "/", size)
	if d, ok := patternDigests.Load(key); ok {
		return d.(digest.Digest)
	}
	h := sha256.New()
	io.Copy(h, testenv.NewPatternReader(seed, size))
	d := digest.NewDigest(digest.SHA256, h)
	patternDigests.Store(key, d)
	return d
}

// newEmulator starts a disk-backed COS emulator in a temporary directory and
// stops it when the benchmark ends.
func newEmulator(tb testing.TB, faults costest.Faults) *costest.Server {
	tb.Helper()
	return testenv.StartEmulator(tb, costest.Options{Dir: tb.TempDir(), Faults: faults})
}

// newDriver returns the COS driver (defaults) on an emulator.
func newDriver(tb testing.TB, srv *costest.Server) storagedriver.StorageDriver {
	tb.Helper()
	d, err := cos.FromParameters(context.Background(), testenv.DriverParameters(srv))
	if err != nil {
		tb.Fatalf("start the COS driver on the emulator: %v", err)
	}
	return d
}

// newRegistry runs a registry application (in this process) on the storage
// driver with params, with the in-memory blob descriptor cache that
// production configurations use and redirects as asked, and returns its
// base URL, "http://127.0.0.1:PORT".
func newRegistry(tb testing.TB, driver string, params map[string]any, redirect bool) string {
	tb.Helper()
	return registrytest.Start(tb, registrytest.Config(tb, registrytest.Options{
		Driver:              driver,
		Parameters:          params,
		Redirect:            redirect,
		BlobDescriptorCache: true,
	})).URL
}

// httpClient is the client of every registry request: it keeps
// connections alive (and, for go-containerregistry, follows redirects to
// the emulator).
var httpClient = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 128,
	DisableCompression:  true,
}}

// pushBlob uploads one blob the way docker does for a large layer: POST to
// open an upload, one PATCH streaming the whole body, PUT ?digest= to
// commit. An empty dgst has the body hashed as it is sent, as a client
// that does not know the digest in advance does.
func pushBlob(ctx context.Context, base, repo string, body io.Reader, size int64, dgst digest.Digest) error {
	return registrytest.PushBlob(ctx, httpClient, base, repo, body, size, dgst)
}

// pullBlob downloads a blob, following a redirect to the storage if the
// registry sends one, and returns how many bytes came.
func pullBlob(ctx context.Context, base, repo string, dgst digest.Digest) (int64, error) {
	n, _, err := registrytest.FetchBlob(ctx, httpClient, base, repo, dgst, io.Discard)
	return n, err
}

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// mbPerSecond is a throughput in MB/s (10^6 bytes).
func mbPerSecond(bytes int64, d time.Duration) float64 {
	return float64(bytes) / megabyte / d.Seconds()
}

// requestTable renders the emulator's request counters as an aligned table,
// one operation a line, largest first, with the total.
func requestTable(s costest.Stats) string {
	ops := make([]string, 0, len(s.Requests))
	for op := range s.Requests {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b string) int {
		if s.Requests[a] != s.Requests[b] {
			return int(s.Requests[b] - s.Requests[a])
		}
		return strings.Compare(a, b)
	})
	var sb strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&sb, "\n    %-26s %7d", op, s.Requests[op])
	}
	fmt.Fprintf(&sb, "\n    %-26s %7d   (in %.1f MB, out %.1f MB)", "total", s.Total(),
		float64(s.BytesIn)/megabyte, float64(s.BytesOut)/megabyte)
	return sb.String()
}

// reportRequests reports the request count of every operation as a metric
// named "<prefix>-<Operation>-reqs", and the total as "<prefix>-reqs".
func reportRequests(b *testing.B, prefix string, s costest.Stats) {
	for op, n := range s.Requests {
		b.ReportMetric(float64(n), prefix+"-"+op+"-reqs")
	}
	b.ReportMetric(float64(s.Total()), prefix+"-reqs")
}

// parallel runs f(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

// settledStats returns the emulator's counters once the requests the client
// has seen answered are also finished on the server: the emulator counts a
// request's bytes when its handler returns, which can be a moment after the
// client has read the last byte.
func settledStats(emulator *costest.Server) costest.Stats {
	time.Sleep(50 * time.Millisecond)
	return emulator.Stats()
}
