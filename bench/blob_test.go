package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// throttledFaults is what a cloud object store looks like from one machine:
// 20 ms before every answer and 50 MB/s on every connection.
var throttledFaults = costest.Faults{Latency: 20 * time.Millisecond, Bandwidth: 50 * megabyte}

// BenchmarkBlob1GiB pushes and pulls one 1 GiB blob through the registry's
// HTTP API (POST, one PATCH streaming the body, PUT ?digest=; GET following
// redirects), first on the upstream filesystem driver on local disk, then on
// registry-cos on a disk-backed emulator, and reports both throughputs and
// their ratio. Pulls from registry-cos are measured with redirects on (the
// client fetches a presigned URL from the emulator) and off (the registry
// streams the blob through the driver's Reader).
//
// The "throttled" run adds 20 ms of latency to every emulator request and
// caps every emulator connection at 50 MB/s; its push is also reported as a
// multiple of that per-connection cap.
func BenchmarkBlob1GiB(b *testing.B) {
	b.Run("unthrottled", func(b *testing.B) { benchmarkBlob(b, costest.Faults{}) })
	b.Run("throttled", func(b *testing.B) { benchmarkBlob(b, throttledFaults) })
}

func benchmarkBlob(b *testing.B, faults costest.Faults) {
	ctx := context.Background()
	size := scaled[int64](1*gib, 64*mib)
	dgst := patternDigest(1, size)

	fsRegistry := newRegistry(b, "filesystem", map[string]any{"rootdirectory": b.TempDir()}, false)
	emulator := newEmulator(b, faults)
	cosRedirect := newRegistry(b, "cos", testenv.DriverParameters(emulator), true)
	cosDirect := newRegistry(b, "cos", testenv.DriverParameters(emulator), false)

	push := func(base, repo string) time.Duration {
		d, err := timed(func() error { return pushBlob(ctx, base, repo, testenv.NewPatternReader(1, size), size, dgst) })
		if err != nil {
			b.Fatalf("push %d bytes to %s: %v", size, base, err)
		}
		return d
	}
	pull := func(base, repo string) time.Duration {
		var n int64
		d, err := timed(func() (err error) {
			n, err = pullBlob(ctx, base, repo, dgst)
			return err
		})
		if err != nil {
			b.Fatalf("pull from %s: %v", base, err)
		}
		if n != size {
			b.Fatalf("pull from %s: got %d bytes, want %d", base, n, size)
		}
		return d
	}

	var fsPush, fsPull, cosPush, cosPullRedirect, cosPullDirect time.Duration
	var pushStats, pullRedirectStats, pullDirectStats costest.Stats
	b.ResetTimer()
	for i := range b.N {
		repo := fmt.Sprintf("bench/blob-%d", i)
		fsPush += push(fsRegistry, repo)
		fsPull += pull(fsRegistry, repo)

		emulator.ResetStats()
		cosPush += push(cosRedirect, repo)
		pushStats = settledStats(emulator)

		emulator.ResetStats()
		cosPullRedirect += pull(cosRedirect, repo)
		pullRedirectStats = settledStats(emulator)

		emulator.ResetStats()
		cosPullDirect += pull(cosDirect, repo)
		pullDirectStats = settledStats(emulator)
	}
	b.StopTimer()

	total := size * int64(b.N)
	rate := func(d time.Duration) float64 { return mbPerSecond(total, d) }
	b.ReportMetric(rate(fsPush), "fs-push-MB/s")
	b.ReportMetric(rate(cosPush), "cos-push-MB/s")
	b.ReportMetric(rate(cosPush)/rate(fsPush), "push-ratio")
	b.ReportMetric(rate(fsPull), "fs-pull-MB/s")
	b.ReportMetric(rate(cosPullRedirect), "cos-pull-redirect-MB/s")
	b.ReportMetric(rate(cosPullRedirect)/rate(fsPull), "pull-redirect-ratio")
	b.ReportMetric(rate(cosPullDirect), "cos-pull-direct-MB/s")
	b.ReportMetric(rate(cosPullDirect)/rate(fsPull), "pull-direct-ratio")
	if faults.Bandwidth > 0 {
		b.ReportMetric(rate(cosPush)/(float64(faults.Bandwidth)/megabyte), "push-x-conn-cap")
	}
	reportRequests(b, "push", pushStats)
	reportRequests(b, "pull-redirect", pullRedirectStats)
	reportRequests(b, "pull-direct", pullDirectStats)
	b.Logf("%d MiB blob, emulator faults %+v", size/mib, faults)
	b.Logf("push: filesystem %.0f MB/s, cos %.0f MB/s (%.2fx)", rate(fsPush), rate(cosPush), rate(cosPush)/rate(fsPush))
	b.Logf("pull: filesystem %.0f MB/s, cos redirect %.0f MB/s (%.2fx), cos through registry %.0f MB/s (%.2fx)",
		rate(fsPull), rate(cosPullRedirect), rate(cosPullRedirect)/rate(fsPull), rate(cosPullDirect), rate(cosPullDirect)/rate(fsPull))
	b.Logf("COS requests of the last push:%s", requestTable(pushStats))
	b.Logf("COS requests of the last pull with redirect:%s", requestTable(pullRedirectStats))
	b.Logf("COS requests of the last pull without redirect:%s", requestTable(pullDirectStats))
}
