package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"

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

// patternBlockSize is the size of the block a patternReader repeats.
const patternBlockSize = 1 * mib

// patternReader yields a deterministic stream: a 1 MiB block of seeded
// pseudo-random bytes, repeated, with the first 8 bytes of every block
// replaced by the block's index so no two blocks (and no two streams of
// different seeds) are equal. Reading it costs little more than a copy.
type patternReader struct {
	block []byte
	left  int64
	pos   int64
}

// newPatternReader returns a reader of size bytes for seed.
func newPatternReader(seed uint64, size int64) *patternReader {
	block := make([]byte, patternBlockSize)
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}))
	for i := 0; i+8 <= len(block); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			block[i+j] = byte(v >> (8 * j))
		}
	}
	return &patternReader{block: block, left: size}
}

// Read fills p with the next bytes of the stream.
func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	off := int(r.pos % patternBlockSize)
	if off == 0 {
		index := r.pos / patternBlockSize
		for j := range 8 {
			r.block[j] = byte(index >> (8 * j))
		}
	}
	n := copy(p, r.block[off:])
	n = int(min(int64(n), r.left))
	r.pos += int64(n)
	r.left -= int64(n)
	return n, nil
}

// patternDigests caches the digest of each (seed, size) stream: hashing a
// gigabyte takes seconds, and a client that pushes knows its digest anyway.
var patternDigests sync.Map

// patternDigest returns the sha256 digest of newPatternReader(seed, size).
func patternDigest(seed uint64, size int64) digest.Digest {
	key := fmt.Sprint(seed, "/", size)
	if d, ok := patternDigests.Load(key); ok {
		return d.(digest.Digest)
	}
	h := sha256.New()
	io.Copy(h, newPatternReader(seed, size))
	d := digest.NewDigest(digest.SHA256, h)
	patternDigests.Store(key, d)
	return d
}

// newEmulator starts a disk-backed COS emulator in a temporary directory and
// stops it when the benchmark ends.
func newEmulator(tb testing.TB, faults costest.Faults) *costest.Server {
	tb.Helper()
	srv, err := costest.NewServer(costest.Options{Dir: tb.TempDir(), Faults: faults})
	if err != nil {
		tb.Fatalf("start the COS emulator: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// cosParameters returns the driver's configuration map for an emulator.
func cosParameters(srv *costest.Server) configuration.Parameters {
	return configuration.Parameters{
		"secretid":  srv.SecretID,
		"secretkey": srv.SecretKey,
		"bucket":    srv.Bucket,
		"region":    srv.Region,
		"endpoint":  srv.URL,
	}
}

// newDriver returns the COS driver (defaults) on an emulator.
func newDriver(tb testing.TB, srv *costest.Server) storagedriver.StorageDriver {
	tb.Helper()
	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = srv.SecretID, srv.SecretKey
	params.Bucket, params.Region, params.Endpoint = srv.Bucket, srv.Region, srv.URL
	d, err := cos.New(context.Background(), params)
	if err != nil {
		tb.Fatalf("start the COS driver on the emulator: %v", err)
	}
	return d
}

// registryStorage is the storage section of a benchmark registry: the
// driver with its parameters, the in-memory blob descriptor cache that
// production configurations use, no background upload purging (it would walk
// the bucket at a random moment) and redirects as asked.
func registryStorage(driver string, params configuration.Parameters, redirect bool) configuration.Storage {
	return configuration.Storage{
		driver:        params,
		"cache":       configuration.Parameters{"blobdescriptor": "inmemory"},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		"redirect":    configuration.Parameters{"disable": !redirect},
		"delete":      configuration.Parameters{"enabled": true},
	}
}

// newRegistry runs a registry application (in this process) on storage and
// returns its base URL, "http://127.0.0.1:PORT".
func newRegistry(tb testing.TB, storage configuration.Storage) string {
	tb.Helper()
	config := &configuration.Configuration{Storage: storage}
	config.HTTP.Secret = "registry-cos-bench"
	config.Catalog.MaxEntries = 1000
	config.Log.AccessLog.Disabled = true
	app := handlers.NewApp(context.Background(), config)
	srv := httptest.NewServer(app)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// httpClient is the client of every registry request: it follows redirects
// (to the emulator, for pulls) and keeps connections alive.
var httpClient = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 128,
	DisableCompression:  true,
}}

// pushBlob uploads one blob the way docker does for a large layer: POST to
// open an upload, one PATCH streaming the whole body, PUT ?digest= to commit.
func pushBlob(ctx context.Context, base, repo string, body io.Reader, size int64, dgst digest.Digest) error {
	return pushBlobThen(ctx, base, repo, body, size, func() digest.Digest { return dgst })
}

// pushBlobHashing pushes a stream whose digest is not known in advance,
// hashing it while it is sent.
func pushBlobHashing(ctx context.Context, base, repo string, body io.Reader, size int64) error {
	h := sha256.New()
	return pushBlobThen(ctx, base, repo, io.TeeReader(body, h), size, func() digest.Digest {
		return digest.NewDigest(digest.SHA256, h)
	})
}

// pushBlobThen is pushBlob with the digest asked for once the body is sent.
func pushBlobThen(ctx context.Context, base, repo string, body io.Reader, size int64, dgst func() digest.Digest) error {
	loc, err := blobRequest(ctx, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, 0, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("open upload: %w", err)
	}
	loc, err = blobRequest(ctx, http.MethodPatch, loc, body, size, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("send %d bytes: %w", size, err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", dgst().String())
	u.RawQuery = q.Encode()
	if _, err := blobRequest(ctx, http.MethodPut, u.String(), nil, 0, http.StatusCreated); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// blobRequest sends one request of the upload protocol and returns the
// absolute Location of the answer.
func blobRequest(ctx context.Context, method, target string, body io.Reader, size int64, want int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4*kib))
	if resp.StatusCode != want {
		return "", fmt.Errorf("%s %s: %s: %s", method, target, resp.Status, strings.TrimSpace(string(msg)))
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	return loc.String(), nil
}

// pullBlob downloads a blob, following a redirect to the storage if the
// registry sends one, and returns how many bytes came.
func pullBlob(ctx context.Context, base, repo string, dgst digest.Digest) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dgst.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4*kib))
		return 0, fmt.Errorf("GET blob %s: %s: %s", dgst, resp.Status, strings.TrimSpace(string(msg)))
	}
	return io.Copy(io.Discard, resp.Body)
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
