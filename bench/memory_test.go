package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
)

// BenchmarkMemory measures the memory of a registry process (the
// registry-cos binary, built from ./cmd/registry, run with "serve") while
// 32, then 64, pushes of 100 MiB each run at once against it, with the
// driver's defaults (16 MiB parts, a 128 MiB part-buffer budget). The
// emulator runs in the benchmark process, so the figures are the
// registry's alone:
//
//   - peak-RSS-MiB: VmHWM of /proc/PID/status after the pushes;
//   - peak-heap-MiB: the largest Go heap the runtime's GC trace reported
//     (heap size at the start or end of a collection, GODEBUG=gctrace=1),
//     garbage not yet collected included;
//   - peak-live-heap-MiB: the largest heap a collection found live;
//   - peak-buffer-MiB: the largest registry_cos_buffer_bytes_in_use the
//     metrics endpoint showed, sampled every 100 ms.
func BenchmarkMemory(b *testing.B) {
	pushSize := scaled[int64](100*mib, 8*mib)
	binary := buildRegistry(b)
	var peakRSS32, peakHeap32 float64
	for _, pushes := range []int{32, 64} {
		b.Run(fmt.Sprintf("pushes=%d", pushes), func(b *testing.B) {
			var rss, heap, live, buffers float64
			for range b.N {
				rss, heap, live, buffers = measurePushMemory(b, binary, pushes, pushSize)
			}
			b.ReportMetric(rss, "peak-RSS-MiB")
			b.ReportMetric(heap, "peak-heap-MiB")
			b.ReportMetric(live, "peak-live-heap-MiB")
			b.ReportMetric(buffers, "peak-buffer-MiB")
			if pushes == 32 {
				peakRSS32, peakHeap32 = rss, heap
			} else if peakRSS32 > 0 {
				b.ReportMetric(rss/peakRSS32, "RSS-vs-32")
				b.ReportMetric(heap/peakHeap32, "heap-vs-32")
			}
		})
	}
}

// measurePushMemory starts a registry process on a fresh emulator, runs
// pushes concurrent pushes of size bytes, and returns its peak RSS, peak
// Go heap, peak live heap and peak part-buffer use, in MiB.
func measurePushMemory(b *testing.B, binary string, pushes int, size int64) (rss, heap, live, buffers float64) {
	ctx := context.Background()
	emulator := newEmulator(b, costest.Faults{})
	proc := startRegistryProcess(b, binary, emulator)

	sampler := proc.sampleBuffers()
	start := time.Now()
	err := parallel(pushes, pushes, func(i int) error {
		return pushBlobHashing(ctx, proc.base, fmt.Sprintf("bench/memory-%d", i), newPatternReader(uint64(1000+i), size), size)
	})
	elapsed := time.Since(start)
	peakBuffers := sampler.stop()
	if err != nil {
		b.Fatalf("%d concurrent pushes of %d MiB: %v", pushes, size/mib, err)
	}
	hwm, err := procStatus(proc.cmd.Process.Pid, "VmHWM")
	if err != nil {
		b.Fatalf("read the registry's peak RSS: %v", err)
	}
	peakHeap := proc.peakHeap()
	b.Logf("%d pushes of %d MiB in %.1fs (%.0f MB/s): peak RSS %.0f MiB, peak heap %.0f MiB (GC trace), peak part buffers %.0f MiB; emulator requests:%s",
		pushes, size/mib, elapsed.Seconds(), mbPerSecond(int64(pushes)*size, elapsed),
		float64(hwm)/mib, float64(peakHeap)/mib, float64(peakBuffers)/mib, requestTable(emulator.Stats()))
	return float64(hwm) / mib, float64(peakHeap) / mib, float64(proc.peakLiveHeap()) / mib, float64(peakBuffers) / mib
}

// buildRegistry builds the registry-cos binary from ./cmd/registry, or, if
// that does not build, the minimal registry of ./internal/registrymain.
func buildRegistry(b *testing.B) string {
	b.Helper()
	binary := filepath.Join(b.TempDir(), "registry-cos")
	var out bytes.Buffer
	for _, pkg := range []string{"github.com/registry-cos/cos/cmd/registry", "github.com/registry-cos/cos/bench/internal/registrymain"} {
		out.Reset()
		cmd := exec.Command("go", "build", "-o", binary, pkg)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err == nil {
			b.Logf("registry binary built from %s", pkg)
			return binary
		}
		b.Logf("go build %s failed:\n%s", pkg, out.String())
	}
	b.Fatal("no registry binary could be built")
	return ""
}

// registryProcess is a registry-cos serve subprocess.
type registryProcess struct {
	cmd         *exec.Cmd
	base, debug string // base URLs of the API and of the debug server

	mu       sync.Mutex
	heapPeak int64 // bytes, from the GC trace
	livePeak int64 // bytes marked live by a collection, from the GC trace
}

// gcTraceHeap matches the heap sizes of a GODEBUG=gctrace=1 line:
// "... 12->14->6 MB, 16 MB goal, ...".
var gcTraceHeap = regexp.MustCompile(` (\d+)->(\d+)->(\d+) MB`)

// startRegistryProcess runs binary serve with a configuration for the
// emulator, waits until it answers, and stops it when the benchmark ends.
func startRegistryProcess(b *testing.B, binary string, emulator *costest.Server) *registryProcess {
	b.Helper()
	dir := b.TempDir()
	addr, debugAddr := freeAddr(b), freeAddr(b)
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cos:
    secretid: %q
    secretkey: %q
    bucket: %q
    region: %q
    endpoint: %q
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: %s
  secret: registry-cos-bench
  debug:
    addr: %s
    prometheus:
      enabled: true
      path: /metrics
`, emulator.SecretID, emulator.SecretKey, emulator.Bucket, emulator.Region, emulator.URL, addr, debugAddr)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	p := &registryProcess{base: "http://" + addr, debug: "http://" + debugAddr}
	p.cmd = exec.Command(binary, "serve", path)
	p.cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", binary, err)
	}
	var logTail tailBuffer
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*kib), 1*mib)
		for sc.Scan() {
			line := sc.Text()
			if m := gcTraceHeap.FindStringSubmatch(line); m != nil && strings.HasPrefix(line, "gc ") {
				start, _ := strconv.ParseInt(m[1], 10, 64)
				end, _ := strconv.ParseInt(m[2], 10, 64)
				live, _ := strconv.ParseInt(m[3], 10, 64)
				p.mu.Lock()
				p.heapPeak = max(p.heapPeak, max(start, end)*mib)
				p.livePeak = max(p.livePeak, live*mib)
				p.mu.Unlock()
				continue
			}
			logTail.add(line)
		}
	}()
	b.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		<-scanned
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the registry process did not answer on %s within 30s; its log ends with:\n%s", p.base, logTail.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakHeap returns the largest heap the GC trace has reported so far.
// The runtime prints a line per collection, so the figure is as exact as
// the trace's MB granularity.
func (p *registryProcess) peakHeap() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heapPeak
}

// peakLiveHeap returns the largest heap a collection found live: the part
// of the peak that is not garbage waiting for the next collection.
func (p *registryProcess) peakLiveHeap() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.livePeak
}

// bufferSampler polls the driver's buffer gauge on the metrics endpoint.
type bufferSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak atomic.Int64
}

// sampleBuffers starts polling registry_cos_buffer_bytes_in_use every 100 ms.
func (p *registryProcess) sampleBuffers() *bufferSampler {
	s := &bufferSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, ok := scrapeGauge(p.debug+"/metrics", "registry_cos_buffer_bytes_in_use"); ok && int64(v) > s.peak.Load() {
				s.peak.Store(int64(v))
			}
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the polling and returns the peak seen.
func (s *bufferSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak.Load()
}

// scrapeGauge reads one unlabelled series from a Prometheus text endpoint.
func scrapeGauge(url, series string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*kib), 1*mib)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// tailBuffer keeps the last lines of a log for an error message.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 20 {
		t.lines = t.lines[len(t.lines)-20:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
