package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// Shape of the soak test.
const (
	soakImages  = 200
	soakWorkers = 4
	// soakPushAttempts and soakPullAttempts bound how often a client
	// starts a whole push or pull again after go-containerregistry's own
	// retries gave up, as a CI job retrying `docker push` would.
	soakPushAttempts = 3
	soakPullAttempts = 3
	// soakMaxRetries is the driver's maxretries: with 12 % of requests
	// failing, six failures in a row are rare; eleven should not happen.
	soakMaxRetries = 10
)

// soakFaults are the faults of the soak test: 10 % of requests answered
// 500 or 503 SlowDown, 2 % of connections dropped mid-body, listings 2s
// behind.
var soakFaults = costest.Faults{ErrorRate: 0.10, DropRate: 0.02, ListLag: 2 * time.Second}

// soakFigures are the counts the soak test reports.
type soakFigures struct {
	pushesAttempted, pushesAcknowledged atomic.Int64
	// pushRetries counts whole pushes started again after one failed;
	// pullRetries the same for pulls.
	pushRetries, pullRetries atomic.Int64
	// corruptReads counts pulls that completed with wrong content.
	corruptReads atomic.Int64

	mu sync.Mutex
	// lost lists acknowledged images a registry answered for as if they
	// were not there (not found, or content other than pushed).
	lost []string
	// unpulled are acknowledged images whose every pull under the faults
	// failed on a fault (a dropped connection, a 5xx): checked again once
	// the faults stop.
	unpulled []soakImage
	// failedAttempts lists every whole push or pull that failed, for the
	// test's own log (the workers' logs show only with -v).
	failedAttempts []string
	// answers counts what the client saw on single requests, which
	// go-containerregistry retries: registry 5xx answers by method and
	// error detail, transport errors, and the same for blob GETs
	// redirected to COS.
	answers map[string]int64
	// started and completed are the upload sessions (UUIDs) the registry
	// opened (POST 202) and finished (PUT 201); the others were abandoned
	// by the client after a failed request.
	started, completed map[string]bool
}

func newSoakFigures() *soakFigures {
	return &soakFigures{answers: map[string]int64{}, started: map[string]bool{}, completed: map[string]bool{}}
}

// soakImage is one image of the soak and where it is pulled from.
type soakImage struct {
	i    int
	tag  string
	img  v1.Image
	from *registrytest.Registry
	err  error // the last pull's
}

// attemptFailed records a failed whole push or pull.
func (f *soakFigures) attemptFailed(format string, args ...any) {
	f.mu.Lock()
	f.failedAttempts = append(f.failedAttempts, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// abandoned lists the upload sessions started and never finished.
func (f *soakFigures) abandoned() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.started {
		if !f.completed[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// TestSoakPushPullUnderFaults pushes 200 small images through three
// registries on one bucket and pulls each back through another one, while
// the emulator fails 10 % of requests, drops 2 % of connections mid-body
// and lags listings by 2s. Every push the registry acknowledges must pull
// back byte-identical: within three pulls under the faults, or, when each
// of them failed on a fault, once the faults stop (a blob read from COS
// through a redirect is cut by a dropped connection, and no client retries
// a body cut short). Afterwards no multipart upload may be open but those
// of pushes the client abandoned.
func TestSoakPushPullUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak test takes about a minute")
	}
	emulator := testenv.StartEmulator(t, costest.Options{Faults: soakFaults, Seed: 6})
	registries := []*registrytest.Registry{
		startRegistry(t, emulator, registryOptions{Redirect: true, MaxRetries: soakMaxRetries}),
		startRegistry(t, emulator, registryOptions{MaxRetries: soakMaxRetries}),
		startRegistry(t, emulator, registryOptions{MaxRetries: soakMaxRetries}),
	}
	emulator.ResetStats()
	retriesBefore := driverRetries(t)

	figures := newSoakFigures()
	client := remote.WithTransport(&countingTransport{base: remote.DefaultTransport, figures: figures, cosHost: strings.TrimPrefix(emulator.URL, "http://")})
	backoff := remote.WithRetryBackoff(remote.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 5})
	start := time.Now()

	jobs := make(chan int, soakImages)
	for i := range soakImages {
		jobs <- i
	}
	close(jobs)
	t.Run("workers", func(t *testing.T) {
		for w := range soakWorkers {
			t.Run(fmt.Sprint(w), func(t *testing.T) {
				t.Parallel()
				for i := range jobs {
					soakOne(t, i, registries, figures, client, backoff)
				}
			})
		}
	})
	elapsed := time.Since(start)

	stats := emulator.Stats()
	retries := driverRetries(t) - retriesBefore
	// Stop the faults, so that the listing below sees the final state.
	emulator.SetFaults(costest.Faults{})
	for _, r := range registries {
		r.Wait(t) // Deletes' background parts, which abort uploads
	}
	open := openMultipartUploads(t, emulator)
	// An image whose pulls all failed on injected faults is lost only if
	// it cannot be pulled without them either.
	for _, u := range figures.unpulled {
		err := checkImage(t.Context(), u.from.Ref(t, u.tag), u.img, client)
		if err != nil {
			figures.lost = append(figures.lost, fmt.Sprintf("image %d (%s): under faults: %v; without faults: %v", u.i, u.tag, u.err, err))
			if errors.Is(err, errCorrupt) {
				figures.corruptReads.Add(1)
			}
			continue
		}
		t.Logf("soak: image %d (%s): %d pulls failed on injected faults (last: %v); intact once the faults stopped", u.i, u.tag, soakPullAttempts, u.err)
	}

	var cos5xx int64
	for label, n := range stats.Status {
		if strings.Contains(label, " 5") {
			cos5xx += n
		}
	}
	t.Logf("soak: %d images in %v through %d registries, %d workers", soakImages, elapsed.Round(time.Second), len(registries), soakWorkers)
	t.Logf("soak: pushes attempted %d, acknowledged %d; whole pushes retried %d, whole pulls retried %d; images pulled only once the faults stopped %d; corrupt reads %d; data lost %d",
		figures.pushesAttempted.Load(), figures.pushesAcknowledged.Load(), figures.pushRetries.Load(),
		figures.pullRetries.Load(), len(figures.unpulled), figures.corruptReads.Load(), len(figures.lost))
	abandoned := figures.abandoned()
	t.Logf("soak: client saw on single requests (retried by go-containerregistry): %s", formatCounts(figures.answers))
	t.Logf("soak: COS requests %d, 5xx answers %d, connections dropped before an answer %d; faults injected: %s; driver retries %v",
		stats.Total(), cos5xx, countSuffix(stats.Status, " drop"), formatCounts(stats.Faults), retries)
	t.Logf("soak: upload sessions abandoned by the client %d; multipart uploads open at the end %d", len(abandoned), len(open))
	t.Logf("soak: %d whole pushes or pulls failed:\n%s", len(figures.failedAttempts), strings.Join(figures.failedAttempts, "\n"))

	if n := len(figures.lost); n > 0 {
		t.Errorf("%d acknowledged images were lost or corrupt:\n%s", n, strings.Join(figures.lost, "\n"))
	}
	if n := figures.corruptReads.Load(); n > 0 {
		t.Errorf("%d pulls completed with content other than what was pushed", n)
	}
	if got := figures.pushesAcknowledged.Load(); got != soakImages {
		t.Errorf("%d of %d images were acknowledged after %d attempts each", got, soakImages, soakPushAttempts)
	}
	if stats.Faults["error"] == 0 || stats.Faults["drop"] == 0 {
		t.Errorf("the emulator injected no errors or no drops (%s): the soak tested nothing", formatCounts(stats.Faults))
	}
	// An upload session the client abandoned keeps its multipart upload
	// until the upload purger runs; one that completed leaves none.
	for _, u := range open {
		if !slices.ContainsFunc(abandoned, func(id string) bool { return strings.Contains(u, "/_uploads/"+id+"/") }) {
			t.Errorf("multipart upload left open, not of an upload session the client abandoned: %s", u)
		}
	}
}

// soakOne pushes image i through one registry and pulls it back through
// the next, recording the outcome in figures.
func soakOne(t *testing.T, i int, registries []*registrytest.Registry, figures *soakFigures, opts ...remote.Option) {
	t.Helper()
	img := registrytest.NewImage(t, uint64(1000+i), soakLayerSizes(i)...)
	pushTo, pullFrom := registries[i%len(registries)], registries[(i+1)%len(registries)]
	tag := fmt.Sprintf("soak/app%d:v%d", i%7, i)
	ctx := t.Context()
	opts = append(opts, remote.WithContext(ctx))

	var pushErr error
	for attempt := range soakPushAttempts {
		if attempt > 0 {
			figures.pushRetries.Add(1)
		}
		figures.pushesAttempted.Add(1)
		if pushErr = remote.Write(pushTo.Ref(t, tag), img, opts...); pushErr == nil {
			break
		}
		figures.attemptFailed("push %d of %s to %s (attempt %d): %v", i, tag, pushTo.URL, attempt+1, pushErr)
	}
	if pushErr != nil {
		return // not acknowledged: nothing to check
	}
	figures.pushesAcknowledged.Add(1)

	var pullErr error
	for attempt := range soakPullAttempts {
		if attempt > 0 {
			figures.pullRetries.Add(1)
		}
		pullErr = checkImage(ctx, pullFrom.Ref(t, tag), img, opts...)
		if pullErr == nil {
			return
		}
		figures.attemptFailed("pull %d of %s from %s (attempt %d): %v", i, tag, pullFrom.URL, attempt+1, pullErr)
		if !injectedFault(pullErr) {
			// Not found, or other content: the registry acknowledged
			// what it cannot give back.
			if errors.Is(pullErr, errCorrupt) {
				figures.corruptReads.Add(1)
			}
			figures.mu.Lock()
			figures.lost = append(figures.lost, fmt.Sprintf("image %d (%s): %v", i, tag, pullErr))
			figures.mu.Unlock()
			return
		}
	}
	figures.mu.Lock()
	figures.unpulled = append(figures.unpulled, soakImage{i: i, tag: tag, img: img, from: pullFrom, err: pullErr})
	figures.mu.Unlock()
}

// injectedFault reports whether a pull may have failed the way the
// emulator's faults make it fail (a connection dropped mid-body, a 5xx
// left after go-containerregistry's retries), rather than on what the
// registry holds: content other than pushed, or a 404, which a registry
// must never answer for what it acknowledged (it reads by key, never
// through a lagging listing). Such a pull is tried again once the faults
// stop.
func injectedFault(err error) bool {
	var terr *transport.Error
	return !errors.Is(err, errCorrupt) && !(errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound)
}

// soakLayerSizes gives image i two or three layers from 10 KiB to 2 MiB,
// spread evenly on a log scale; every tenth image also has one layer over
// the 5 MiB part size, so that multipart uploads run.
func soakLayerSizes(i int) []int {
	rng := rand.New(rand.NewPCG(uint64(i), 6))
	sizes := make([]int, 2+rng.IntN(2))
	for j := range sizes {
		sizes[j] = int(10 << 10 * math.Pow(2<<20/(10<<10), rng.Float64()))
	}
	if i%10 == 0 {
		sizes = append(sizes, testChunkSize+1+rng.IntN(mib))
	}
	return sizes
}

// countingTransport records what the client sees on single requests,
// under go-containerregistry's retries: failed answers, and the upload
// sessions started and finished.
type countingTransport struct {
	base    http.RoundTripper
	figures *soakFigures
	// cosHost is the emulator's host:port: blob GETs redirected there are
	// counted apart from requests to the registries.
	cosHost string
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	target := "registry"
	if req.URL.Host == c.cosHost {
		target = "cos-redirect"
	}
	f := c.figures
	switch {
	case err != nil && req.URL.Scheme == "https":
		// go-containerregistry pings a local registry over https first,
		// then over http: not a failure.
	case err != nil:
		f.count(fmt.Sprintf("%s:%s:transport-error", target, req.Method))
	case resp.StatusCode >= 500:
		label := fmt.Sprintf("%s:%s:%d", target, req.Method, resp.StatusCode)
		if target == "registry" {
			// The registry's error body says which storage error it was.
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			var errs struct {
				Errors []struct{ Detail any }
			}
			if json.Unmarshal(body, &errs) == nil && len(errs.Errors) > 0 {
				label += fmt.Sprintf("(%v)", errs.Errors[0].Detail)
			}
		}
		f.count(label)
	case req.Method == http.MethodPost && resp.StatusCode == http.StatusAccepted && strings.HasSuffix(req.URL.Path, "/blobs/uploads/"):
		if loc, perr := url.Parse(resp.Header.Get("Location")); perr == nil {
			f.mu.Lock()
			f.started[path.Base(loc.Path)] = true
			f.mu.Unlock()
		}
	case req.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && strings.Contains(req.URL.Path, "/blobs/uploads/"):
		f.mu.Lock()
		f.completed[path.Base(req.URL.Path)] = true
		f.mu.Unlock()
	}
	return resp, err
}

// count adds one to answers[label].
func (f *soakFigures) count(label string) {
	f.mu.Lock()
	f.answers[label]++
	f.mu.Unlock()
}

// driverRetries reads the driver's registry_cos_retries_total, summed over
// operations, from the process's Prometheus registry.
func driverRetries(t *testing.T) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("reading the driver's metrics: %v", err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "registry_cos_retries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// countSuffix sums the counts whose label ends with suffix.
func countSuffix(counts map[string]int64, suffix string) int64 {
	var n int64
	for label, v := range counts {
		if strings.HasSuffix(label, suffix) {
			n += v
		}
	}
	return n
}

// formatCounts renders counts as "a=1 b=2", sorted by label.
func formatCounts(counts map[string]int64) string {
	labels := make([]string, 0, len(counts))
	for label, n := range counts {
		labels = append(labels, fmt.Sprintf("%s=%d", label, n))
	}
	sort.Strings(labels)
	return strings.Join(labels, " ")
}
