package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// BenchmarkOutOfProcess measures the registry the way an operator runs it:
// `registry-cos serve` and `cos-emulator` as separate processes (both
// built by the benchmark), go-containerregistry's remote (crane's client)
// pushing and pulling from this process, and the upstream filesystem
// driver served by the same binary as the reference, in the same run.
//
//   - push-MBps, pull-MBps: one 256 MiB layer (32 MiB with -short);
//     "throttled" is cos-emulator -latency 20ms -bandwidth 50 (MB/s per
//     connection); pulls with redirects off go through the registry;
//   - CPU-s-per-GB: the registry process's user+system CPU time
//     (/proc/PID/stat) over the push, per GB pushed;
//   - push-reqs: COS requests of the push (from cos-emulator -admin-addr);
//   - catalog, tag list and garbage-collect --dry-run at 20 ms: listing
//     requests and wall time over 150 repositories of 3 images, 1,500
//     unreferenced blobs and a repository of 300 tags.
//
// With REGISTRY_COS_BENCH_PROFILE=dir, the registry's CPU profile over each
// push (pprof on its debug server) is written to dir, one file a run.
func BenchmarkOutOfProcess(b *testing.B) {
	size := scaled[int64](256*mib, 32*mib)
	registry := buildRegistry(b)
	emulatorBin := filepath.Join(b.TempDir(), "cos-emulator")
	if out, err := exec.Command("go", "build", "-o", emulatorBin, "github.com/registry-cos/cos/cmd/cos-emulator").CombinedOutput(); err != nil {
		b.Fatalf("go build cos-emulator: %v\n%s", err, out)
	}
	content, err := io.ReadAll(testenv.NewPatternReader(7, size))
	if err != nil {
		b.Fatal(err)
	}

	b.Run("filesystem", func(b *testing.B) {
		storage := fmt.Sprintf("filesystem:\n    rootdirectory: %s\n  redirect:\n    disable: true", b.TempDir())
		for range b.N {
			benchmarkPushPull(b, startServe(b, registry, storage), nil, content)
		}
	})
	for _, tc := range []struct {
		name      string
		latency   string
		bandwidth string
		redirect  bool
	}{
		{"cos/unthrottled", "0s", "0", false},
		{"cos/throttled/redirect-off", "20ms", "50", false},
		{"cos/throttled/redirect-on", "20ms", "50", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			em := startEmulatorProcess(b, emulatorBin, tc.latency, tc.bandwidth)
			for range b.N {
				benchmarkPushPull(b, startServe(b, registry, em.storage(tc.redirect)), em, content)
			}
		})
	}
	b.Run("cos/walks-at-20ms", func(b *testing.B) {
		em := startEmulatorProcess(b, emulatorBin, "20ms", "0")
		for range b.N {
			benchmarkWalks(b, registry, em)
		}
	})
}

// emulatorProcess is a cos-emulator subprocess.
type emulatorProcess struct {
	url, admin string
}

func startEmulatorProcess(b *testing.B, binary, latency, bandwidth string) *emulatorProcess {
	b.Helper()
	addr, admin := testenv.FreeAddr(b), testenv.FreeAddr(b)
	p := testenv.StartProcess(b, exec.Command(binary, "-addr", addr, "-admin-addr", admin, "-data", b.TempDir(), "-latency", latency, "-bandwidth", bandwidth))
	em := &emulatorProcess{url: "http://" + addr, admin: "http://" + admin}
	p.WaitForHTTP(b, em.admin+"/stats", 60*time.Second)
	return em
}

// storage is the storage section of a registry on the emulator.
func (em *emulatorProcess) storage(redirect bool) string {
	return fmt.Sprintf(`cos:
    secretid: %s
    secretkey: %s
    bucket: %s
    region: %s
    endpoint: %s
  redirect:
    disable: %v`, costest.DefaultSecretID, costest.DefaultSecretKey, costest.DefaultBucket, costest.DefaultRegion, em.url, !redirect)
}

func (em *emulatorProcess) reset(b *testing.B) {
	resp, err := http.Post(em.admin+"/stats/reset", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
}

func (em *emulatorProcess) stats(b *testing.B) costest.Stats {
	resp, err := http.Get(em.admin + "/stats")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var s costest.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		b.Fatal(err)
	}
	return s
}

// servedRegistry is a `registry-cos serve` subprocess.
type servedRegistry struct {
	base, config, debug string
	pid                 int
}

func startServe(b *testing.B, binary, storage string) *servedRegistry {
	b.Helper()
	addr, debug := testenv.FreeAddr(b), testenv.FreeAddr(b)
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  %s
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
  delete:
    enabled: true
http:
  addr: %s
  secret: registry-cos-bench
  debug:
    addr: %s
`, storage, addr, debug)
	path := filepath.Join(b.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"serve", path}
	if os.Getenv("REGISTRY_COS_BENCH_PROFILE") != "" {
		// profileCPU reads the profile from the debug server, which serves
		// pprof only when asked.
		args = []string{"serve", "--debug-pprof", path}
	}
	p := testenv.StartProcess(b, exec.Command(binary, args...))
	r := &servedRegistry{base: "http://" + addr, config: path, debug: "http://" + debug, pid: p.Cmd.Process.Pid}
	p.WaitForHTTP(b, r.base+"/v2/", 60*time.Second)
	return r
}

// benchmarkPushPull pushes content as a layer with crane's client, then
// pulls it back, reporting MB/s, the registry's CPU per GB pushed and,
// on COS, the requests of the push.
func benchmarkPushPull(b *testing.B, r *servedRegistry, em *emulatorProcess, content []byte) {
	ctx := context.Background()
	repo, err := name.NewRepository(strings.TrimPrefix(r.base, "http://")+"/bench/oop", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	layer := static.NewLayer(content, types.OCILayer)
	dgst, err := layer.Digest()
	if err != nil {
		b.Fatal(err)
	}
	if em != nil {
		em.reset(b)
	}
	cpu0, err := procCPUSeconds(r.pid)
	if err != nil {
		b.Fatal(err)
	}
	profiled := r.profileCPU(b)
	push, err := timed(func() error { return remote.WriteLayer(repo, layer, remote.WithContext(ctx)) })
	if err != nil {
		b.Fatalf("push: %v", err)
	}
	cpu1, err := procCPUSeconds(r.pid)
	<-profiled
	if err != nil {
		b.Fatal(err)
	}
	size := int64(len(content))
	b.ReportMetric(mbPerSecond(size, push), "push-MBps")
	b.ReportMetric((cpu1-cpu0)/(float64(size)/1e9), "CPU-s-per-GB")
	if em != nil {
		s := em.stats(b)
		b.ReportMetric(float64(s.Total()), "push-reqs")
		b.ReportMetric(float64(s.Total()-s.Count("UploadPart")-s.Count("UploadPartCopy")), "push-serial-reqs")
		b.Logf("COS requests of the push:%s", requestTable(s))
	}
	pull, err := timed(func() error {
		l, err := remote.Layer(repo.Digest(dgst.String()), remote.WithContext(ctx))
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil && n != size {
			err = fmt.Errorf("pulled %d bytes of %d", n, size)
		}
		return err
	})
	if err != nil {
		b.Fatalf("pull: %v", err)
	}
	b.ReportMetric(mbPerSecond(size, pull), "pull-MBps")
}

// profileCPU starts a CPU profile of the registry for the next few
// seconds when REGISTRY_COS_BENCH_PROFILE names a directory; the channel is
// closed when the profile is written (at once without one).
func (r *servedRegistry) profileCPU(b *testing.B) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("REGISTRY_COS_BENCH_PROFILE")
	if dir == "" {
		close(done)
		return done
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", strings.ReplaceAll(b.Name(), "/", "_"), time.Now().UnixNano()))
	go func() {
		defer close(done)
		resp, err := http.Get(r.debug + "/debug/pprof/profile?seconds=3")
		if err != nil {
			b.Errorf("CPU profile: %v", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			b.Errorf("CPU profile: %v", err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // the profile has started
	return done
}

// benchmarkWalks seeds the registry's tree straight into the emulator and
// times the catalog, a tag list, a garbage-collect dry run and the
// garbage-collect that deletes.
func benchmarkWalks(b *testing.B, registry string, em *emulatorProcess) {
	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	params.Bucket, params.Region, params.Endpoint = costest.DefaultBucket, costest.DefaultRegion, em.url
	driver, err := cos.New(context.Background(), params)
	if err != nil {
		b.Fatal(err)
	}
	seedGarbage(b, driver, 0, 150, 3, 1500)
	seedTags(b, driver, "bench/tags", 300, 5)
	r := startServe(b, registry, em.storage(false))
	for _, w := range []struct {
		name string
		run  func() error
	}{
		{"catalog", func() error { fetchList(b, r.base+"/v2/_catalog?n=1000", "repositories"); return nil }},
		{"tags", func() error { fetchList(b, r.base+"/v2/bench/tags/tags/list?n=1000", "tags"); return nil }},
		{"gc", func() error { return garbageCollect(registry, r.config, "--dry-run") }},
		// Then the run that deletes the 1,500 unreferenced blobs.
		{"gc-delete", func() error { return garbageCollect(registry, r.config) }},
	} {
		em.reset(b)
		d, err := timed(w.run)
		if err != nil {
			b.Fatalf("%s: %v", w.name, err)
		}
		s := em.stats(b)
		b.ReportMetric(d.Seconds(), w.name+"-s")
		b.ReportMetric(float64(s.Count("ListObjects")), w.name+"-listings")
		b.Logf("%s: %.1fs, COS requests:%s", w.name, d.Seconds(), requestTable(s))
	}
}

// garbageCollect runs "registry-cos garbage-collect" on config, with
// --min-age 0: the data was seeded moments ago.
func garbageCollect(registry, config string, flags ...string) error {
	args := append(append([]string{"garbage-collect", "--min-age", "0"}, flags...), "--quiet", config)
	out, err := exec.Command(registry, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
