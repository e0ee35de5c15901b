package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-cos/cos"
	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// BenchmarkGarbageCollectCollectors compares garbage collectors out of
// process, on cos-emulator at 20 ms a request:
//
//   - registry-cos garbage-collect (internal/gc);
//   - registry-cos garbage-collect --upstream (distribution's MarkAndSweep
//     on the caching gcdriver, the command before internal/gc);
//   - distribution's own registry command (MarkAndSweep on the cos
//     driver, nothing in between).
//
// With -short only registry-cos runs.
//
// The registry is 150 repositories of 3 images (a base layer shared by
// all, a layer per repository, a config per image: 1,051 blobs), pushed
// through `registry-cos serve` at no latency, with 20 manifests deleted
// through the API; each collector gets its own copy of the emulator's
// data directory, restarted at 20 ms, for a dry run then a deleting run.
// Then a registry of 2,000 repositories and 20,000 blobs (written straight
// into the emulator) for registry-cos's dry run alone. Each run reports
// its seconds, COS requests and peak RSS.
func BenchmarkGarbageCollectCollectors(b *testing.B) {
	registry := buildRegistry(b)
	upstream := filepath.Join(b.TempDir(), "registry-upstream")
	if err := testenv.GoBuild(upstream, "github.com/registry-cos/cos/bench/internal/registrymain"); err != nil {
		b.Fatal(err)
	}
	emulatorBin := filepath.Join(b.TempDir(), "cos-emulator")
	if err := testenv.GoBuild(emulatorBin, "github.com/registry-cos/cos/cmd/cos-emulator"); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		seeded := b.TempDir()
		seedThroughAPI(b, registry, emulatorBin, seeded, 150, 3, 20)
		collectors := []struct {
			name, binary string
			flags        []string
		}{
			// --min-age 0: the registry was pushed a minute ago, and
			// the default (1h) would keep every unreferenced blob.
			{"registry-cos", registry, []string{"--min-age", "0"}},
			{"gcdriver", registry, []string{"--upstream"}},
			{"upstream", upstream, nil},
		}
		if testing.Short() {
			collectors = collectors[:1]
		}
		for _, c := range collectors {
			data := copyDir(b, seeded)
			em, stop := startEmulatorOn(b, emulatorBin, data, "20ms")
			config := gcConfig(b, em)
			for _, mode := range []string{"dry-run", "delete"} {
				flags := c.flags
				if mode == "dry-run" {
					flags = append(flags[:len(flags):len(flags)], "--dry-run")
				}
				runCollector(b, em, c.name+"/"+mode, c.binary, config, flags)
			}
			stop()
		}

		// 2,000 repositories, 20,000 blobs.
		data := b.TempDir()
		em, stop := startEmulatorOn(b, emulatorBin, data, "0s")
		seedGarbage(b, benchDriver(b, em), 0, 2000, 1, 8000)
		stop()
		em, stop = startEmulatorOn(b, emulatorBin, data, "20ms")
		runCollector(b, em, "registry-cos/2000-repos/dry-run", registry, gcConfig(b, em), []string{"--dry-run", "--min-age", "0"})
		stop()
	}
}

// runCollector runs a garbage-collect command and reports its time, COS
// requests and peak RSS.
func runCollector(b *testing.B, em *emulatorProcess, label, binary, config string, flags []string) {
	b.Helper()
	em.reset(b)
	// Not --quiet: standard error carries registry-cos's summary (phases,
	// requests); the decision lines on standard output are dropped.
	args := append(append([]string{"garbage-collect"}, flags...), config)
	cmd := exec.Command(binary, args...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	d, err := timed(cmd.Run)
	if err != nil {
		b.Fatalf("%s: %v\n%s", label, err, stderr.String())
	}
	s := em.stats(b)
	rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB to MiB
	name := strings.ReplaceAll(label, "/", "-")
	b.ReportMetric(d.Seconds(), name+"-s")
	b.ReportMetric(float64(s.Total()), name+"-reqs")
	b.ReportMetric(rss, name+"-rss-MiB")
	b.Logf("%s: %.1fs, peak RSS %.0f MiB, COS requests:%s\n%s", label, d.Seconds(), rss, requestTable(s), stderr.String())
}

// startEmulatorOn starts cos-emulator on data with latency and returns it
// and a function that stops it (so another can use data).
func startEmulatorOn(b *testing.B, binary, data, latency string) (*emulatorProcess, func()) {
	b.Helper()
	addr, admin := testenv.FreeAddr(b), testenv.FreeAddr(b)
	p := testenv.StartProcess(b, exec.Command(binary, "-addr", addr, "-admin-addr", admin, "-data", data, "-latency", latency))
	em := &emulatorProcess{url: "http://" + addr, admin: "http://" + admin}
	p.WaitForHTTP(b, em.admin+"/stats", 60*time.Second)
	return em, func() {
		if err := p.Stop(30 * time.Second); err != nil {
			b.Logf("stopping cos-emulator: %v", err)
		}
	}
}

func benchDriver(b *testing.B, em *emulatorProcess) *cos.Driver {
	params := cos.DefaultParameters()
	params.SecretID, params.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	params.Bucket, params.Region, params.Endpoint = costest.DefaultBucket, costest.DefaultRegion, em.url
	d, err := cos.New(context.Background(), params)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// gcConfig writes a configuration naming only the emulator's storage.
func gcConfig(b *testing.B, em *emulatorProcess) string {
	path := filepath.Join(b.TempDir(), "gc.yml")
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  %s\n", em.storage(false))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// copyDir copies dir (an emulator's stopped data directory) to a new one.
func copyDir(b *testing.B, dir string) string {
	b.Helper()
	dst := filepath.Join(b.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		b.Fatalf("cp -a: %v\n%s", err, out)
	}
	return dst
}

// seedThroughAPI pushes repos repositories of images each through
// `registry-cos serve` on an emulator (no latency) keeping its data in
// data, then deletes deleted of those manifests, and stops both.
func seedThroughAPI(b *testing.B, registry, emulatorBin, data string, repos, images, deleted int) {
	b.Helper()
	em, stop := startEmulatorOn(b, emulatorBin, data, "0s")
	defer stop()
	r := startServe(b, registry, em.storage(false))
	host := strings.TrimPrefix(r.base, "http://")
	base := static.NewLayer([]byte("the base layer every image shares"), types.OCILayer)
	var digests []v1.Hash
	type job struct{ repo, tag string }
	var jobs []job
	for i := range repos {
		for j := range images {
			jobs = append(jobs, job{fmt.Sprintf("bench/gc-%03d", i), fmt.Sprintf("v%d", j)})
		}
	}
	digests = make([]v1.Hash, len(jobs))
	err := parallel(len(jobs), 8, func(i int) error {
		j := jobs[i]
		own := static.NewLayer([]byte("the layer of "+j.repo), types.OCILayer)
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, own)
		if err != nil {
			return err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cfg = cfg.DeepCopy()
		cfg.Config.Labels = map[string]string{"image": j.repo + ":" + j.tag}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return err
		}
		ref, err := name.ParseReference(host+"/"+j.repo+":"+j.tag, name.Insecure)
		if err != nil {
			return err
		}
		if digests[i], err = img.Digest(); err != nil {
			return err
		}
		return remote.Write(ref, img)
	})
	if err != nil {
		b.Fatalf("seeding through the API: %v", err)
	}
	for i := range deleted {
		// Spread over the registry: every 7th image.
		k := (i * 7) % len(jobs)
		ref, err := name.ParseReference(host+"/"+jobs[k].repo+"@"+digests[k].String(), name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Delete(ref); err != nil {
			b.Fatalf("deleting %s: %v", ref, err)
		}
	}
}
