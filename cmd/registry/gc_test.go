package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/gc"
	"github.com/registry-cos/cos/internal/gcdriver"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// readCounter counts the GetContent and Stat calls of each path.
type readCounter struct {
	storagedriver.StorageDriver
	mu    sync.Mutex
	reads map[string]int
}

func (c *readCounter) count(op, path string) {
	c.mu.Lock()
	c.reads[op+" "+path]++
	c.mu.Unlock()
}

func (c *readCounter) GetContent(ctx context.Context, path string) ([]byte, error) {
	c.count("GetContent", path)
	return c.StorageDriver.GetContent(ctx, path)
}

func (c *readCounter) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	c.count("Stat", path)
	return c.StorageDriver.Stat(ctx, path)
}

// mostRead returns the largest read count of a content-addressed path.
func (c *readCounter) mostRead() (string, int) {
	var top string
	n := 0
	for k, v := range c.reads {
		if gcdriver.ContentAddressed(k[strings.IndexByte(k, ' ')+1:]) && v > n {
			top, n = k, v
		}
	}
	return top, n
}

// TestGarbageCollectReadsOnce runs the garbage collector's mark phase (a
// dry run) over a registry of images that share layers, on the driver
// alone and on gcdriver.Driver: the collector reads links and Stats blobs several
// times each; through gcdriver.Driver each content-addressed path is read once,
// with fewer COS requests, and a real run removes exactly the blob no
// manifest references.
func TestGarbageCollectReadsOnce(t *testing.T) {
	ctx := testContext(t)
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, emulator, registryOptions{})
	base := registrytest.NewImage(t, 40, 1100)
	push(t, reg.Ref(t, "gc/a:v1"), base)
	push(t, reg.Ref(t, "gc/a:v2"), registrytest.NewImage(t, 41, 1200, 1300))
	push(t, reg.Ref(t, "gc/b:v1"), base)
	orphan := []byte("no manifest references this blob")
	finishUpload(t, startUpload(t, reg, "gc/b"), digest.FromBytes(orphan), orphan)

	config, err := configuration.Parse(strings.NewReader(registryConfigYAML(emulator, registryOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	driver, err := factory.Create(ctx, config.Storage.Type(), config.Storage.Parameters())
	if err != nil {
		t.Fatal(err)
	}
	mark := func(d storagedriver.StorageDriver) costest.Stats {
		t.Helper()
		namespace, err := storage.NewRegistry(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		emulator.ResetStats()
		if err := storage.MarkAndSweep(ctx, d, namespace, storage.GCOpts{DryRun: true, Quiet: true}); err != nil {
			t.Fatalf("garbage-collect --dry-run: %v", err)
		}
		return emulator.Stats()
	}

	plain := &readCounter{StorageDriver: driver, reads: map[string]int{}}
	plainStats := mark(plain)
	if path, n := plain.mostRead(); n < 2 {
		t.Fatalf("the collector read no content-addressed path twice on its own (most: %s, %d times); the test measures nothing", path, n)
	}
	once := &readCounter{StorageDriver: driver, reads: map[string]int{}}
	onceStats := mark(gcdriver.New(once))
	if path, n := once.mostRead(); n != 1 {
		t.Fatalf("through gcdriver.Driver, %s was read %d times, want once", path, n)
	}
	t.Logf("COS requests of a dry run: %d on the driver alone, %d through gcdriver.Driver", plainStats.Total(), onceStats.Total())
	if onceStats.Total() >= plainStats.Total() {
		t.Fatalf("gcdriver.Driver made %d COS requests, the driver alone %d", onceStats.Total(), plainStats.Total())
	}

	// The command itself removes the orphan and nothing else.
	before := storedBlobs(t, reg)
	if err := garbageCollect(ctx, config, gcOptions{Options: gc.Options{Quiet: true}}); err != nil {
		t.Fatalf("garbage-collect: %v", err)
	}
	after := storedBlobs(t, reg)
	delete(before, digest.FromBytes(orphan).String())
	if !mapsEqual(after, before) {
		t.Fatalf("blobs after the collection:\n got %v\nwant %v", keys(after), keys(before))
	}
	pullAndVerifyImage(t, reg.Ref(t, "gc/a:v1"), base)
	pullAndVerifyImage(t, reg.Ref(t, "gc/b:v1"), base)
}

// TestGarbageCollectCommand runs the built binary the way scripts do:
// upstream's flags and lines on standard output (the summary line, a line
// per eligible blob), progress and summary on standard error, exit 0; a
// bad flag value and an unusable storage exit 1 with one line naming it.
func TestGarbageCollectCommand(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{})
	reg := startRegistry(t, emulator, registryOptions{})
	push(t, reg.Ref(t, "cmd/a:v1"), registrytest.NewImage(t, 60, 500))
	orphan := []byte("the command's orphan")
	finishUpload(t, startUpload(t, reg, "cmd/a"), digest.FromBytes(orphan), orphan)
	config := testenv.WriteFile(t, "config.yml", registryConfigYAML(emulator, registryOptions{}))
	binary := registryBinary(t)

	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(binary, append([]string{"garbage-collect"}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	stdout, stderr, err := run("--dry-run", "--min-age", "0", config)
	if err != nil {
		t.Fatalf("garbage-collect --dry-run: %v\n%s", err, stderr)
	}
	for _, want := range []string{
		"cmd/a\n",
		"3 blobs marked, 1 blobs and 0 manifests eligible for deletion\n",
		"blob eligible for deletion: " + digest.FromBytes(orphan).String() + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("standard output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "garbage-collect: 3 blobs marked; 1 blobs (") || !strings.Contains(stderr, "COS requests (") {
		t.Errorf("standard error lacks the summary:\n%s", stderr)
	}
	// With the default --min-age the fresh orphan is kept, and said so.
	stdout, _, err = run("--dry-run", config)
	if err != nil || !strings.Contains(stdout, "3 blobs marked, 0 blobs and 0 manifests eligible for deletion") || !strings.Contains(stdout, "1 blobs kept") {
		t.Errorf("garbage-collect --dry-run with the default --min-age: %v\n%s", err, stdout)
	}
	stdout, stderr, err = run("--quiet", "--min-age", "0", config)
	if err != nil || stdout != "" || stderr != "" {
		t.Errorf("garbage-collect --quiet: %v, printed %q and %q", err, stdout, stderr)
	}
	pullAndVerifyImage(t, reg.Ref(t, "cmd/a:v1"), registrytest.NewImage(t, 60, 500))

	for _, bad := range [][]string{{"--min-age", "-1s", config}, {"--concurrency", "0", config}, {filepath.Join(t.TempDir(), "missing.yml")}} {
		_, stderr, err := run(bad...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "registry-cos: ") {
			t.Errorf("garbage-collect %v: %v, printed %q; want exit 1 and one line", bad, err, stderr)
		}
	}
}
