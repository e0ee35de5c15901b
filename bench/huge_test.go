package bench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// BenchmarkHugeBlob pushes one blob larger than 10,000 × 5 MiB (what parts
// of chunksize alone could hold) through `registry-cos serve` with
// chunksize 5 MiB to `cos-emulator -discard`, which keeps only sizes and
// checksums, in one PATCH, and reports the time of the PATCH and of the
// commit (PUT, with the registry's Move), the upload's parts, the
// registry's peak RSS and the bytes sent to COS per byte stored.
//
// It runs only with REGISTRY_COS_BENCH_HUGE set (a size in GiB, or 1 for
// the default 60 GiB):
//
//	REGISTRY_COS_BENCH_HUGE=1 go test -run '^$' -bench BenchmarkHugeBlob -benchtime 1x -timeout 2h -v ./bench/
//
// multipartcopychunksize is a multiple of chunksize, so the commit's copy
// never cuts a part the emulator discarded (it could not compute the CRC64
// of such a range); the blob ends 100 KiB + 7 bytes after a chunk (60 GiB
// is 12,288 chunks), so the state record the PATCH leaves is kept whole.
func BenchmarkHugeBlob(b *testing.B) {
	env := os.Getenv("REGISTRY_COS_BENCH_HUGE")
	if env == "" {
		b.Skip("set REGISTRY_COS_BENCH_HUGE (GiB, or 1 for 60 GiB) to push a blob of that size")
	}
	gib, err := strconv.ParseInt(env, 10, 64)
	if err != nil || gib < 1 {
		b.Fatalf("REGISTRY_COS_BENCH_HUGE=%q: want a number of GiB", env)
	}
	if gib == 1 {
		gib = 60
	}
	const chunk = 5 * mib
	size := gib<<30/chunk*chunk + 100<<10 + 7
	registry := buildRegistry(b)
	emulatorBin := filepath.Join(b.TempDir(), "cos-emulator")
	if err := testenv.GoBuild(emulatorBin, "github.com/registry-cos/cos/cmd/cos-emulator"); err != nil {
		b.Fatal(err)
	}
	addr, admin := testenv.FreeAddr(b), testenv.FreeAddr(b)
	testenv.StartProcess(b, exec.Command(emulatorBin, "-addr", addr, "-admin-addr", admin, "-discard")).
		WaitForHTTP(b, "http://"+admin+"/stats", 60*time.Second)
	em := &emulatorProcess{url: "http://" + addr, admin: "http://" + admin}
	storage := strings.Replace(em.storage(false), "    endpoint:", fmt.Sprintf("    chunksize: %d\n    multipartcopychunksize: %d\n    endpoint:", chunk, 128*chunk), 1)
	ctx := context.Background()
	for range b.N {
		r := startServe(b, registry, storage)
		em.reset(b)
		loc, err := registrytest.StartUpload(ctx, httpClient, r.base, "huge/blob")
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		start := time.Now()
		if loc, _, err = registrytest.PatchUpload(ctx, httpClient, loc, io.TeeReader(testenv.NewPatternReader(27, size), h), size, -1); err != nil {
			b.Fatal(err)
		}
		patch := time.Since(start)
		parts, largest := uploadParts(b, em, "huge/blob", loc)
		start = time.Now()
		if err := registrytest.FinishUpload(ctx, httpClient, loc, digest.NewDigest(digest.SHA256, h), nil, 0); err != nil {
			b.Fatal(err)
		}
		commit := time.Since(start)
		rss, err := procStatus(r.pid, "VmHWM")
		if err != nil {
			b.Fatal(err)
		}
		st := em.stats(b)
		sent := float64(st.BytesIn) / float64(size)
		b.ReportMetric(float64(size)/(1<<30), "GiB")
		b.ReportMetric(patch.Seconds(), "patch-s")
		b.ReportMetric(commit.Seconds(), "commit-s")
		b.ReportMetric(mbPerSecond(size, patch), "push-MBps")
		b.ReportMetric(float64(parts), "parts")
		b.ReportMetric(float64(rss)/mib, "peak-RSS-MiB")
		b.ReportMetric(sent, "sent-per-stored")
		b.Logf("%d bytes in one PATCH of %s (%.1f MB/s), commit %s; upload of %d parts, the largest %d bytes (10,000 × chunksize = %d); registry peak RSS %.0f MiB; %.4f bytes sent per byte stored\n%s",
			size, patch.Round(time.Millisecond), mbPerSecond(size, patch), commit.Round(time.Millisecond), parts, largest, int64(10000*chunk),
			float64(rss)/mib, sent, requestTable(st))
	}
}

// uploadParts reads the parts of the upload at loc from its state record
// at COS (the emulator keeps the record: it is small): how many, the
// part being assembled included, and the largest.
func uploadParts(b *testing.B, em *emulatorProcess, repo, loc string) (parts int, largest int64) {
	u, err := url.Parse(loc)
	if err != nil {
		b.Fatal(err)
	}
	uuid := u.Path[strings.LastIndex(u.Path, "/")+1:]
	bucketURL, _ := url.Parse(em.url)
	c := cossdk.NewClient(&cossdk.BaseURL{BucketURL: bucketURL}, &http.Client{Transport: &cossdk.AuthorizationTransport{
		SecretID: costest.DefaultSecretID, SecretKey: costest.DefaultSecretKey}})
	key := "docker/registry/v2/repositories/" + repo + "/_uploads/" + uuid + "/data"
	head, err := c.Object.Head(context.Background(), key, nil)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.Atoi(head.Header.Get("x-cos-meta-registry-upload-header"))
	if err != nil {
		b.Fatalf("upload state record of %d bytes, header length %q", head.ContentLength, head.Header.Get("x-cos-meta-registry-upload-header"))
	}
	// Only the header: a tail of 1 MiB or more is bytes the emulator
	// discarded.
	resp, err := c.Object.Get(context.Background(), key, &cossdk.ObjectGetOptions{Range: fmt.Sprintf("bytes=-%d", n)})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	record, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("upload state record: %d bytes, header %d, tail %d", head.ContentLength, n, head.ContentLength-int64(n))
	type part struct {
		Size int64 `json:"size"`
	}
	var header struct {
		Parts    []part `json:"parts"`
		Assembly *struct {
			Parts []part `json:"parts"`
		} `json:"assembly"`
	}
	if err := json.Unmarshal(record[len(record)-n:], &header); err != nil {
		b.Fatal(err)
	}
	for _, p := range header.Parts {
		largest = max(largest, p.Size)
	}
	parts = len(header.Parts)
	if header.Assembly != nil {
		parts++ // the part being assembled
	}
	return parts, largest
}
