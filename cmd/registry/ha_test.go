package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	cos "github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// haShape is the shape of one high-availability run: the short one runs
// in `go test ./...`, the full one with REGISTRY_COS_HA=full.
type haShape struct {
	images, workers, replicas int
	// killEvery is the pause between two kill -9 of a random replica.
	killEvery time.Duration
	// faults turns on the emulator's faults and the crashes.
	faults bool
}

func haShapeFor(faults bool) haShape {
	if os.Getenv("REGISTRY_COS_HA") == "full" {
		return haShape{images: 300, workers: 8, replicas: 3, killEvery: 5 * time.Second, faults: faults}
	}
	return haShape{images: 16, workers: 8, replicas: 3, killEvery: 3 * time.Second, faults: faults}
}

// haEmulatorFaults are the emulator flags of the fault runs: 20 ms per
// request, 3 % 500/503 SlowDown, 1 % connections dropped mid-body, 2 % of
// Complete/Copy answered 200 with an <Error>, listings 1 s behind.
var haEmulatorFaults = []string{"-latency", "20ms", "-error-rate", "0.03", "-drop-rate", "0.01",
	"-complete-error-rate", "0.02", "-list-lag", "1s"}

// TestHighAvailability runs registry-cos as an operator would behind a
// load balancer: several `registry-cos serve` processes with one
// configuration and http.secret behind a round-robin proxy (so the POST,
// PATCH and PUT of one upload land on different processes), cos-emulator
// as a separate disk-backed process, and Redis or the in-memory
// blob-descriptor cache. Eight clients push images with shared base layers
// (cross-repository mounts), monolithic and chunked uploads, manifest
// lists, tag overwrites and tag deletes while catalog and tag lists are
// paged; with faults on, the emulator fails, drops and lags, a replica is
// killed every few seconds, one is stopped with SIGTERM, Redis and the
// emulator are restarted once. Afterwards every acknowledged image must
// pull back, every tag must say what its last acknowledged push or delete
// said, garbage-collect --dry-run must pass, the cache must not answer for
// a deleted blob, and no upload may leave a multipart upload or
// _uploads/<id>/ key behind once the upload purger ran.
func TestHighAvailability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and runs for about a minute per variant")
	}
	for _, v := range []struct {
		name   string
		redis  bool
		faults bool
	}{{"redis-no-faults", true, false}, {"redis", true, true}, {"inmemory", false, true}} {
		t.Run(v.name, func(t *testing.T) {
			if v.redis {
				if _, err := exec.LookPath("redis-server"); err != nil {
					// In CI a skip would hide that the Redis variants never ran.
					skip := t.Skip
					if os.Getenv("CI") != "" {
						skip = t.Fatal
					}
					skip("redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)")
				}
			}
			runHA(t, haShapeFor(v.faults), v.redis)
		})
	}
}

// haProcess is a child process the test can kill, stop and start again
// with the same arguments.
type haProcess struct {
	name  string
	args  []string
	env   []string
	ready func() error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *testenv.SyncBuffer
}

// start runs the process and waits until ready answers.
func (p *haProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	p.out = &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := p.ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s: %v\n%s", p.name, err, p.out.String())
		}
	}
}

// stop sends sig and waits for the process to exit (killing it after 30s).
func (p *haProcess) stop(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// restart stops the process with sig and starts it again.
func (p *haProcess) restart(sig os.Signal) error {
	p.stop(sig)
	return p.start()
}

// httpReady reports whether u answers (any status).
func httpReady(u string) func() error {
	return func() error {
		resp, err := http.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
}

// tcpReady reports whether addr accepts connections.
func tcpReady(addr string) func() error {
	return func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// haCluster is the running set-up of one variant.
type haCluster struct {
	emulator     *haProcess
	emulatorAddr string
	adminAddr    string
	redis        *haProcess
	replicas     []*haProcess
	replicaURLs  []string
	configPath   string
	lb           *httptest.Server
	params       cos.Parameters
	// statsBefore sums the emulator's counters of the instances already
	// stopped (a restart starts them at zero).
	statsBefore costest.Stats
}

func startHACluster(t *testing.T, shape haShape, withRedis bool) *haCluster {
	t.Helper()
	c := &haCluster{emulatorAddr: testenv.FreeAddr(t), adminAddr: testenv.FreeAddr(t)}
	dataDir := t.TempDir()
	c.emulator = &haProcess{name: "cos-emulator",
		args:  []string{buildCosEmulator(t), "-addr", c.emulatorAddr, "-admin-addr", c.adminAddr, "-data", dataDir},
		ready: httpReady("http://" + c.adminAddr + "/stats")}
	if shape.faults {
		c.emulator.args = append(c.emulator.args, haEmulatorFaults...)
	}
	mustStart(t, c.emulator)
	redisAddr := ""
	if withRedis {
		redisAddr = testenv.FreeAddr(t)
		_, port, _ := net.SplitHostPort(redisAddr)
		c.redis = &haProcess{name: "redis-server",
			args:  []string{"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"},
			ready: tcpReady(redisAddr)}
		mustStart(t, c.redis)
	}
	emulator := &costest.Server{URL: "http://" + c.emulatorAddr, Bucket: "registry-1250000000", Region: "ap-guangzhou",
		SecretID: "AKIDcostestEXAMPLE", SecretKey: "costestSecretKeyEXAMPLE"} // cos-emulator's defaults
	c.configPath = testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{
		Redirect: true, MaxRetries: 10, Redis: redisAddr, BlobCache: true, Balanced: true}))
	var targets []*url.URL
	for i := range shape.replicas {
		addr := testenv.FreeAddr(t)
		p := &haProcess{name: fmt.Sprintf("replica %d", i),
			args:  []string{registryBinary(t), "serve", c.configPath},
			env:   []string{"REGISTRY_HTTP_ADDR=" + addr},
			ready: httpReady("http://" + addr + "/v2/")}
		mustStart(t, p)
		c.replicas = append(c.replicas, p)
		c.replicaURLs = append(c.replicaURLs, "http://"+addr)
		targets = append(targets, &url.URL{Scheme: "http", Host: addr})
	}
	var next atomic.Uint64
	c.lb = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
		},
		// A replica being restarted refuses connections: 502, which
		// clients retry, as behind a real balancer before its health
		// check notices.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) },
	})
	t.Cleanup(c.lb.Close)
	c.params = emulatorParameters(emulator)
	return c
}

func mustStart(t *testing.T, p *haProcess) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s printed:\n%s", p.name, truncateTail(p.out.String(), 4000))
		}
	})
}

func truncateTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// stats reads the emulator's counters, plus those of the instances
// already stopped.
func (c *haCluster) stats(t *testing.T) costest.Stats {
	t.Helper()
	var s costest.Stats
	resp, err := http.Get("http://" + c.adminAddr + "/stats")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
	}
	if err != nil {
		t.Errorf("reading the emulator's stats: %v", err)
	}
	return addStats(s, c.statsBefore)
}

func addStats(a, b costest.Stats) costest.Stats {
	out := costest.Stats{Requests: map[string]int64{}, Status: map[string]int64{}, Faults: map[string]int64{}}
	for _, s := range []costest.Stats{a, b} {
		for k, v := range s.Requests {
			out.Requests[k] += v
		}
		for k, v := range s.Status {
			out.Status[k] += v
		}
		for k, v := range s.Faults {
			out.Faults[k] += v
		}
		out.BytesIn += s.BytesIn
		out.BytesOut += s.BytesOut
	}
	return out
}

// restartEmulator restarts the emulator on the same data directory, with
// args replacing its fault flags when not nil.
func (c *haCluster) restartEmulator(t *testing.T, faults []string) error {
	c.statsBefore = c.stats(t)
	c.emulator.stop(syscall.SIGTERM)
	if faults != nil {
		c.emulator.args = append(c.emulator.args[:7:7], faults...)
	}
	return c.emulator.start()
}

// haImage is one acknowledged push.
type haImage struct {
	ref   string // repo@digest
	image v1.Image
	index v1.ImageIndex
}

// haState is what the clients saw acknowledged.
type haState struct {
	mu    sync.Mutex
	acked []haImage
	// tags maps repo:tag to the digest of the last acknowledged push, or
	// "" after an acknowledged delete; a tag whose last push or delete
	// failed is left out (its state is the client's to retry).
	tags map[string]string
	// deletedBlobs are repo@digest of blobs deleted through the balancer.
	deletedBlobs []string
	// cacheAnswers counts HEADs of a deleted blob a replica answered 200.
	cacheAnswers atomic.Int64
	// pages counts catalog and tag-list pages read during the pushes;
	// pageErrors those that failed after the client's retries.
	pages, pageErrors atomic.Int64
	// uploads counts blobs uploaded by hand, monolithic and chunked.
	monolithic, chunked atomic.Int64
	// requests and mounts count client requests and cross-repository
	// mounts (POST ?mount= answered 201).
	requests, mounts atomic.Int64
	kills, sigterms  atomic.Int64
	// clientErrors are whole operations that failed after all retries.
	clientErrors []string
}

func (s *haState) failed(format string, args ...any) {
	s.mu.Lock()
	s.clientErrors = append(s.clientErrors, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// haTransport counts requests and mounts under countingTransport.
type haTransport struct {
	base  http.RoundTripper
	state *haState
}

func (h *haTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.state.requests.Add(1)
	resp, err := h.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" && resp.StatusCode == http.StatusCreated {
		h.state.mounts.Add(1)
	}
	return resp, err
}

func runHA(t *testing.T, shape haShape, withRedis bool) {
	c := startHACluster(t, shape, withRedis)
	lbHost := strings.TrimPrefix(c.lb.URL, "http://")
	figures := newSoakFigures()
	state := &haState{tags: map[string]string{}}
	transport := &haTransport{base: &countingTransport{base: remote.DefaultTransport, figures: figures, cosHost: c.emulatorAddr}, state: state}
	httpClient := &http.Client{Transport: transport}
	opts := []remote.Option{remote.WithTransport(transport),
		remote.WithRetryBackoff(remote.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 6})}
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(lbHost+"/"+s, name.Insecure)
		if err != nil {
			t.Fatalf("parsing %q: %v", s, err)
		}
		return r
	}

	// The base image every push shares: its layers, read back from the
	// registry, are mountable, so pushes to other repositories mount them.
	base := registrytest.NewImage(t, 7, 300<<10, 1<<20)
	if err := retry(3, func() error { return remote.Write(ref("ha/base:1"), base, opts...) }); err != nil {
		t.Fatalf("pushing the base image: %v", err)
	}
	// Its config is read once here, and again on a dropped connection: the
	// image remembers the config it read, and every push's digest needs it
	// (a config cut short by a fault would fail every push after).
	var remoteBase v1.Image
	if err := retry(3, func() error {
		img, err := remote.Image(ref("ha/base:1"), opts...)
		if err != nil {
			return err
		}
		if _, err := img.ConfigFile(); err != nil {
			return err
		}
		remoteBase = img
		return nil
	}); err != nil {
		t.Fatalf("reading the base image back: %v", err)
	}
	baseLayers, err := remoteBase.Layers()
	if err != nil {
		t.Fatal(err)
	}
	statsStart := c.stats(t)
	requestsStart := state.requests.Load()

	stop := make(chan struct{})
	var background sync.WaitGroup
	var progress atomic.Int64
	if shape.faults {
		background.Add(1)
		go func() { defer background.Done(); haChaos(t, c, shape, &progress, state, stop) }()
	}
	background.Add(1)
	go func() { defer background.Done(); haPageLists(c.lb.URL, httpClient, state, stop) }()

	start := time.Now()
	t.Run("clients", func(t *testing.T) {
		for w := range shape.workers {
			t.Run(fmt.Sprint(w), func(t *testing.T) {
				t.Parallel()
				for i := w; i < shape.images; i += shape.workers {
					haPushOne(t, i, w, shape, c, state, figures, baseLayers, ref, httpClient, opts)
					progress.Add(1)
				}
			})
		}
	})
	elapsed := time.Since(start)
	close(stop)
	background.Wait()
	loadStats := c.stats(t)
	clientRequests := state.requests.Load() - requestsStart

	// Verification with the faults off: listings see the final state.
	if shape.faults {
		if err := c.restartEmulator(t, []string{}); err != nil {
			t.Fatalf("restarting the emulator without faults: %v", err)
		}
	}
	lost := 0
	for _, img := range state.acked {
		var err error
		if img.index != nil {
			_, err = remote.Index(ref(img.ref), opts...)
		} else {
			err = retry(3, func() error { return checkImage(context.Background(), ref(img.ref), img.image, opts...) })
		}
		if err != nil {
			lost++
			t.Errorf("acknowledged %s does not pull back: %v", img.ref, err)
		}
	}
	for tag, want := range state.tags {
		desc, err := remote.Head(ref(tag), opts...)
		switch {
		case want == "" && err == nil:
			t.Errorf("tag %s was deleted and resolves to %s", tag, desc.Digest)
		case want == "" && isNotFound(err):
		case err != nil:
			t.Errorf("tag %s: %v (want %s)", tag, err, want)
		case desc.Digest.String() != want:
			t.Errorf("tag %s resolves to %s, want %s", tag, desc.Digest, want)
		}
	}
	haCheckDeletedBlobs(c, httpClient, state)
	if n := state.cacheAnswers.Load(); n > 0 && withRedis {
		t.Errorf("a replica answered 200 for a deleted blob %d times with the Redis cache", n)
	}
	if out, err := exec.Command(registryBinary(t), "garbage-collect", "--dry-run", c.configPath).CombinedOutput(); err != nil {
		t.Errorf("garbage-collect --dry-run: %v\n%s", err, truncateTail(string(out), 4000))
	}

	// Leaks: completed uploads must leave nothing; then the upload purger
	// (as every replica runs it) removes what abandoned uploads left.
	driver, err := cos.New(context.Background(), c.params)
	if err != nil {
		t.Fatal(err)
	}
	uploadKeys := func() map[string][]string {
		byID := map[string][]string{}
		_ = driver.Walk(context.Background(), "/docker/registry/v2/repositories", func(fi storagedriver.FileInfo) error {
			p := fi.Path()
			if i := strings.Index(p, "/_uploads/"); i >= 0 && !fi.IsDir() {
				id := strings.SplitN(p[i+len("/_uploads/"):], "/", 2)[0]
				byID[id] = append(byID[id], p)
			}
			return nil
		})
		return byID
	}
	// Delete confirms an upload directory's delete in the background and
	// deletes its startedat last; wait for the replicas' background parts
	// (each wait of theirs is at most 2s) before stopping them. A part
	// lost with a replica killed under it leaves startedat: a completed
	// upload with keys left, which is a leak only without crashes.
	completedLeft := func() (n int) {
		for id := range uploadKeys() {
			if figures.completed[id] {
				n++
			}
		}
		return n
	}
	for last, unchanged, deadline := -1, 0, time.Now().Add(45*time.Second); time.Now().Before(deadline) && unchanged < 5; {
		n := completedLeft()
		if n == 0 {
			break
		}
		if n == last {
			unchanged++
		} else {
			last, unchanged = n, 0
		}
		time.Sleep(time.Second)
	}
	for _, p := range c.replicas {
		p.stop(syscall.SIGTERM)
	}
	leak := t.Errorf
	if shape.faults {
		leak = t.Logf
	}
	leftBefore := uploadKeys()
	leakedCompleted := 0
	for id, keys := range leftBefore {
		if figures.completed[id] {
			leakedCompleted++
			leak("completed upload %s left %v", id, keys)
		}
	}
	openBefore := openMultipartUploadsIn(t, c.params)
	_, purgeErrs := storage.PurgeUploads(context.Background(), driver, time.Now().Add(time.Minute), true)
	// After the purger nothing may be left under _uploads/, crashes or
	// not. The one leftover a kill -9 makes inevitable is Move's multipart
	// copy to a blob's data cut short (the retried commit on another
	// replica copies again): it has no upload-state record, and only the
	// blob's Delete (garbage collection) or the bucket's lifecycle rule
	// removes it. Reported under crashes, failed without.
	// The purger's Deletes delete startedat in this process's background.
	leftAfter := uploadKeys()
	for deadline := time.Now().Add(15 * time.Second); len(leftAfter) > 0 && time.Now().Before(deadline); leftAfter = uploadKeys() {
		time.Sleep(200 * time.Millisecond)
	}
	openAfter := openMultipartUploadsIn(t, c.params)
	for id, keys := range leftAfter {
		t.Errorf("after the upload purger, upload %s left %v", id, keys)
	}
	moveCopies := 0
	for _, u := range openAfter {
		if strings.Contains(u, "/blobs/") && !strings.Contains(u, "/_uploads/") {
			moveCopies++
			leak("after the upload purger, a multipart copy of Move open at a blob's data: %s", u)
			continue
		}
		t.Errorf("after the upload purger, multipart upload open: %s", u)
	}

	s := addStats(loadStats, costest.Stats{})
	for k, v := range statsStart.Requests {
		s.Requests[k] -= v
	}
	for k, v := range statsStart.Faults {
		s.Faults[k] -= v
	}
	var cosRequests int64
	for _, v := range s.Requests {
		cosRequests += v
	}
	pushes := int64(len(state.acked))
	t.Logf("ha: %d replicas, redis %t, faults %t, %d workers, %v", shape.replicas, withRedis, shape.faults, shape.workers, elapsed.Round(time.Second))
	t.Logf("ha: pushes attempted %d, acknowledged %d (whole pushes retried %d); pulls after push retried %d; final pulls %d, data lost %d",
		figures.pushesAttempted.Load(), pushes, figures.pushRetries.Load(), figures.pullRetries.Load(), len(state.acked), lost)
	t.Logf("ha: uploads by hand: monolithic %d, chunked %d; cross-repository mounts %d; tags checked %d; deleted blobs checked %d, answered 200 by a replica %d",
		state.monolithic.Load(), state.chunked.Load(), state.mounts.Load(), len(state.tags), len(state.deletedBlobs), state.cacheAnswers.Load())
	t.Logf("ha: catalog/tag-list pages %d, failed %d; replica kill -9 %d, SIGTERM %d", state.pages.Load(), state.pageErrors.Load(), state.kills.Load(), state.sigterms.Load())
	t.Logf("ha: faults injected %s; COS requests %d (%.0f per pushed image), client requests %d (%.0f per pushed image)",
		formatCounts(s.Faults), cosRequests, float64(cosRequests)/float64(max(pushes, 1)), clientRequests, float64(clientRequests)/float64(max(pushes, 1)))
	t.Logf("ha: client saw on single requests (retried by go-containerregistry): %s", formatCounts(figures.answers))
	t.Logf("ha: operations failed after all retries %d: %s", len(state.clientErrors), strings.Join(state.clientErrors, "; "))
	t.Logf("ha: before the purger: uploads with keys left %d (of completed uploads %d), multipart uploads open %d; purger errors %v; after it: %d and %d (of which Move's copies at a blob's data %d)",
		len(leftBefore), leakedCompleted, len(openBefore), purgeErrs, len(leftAfter), len(openAfter), moveCopies)
	if shape.faults && (s.Faults["error"] == 0 || s.Faults["drop"] == 0) {
		t.Errorf("the emulator injected no errors or no drops (%s): the run tested nothing", formatCounts(s.Faults))
	}
	if pushes < int64(shape.images)*9/10 {
		t.Errorf("only %d of %d images were acknowledged", pushes, shape.images)
	}
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// retry runs f up to n times until it succeeds.
func retry(n int, f func() error) error {
	var err error
	for range n {
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

// haPushOne pushes image i of worker w and pulls it back.
func haPushOne(t *testing.T, i, w int, shape haShape, c *haCluster, state *haState, figures *soakFigures,
	baseLayers []v1.Layer, ref func(string) name.Reference, client *http.Client, opts []remote.Option) {
	repo := fmt.Sprintf("ha/app%d", w)
	// Each worker owns its repository's tags, so "last acknowledged" is
	// well defined; three tags per repository are overwritten in turn.
	tag := fmt.Sprintf("%s:t%d", repo, (i/shape.workers)%3)
	rng := rand.New(rand.NewPCG(uint64(i), 15))
	own := registrytest.NewImage(t, uint64(5000+i), 10<<10+rng.IntN(1<<20))
	var extra []v1.Layer
	switch i % 5 {
	case 1, 2:
		// One layer uploaded by hand: monolithic (POST, PUT with the
		// body) or chunked (three PATCH with Content-Range); 6 MiB, so
		// it spans multipart parts.
		blob := testenv.RandomBytes(6*mib+rng.IntN(mib), uint64(9000+i))
		chunked := i%5 == 2
		err := retry(3, func() error { return haUploadBlob(client, c.lb.URL, repo, blob, chunked) })
		if err != nil {
			state.failed("upload by hand of image %d: %v", i, err)
		} else {
			if chunked {
				state.chunked.Add(1)
			} else {
				state.monolithic.Add(1)
			}
			extra = append(extra, static.NewLayer(blob, types.DockerLayer))
		}
	}
	img, err := mutate.AppendLayers(own, append(append([]v1.Layer{}, baseLayers...), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	var index v1.ImageIndex
	var target remote.Taggable = img
	if i%10 == 7 {
		index, _ = registrytest.NewIndex(t, uint64(7000+i), 2, 20<<10)
		target = index
	}
	dgst := mustDigest(t, target.(interface{ Digest() (v1.Hash, error) }))
	var pushErr error
	for attempt := range soakPushAttempts {
		if attempt > 0 {
			figures.pushRetries.Add(1)
		}
		figures.pushesAttempted.Add(1)
		if index != nil {
			pushErr = remote.WriteIndex(ref(tag), index, opts...)
		} else {
			pushErr = remote.Write(ref(tag), img, opts...)
		}
		if pushErr == nil {
			break
		}
	}
	state.mu.Lock()
	if pushErr != nil {
		delete(state.tags, tag)
		state.mu.Unlock()
		state.failed("push %d (%s): %v", i, tag, pushErr)
		return
	}
	state.tags[tag] = dgst.String()
	state.acked = append(state.acked, haImage{ref: repo + "@" + dgst.String(), image: img, index: index})
	state.mu.Unlock()
	if index == nil {
		pullErr := retry(soakPullAttempts, func() error {
			return checkImage(context.Background(), ref(repo+"@"+dgst.String()), img, opts...)
		})
		if pullErr != nil {
			state.failed("pull after push %d: %v", i, pullErr)
		}
	}
	if i%7 == 6 {
		err := retry(3, func() error { return remote.Delete(ref(tag), opts...) })
		state.mu.Lock()
		if err == nil || isNotFound(err) {
			state.tags[tag] = ""
		} else {
			delete(state.tags, tag)
		}
		state.mu.Unlock()
		if err != nil && !isNotFound(err) {
			state.failed("delete of tag %s: %v", tag, err)
		}
	}
	if i%9 == 4 {
		// A blob deleted through the balancer: every replica must then
		// answer 404 for it, whatever it cached.
		blob := testenv.RandomBytes(64<<10, uint64(11000+i))
		d := digest.FromBytes(blob)
		err := retry(3, func() error {
			if err := haUploadBlob(client, c.lb.URL, "ha/deleted", blob, false); err != nil {
				return err
			}
			// Fill every replica's cache.
			for _, u := range c.replicaURLs {
				haHead(client, u+"/v2/ha/deleted/blobs/"+d.String())
			}
			return haDo(client, http.MethodDelete, c.lb.URL+"/v2/ha/deleted/blobs/"+d.String(), nil, nil, http.StatusAccepted, http.StatusNotFound)
		})
		if err != nil {
			state.failed("blob delete %d: %v", i, err)
			return
		}
		state.mu.Lock()
		state.deletedBlobs = append(state.deletedBlobs, d.String())
		state.mu.Unlock()
		for _, u := range c.replicaURLs {
			if haHead(client, u+"/v2/ha/deleted/blobs/"+d.String()) == http.StatusOK {
				state.cacheAnswers.Add(1)
			}
		}
	}
}

// haCheckDeletedBlobs asks every replica again for every deleted blob.
func haCheckDeletedBlobs(c *haCluster, client *http.Client, state *haState) {
	for _, d := range state.deletedBlobs {
		for _, u := range c.replicaURLs {
			if haHead(client, u+"/v2/ha/deleted/blobs/"+d) == http.StatusOK {
				state.cacheAnswers.Add(1)
			}
		}
	}
}

// haHead returns the status of a HEAD, or 0 when the request failed.
func haHead(client *http.Client, u string) int {
	resp, err := client.Head(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// haDo sends one request and wants one of the statuses; it returns the
// answer's Location resolved against u.
func haDo(client *http.Client, method, u string, header http.Header, body []byte, want ...int) error {
	_, err := haDoLocation(client, method, u, header, body, want...)
	return err
}

func haDoLocation(client *http.Client, method, u string, header http.Header, body []byte, want ...int) (string, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	if header != nil {
		req.Header = header.Clone()
	}
	resp, err := client.Do(req)
	// A replica killed under the request: the balancer answers 502 and the
	// client sends the request again, as go-containerregistry does.
	for try := 1; try < 5 && (err != nil || resp.StatusCode == http.StatusBadGateway); try++ {
		if err == nil {
			resp.Body.Close()
		}
		time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		req, _ = http.NewRequest(method, u, strings.NewReader(string(body)))
		req.Header = header.Clone()
		resp, err = client.Do(req)
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	for _, w := range want {
		if resp.StatusCode == w {
			loc, err := url.Parse(u)
			if err != nil {
				return "", err
			}
			next, err := loc.Parse(resp.Header.Get("Location"))
			if err != nil {
				return "", err
			}
			return next.String(), nil
		}
	}
	return "", fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, msg)
}

// haUploadBlob uploads blob to repo through the balancer, monolithic (POST,
// then PUT with the body) or in three PATCH requests with Content-Range
// then an empty PUT.
func haUploadBlob(client *http.Client, lbURL, repo string, blob []byte, chunked bool) error {
	loc, err := haDoLocation(client, http.MethodPost, lbURL+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	put := blob
	if chunked {
		step := len(blob)/3 + 1
		for off := 0; off < len(blob); off += step {
			end := min(off+step, len(blob))
			h := http.Header{"Content-Type": {"application/octet-stream"},
				"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)}}
			if loc, err = haDoLocation(client, http.MethodPatch, loc, h, blob[off:end], http.StatusAccepted); err != nil {
				return err
			}
		}
		put = nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", digest.FromBytes(blob).String())
	u.RawQuery = q.Encode()
	return haDo(client, http.MethodPut, u.String(), http.Header{"Content-Type": {"application/octet-stream"}}, put, http.StatusCreated)
}

// haPageLists pages the catalog and every repository's tags, two at a
// time, until stop is closed.
func haPageLists(lbURL string, client *http.Client, state *haState, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		repos := haPage(client, lbURL, lbURL+"/v2/_catalog?n=2", state)
		for _, r := range repos {
			haPage(client, lbURL, lbURL+"/v2/"+r+"/tags/list?n=2", state)
		}
		time.Sleep(time.Second)
	}
}

// haPage follows the Link headers from u and returns the names listed
// (repositories or tags).
func haPage(client *http.Client, lbURL, u string, state *haState) []string {
	var names []string
	for u != "" {
		var page struct {
			Repositories, Tags []string
		}
		var link string
		err := retry(5, func() error {
			resp, err := client.Get(u)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound && strings.Contains(u, "/tags/list") {
				return nil // a repository with blobs but no tag yet (ha/deleted)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
			}
			link = resp.Header.Get("Link")
			return json.NewDecoder(resp.Body).Decode(&page)
		})
		state.pages.Add(1)
		if err != nil {
			state.pageErrors.Add(1)
			return names
		}
		names = append(append(names, page.Repositories...), page.Tags...)
		u = ""
		if i, j := strings.Index(link, "<"), strings.Index(link, ">"); i >= 0 && j > i {
			u = lbURL + link[i+1:j]
		}
	}
	return names
}

// haChaos kills a random replica every shape.killEvery and restarts it at
// once; at a quarter of the pushes it stops one with SIGTERM (uploads in
// flight drain), at 40 % it restarts Redis, at 60 % the emulator.
func haChaos(t *testing.T, c *haCluster, shape haShape, progress *atomic.Int64, state *haState, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(15, 1))
	var sigterm, redis, emulator bool
	for {
		select {
		case <-stop:
			return
		case <-time.After(shape.killEvery):
		}
		done := progress.Load() * 100 / int64(shape.images)
		var err error
		switch {
		case !sigterm && done >= 25:
			sigterm = true
			state.sigterms.Add(1)
			err = c.replicas[rng.IntN(len(c.replicas))].restart(syscall.SIGTERM)
		case !redis && done >= 40 && c.redis != nil:
			redis = true
			err = c.redis.restart(syscall.SIGKILL)
		case !emulator && done >= 60:
			emulator = true
			err = c.restartEmulator(t, nil)
		default:
			state.kills.Add(1)
			err = c.replicas[rng.IntN(len(c.replicas))].restart(syscall.SIGKILL)
		}
		if err != nil {
			state.failed("chaos: %v", err)
		}
	}
}

// emulatorParameters are driver parameters for the emulator's bucket.
func emulatorParameters(emulator *costest.Server) cos.Parameters {
	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = emulator.SecretID, emulator.SecretKey
	params.Bucket, params.Region, params.Endpoint = emulator.Bucket, emulator.Region, emulator.URL
	return params
}

// openMultipartUploadsIn lists the multipart uploads open in the bucket of
// params (an emulator in another process), as "key (upload ID)".
func openMultipartUploadsIn(t *testing.T, params cos.Parameters) []string {
	t.Helper()
	driver, err := cos.New(context.Background(), params)
	if err != nil {
		t.Fatalf("opening the bucket to list multipart uploads: %v", err)
	}
	return listOpenUploads(t, driver.Client())
}
