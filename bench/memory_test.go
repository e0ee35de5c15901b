package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
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
		return pushBlob(ctx, proc.URL, fmt.Sprintf("bench/memory-%d", i), testenv.NewPatternReader(uint64(1000+i), size), size, "")
	})
	elapsed := time.Since(start)
	peakBuffers := sampler.stop()
	if err != nil {
		b.Fatalf("%d concurrent pushes of %d MiB: %v", pushes, size/mib, err)
	}
	hwm, err := procStatus(proc.Cmd.Process.Pid, "VmHWM")
	if err != nil {
		b.Fatalf("read the registry's peak RSS: %v", err)
	}
	peakHeap, peakLive := proc.heapPeaks()
	b.Logf("%d pushes of %d MiB in %.1fs (%.0f MB/s): peak RSS %.0f MiB, peak heap %.0f MiB (GC trace), peak part buffers %.0f MiB; emulator requests:%s",
		pushes, size/mib, elapsed.Seconds(), mbPerSecond(int64(pushes)*size, elapsed),
		float64(hwm)/mib, float64(peakHeap)/mib, float64(peakBuffers)/mib, requestTable(emulator.Stats()))
	return float64(hwm) / mib, float64(peakHeap) / mib, float64(peakLive) / mib, float64(peakBuffers) / mib
}

// buildRegistry builds the registry-cos binary from ./cmd/registry, or, if
// that does not build, the minimal registry of ./internal/registrymain.
func buildRegistry(b *testing.B) string {
	b.Helper()
	binary := filepath.Join(b.TempDir(), "registry-cos")
	for _, pkg := range []string{"github.com/registry-cos/cos/cmd/registry", "github.com/registry-cos/cos/bench/internal/registrymain"} {
		err := testenv.GoBuild(binary, pkg)
		if err == nil {
			b.Logf("registry binary built from %s", pkg)
			return binary
		}
		b.Log(err)
	}
	b.Fatal("no registry binary could be built")
	return ""
}

// registryProcess is a registry-cos serve subprocess with its debug server.
type registryProcess struct {
	*registrytest.Process
	debug string // base URL of the debug server
}

// gcTraceHeap matches the heap sizes of a GODEBUG=gctrace=1 line:
// "gc 7 @0.1s 2%: ... 12->14->6 MB, 16 MB goal, ...".
var gcTraceHeap = regexp.MustCompile(`(?m)^gc .* (\d+)->(\d+)->(\d+) MB`)

// startRegistryProcess runs binary serve with a configuration for the
// emulator and the runtime's GC trace on, waits until it answers, and stops
// it when the benchmark ends.
func startRegistryProcess(b *testing.B, binary string, emulator *costest.Server) *registryProcess {
	b.Helper()
	debugAddr := testenv.FreeAddr(b)
	config := registrytest.ConfigYAML(registrytest.Options{
		Parameters:          testenv.DriverParameters(emulator),
		BlobDescriptorCache: true,
		LogLevel:            "error",
		DebugAddr:           debugAddr,
	})
	path := testenv.WriteFile(b, "config.yml", config)
	return &registryProcess{
		Process: registrytest.StartProcess(b, binary, path, "GODEBUG=gctrace=1"),
		debug:   "http://" + debugAddr,
	}
}

// heapPeaks returns the largest heap the GC trace has reported so far
// (garbage not yet collected included) and the largest heap a collection
// found live. The runtime prints a line per collection, so the figures are
// as exact as the trace's MB granularity.
func (p *registryProcess) heapPeaks() (heap, live int64) {
	for _, m := range gcTraceHeap.FindAllStringSubmatch(p.Output.String(), -1) {
		start, _ := strconv.ParseInt(m[1], 10, 64)
		end, _ := strconv.ParseInt(m[2], 10, 64)
		marked, _ := strconv.ParseInt(m[3], 10, 64)
		heap = max(heap, max(start, end)*mib)
		live = max(live, marked*mib)
	}
	return heap, live
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
