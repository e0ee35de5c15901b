package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// imageLayerSizes are the layers of the typical image: 1 to 30 MiB.
var imageLayerSizes = []int{1 * mib, 3 * mib, 8 * mib, 16 * mib, 30 * mib}

// BenchmarkImage pushes and pulls a typical image (five layers of 1 to 30
// MiB, a config and a manifest) with go-containerregistry's remote package,
// the client library of crane, ko and many CI tools, through a registry on
// registry-cos with redirects on, and reports the wall time and the COS
// requests each made, by operation.
func BenchmarkImage(b *testing.B) {
	b.Run("unthrottled", func(b *testing.B) { benchmarkImage(b, costest.Faults{}) })
	b.Run("throttled", func(b *testing.B) { benchmarkImage(b, throttledFaults) })
}

func benchmarkImage(b *testing.B, faults costest.Faults) {
	ctx := context.Background()
	img := registrytest.NewImage(b, 100, imageLayerSizes...)
	emulator := newEmulator(b, faults)
	base := newRegistry(b, "cos", testenv.DriverParameters(emulator), true)
	host := strings.TrimPrefix(base, "http://")

	var push, pull time.Duration
	var pushStats, pullStats costest.Stats
	b.ResetTimer()
	for i := range b.N {
		ref, err := name.ParseReference(fmt.Sprintf("%s/bench/image-%d:v1", host, i), name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		emulator.ResetStats()
		d, err := timed(func() error {
			return remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(httpClient.Transport))
		})
		if err != nil {
			b.Fatalf("push %s: %v", ref, err)
		}
		push += d
		pushStats = settledStats(emulator)

		emulator.ResetStats()
		d, err = timed(func() error { return pullImage(ctx, ref) })
		if err != nil {
			b.Fatalf("pull %s: %v", ref, err)
		}
		pull += d
		pullStats = settledStats(emulator)
	}
	b.StopTimer()

	b.ReportMetric(push.Seconds()/float64(b.N), "push-s")
	b.ReportMetric(pull.Seconds()/float64(b.N), "pull-s")
	reportRequests(b, "push", pushStats)
	reportRequests(b, "pull", pullStats)
	b.Logf("image of %d layers (%v bytes), emulator faults %+v", len(imageLayerSizes), imageLayerSizes, faults)
	b.Logf("push %.2fs, pull %.2fs", push.Seconds()/float64(b.N), pull.Seconds()/float64(b.N))
	b.Logf("COS requests of one image push:%s", requestTable(pushStats))
	b.Logf("COS requests of one image pull:%s", requestTable(pullStats))
}

// pullImage fetches the manifest, the config and every layer, and reads
// them to the end (which checks their digests), as a container runtime does.
func pullImage(ctx context.Context, ref name.Reference) error {
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(httpClient.Transport))
	if err != nil {
		return err
	}
	return registrytest.ReadImage(img)
}
