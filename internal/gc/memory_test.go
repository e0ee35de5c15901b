package gc_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/registry-cos/cos/internal/gc"
)

// syntheticRegistry is a storage driver whose Walk serves, from nothing but
// arithmetic, a repository of manifests manifests of layersPer layers
// each, every layer distinct: the listings and manifests a collection of
// manifests*(layersPer+2) blobs reads, with no storage behind them.
type syntheticRegistry struct {
	storagedriver.StorageDriver // nil: only Walk and GetContent are used
	manifests, layersPer        int
	digests                     []digest.Digest // of the manifests
}

func syntheticDigest(kind string, i int) digest.Digest {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	sum := sha256.Sum256(append([]byte(kind), b[:]...))
	return digest.NewDigestFromBytes(digest.SHA256, sum[:])
}

func (s *syntheticRegistry) manifest(i int) []byte {
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	layers := make([]desc, s.layersPer)
	for l := range layers {
		layers[l] = desc{"application/vnd.oci.image.layer.v1.tar+gzip", syntheticDigest("layer", i*s.layersPer+l), 1000}
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{"application/vnd.oci.image.config.v1+json", syntheticDigest("config", i), 100}, "layers": layers})
	return m
}

func (s *syntheticRegistry) Walk(ctx context.Context, from string, f storagedriver.WalkFn, _ ...func(*storagedriver.WalkOptions)) error {
	file := func(p string) error {
		return f(storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{Path: p, Size: 1000, ModTime: time.Unix(0, 0)}})
	}
	blob := func(d digest.Digest) error {
		return file(path.Join("/docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data"))
	}
	switch {
	case strings.HasSuffix(from, "/blobs"):
		for i := range s.manifests {
			for _, d := range []digest.Digest{s.digests[i], syntheticDigest("config", i)} {
				if err := blob(d); err != nil {
					return err
				}
			}
			for l := range s.layersPer {
				if err := blob(syntheticDigest("layer", i*s.layersPer+l)); err != nil {
					return err
				}
			}
		}
	case strings.HasSuffix(from, "/repositories"):
		for i := range s.manifests {
			d := s.digests[i]
			if err := file("/docker/registry/v2/repositories/big/_manifests/revisions/sha256/" + d.Encoded() + "/link"); err != nil {
				return err
			}
		}
	}
	return nil
}

// BenchmarkMarkMemory measures the memory of a dry run over 1,000,000
// blobs (10,000 manifests of 98 layers and a config): the heap the mark
// set holds once the collection is over, and the peak heap during it.
func BenchmarkMarkMemory(b *testing.B) {
	s := &syntheticRegistry{manifests: 10_000, layersPer: 98}
	byDigest := map[string][]byte{}
	for i := range s.manifests {
		m := s.manifest(i)
		s.digests = append(s.digests, digest.FromBytes(m))
		byDigest[s.digests[i].Encoded()] = m
	}
	d := &indexedRegistry{syntheticRegistry: s, byDigest: byDigest}
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak atomic.Uint64
		done := make(chan struct{})
		go func() {
			var m runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-time.After(20 * time.Millisecond):
					runtime.ReadMemStats(&m)
					if m.HeapAlloc > peak.Load() {
						peak.Store(m.HeapAlloc)
					}
				}
			}
		}()
		res, err := gc.Collect(context.Background(), d, gc.Options{DryRun: true})
		close(done)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if len(res.Marked) != 1_000_000 {
			b.Fatalf("%d blobs marked, want 1,000,000", len(res.Marked))
		}
		const mib = 1 << 20
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/mib, "markset-MiB")
		b.ReportMetric(float64(peak.Load()-before.HeapAlloc)/mib, "peak-heap-MiB")
		b.Logf("mark set of %d blobs: %.0f MiB held after the run, peak heap %.0f MiB during it",
			len(res.Marked), float64(after.HeapAlloc-before.HeapAlloc)/mib, float64(peak.Load()-before.HeapAlloc)/mib)
		runtime.KeepAlive(res)
	}
}

// indexedRegistry answers GetContent, of manifests only, from an index.
type indexedRegistry struct {
	*syntheticRegistry
	byDigest map[string][]byte
}

func (r *indexedRegistry) GetContent(ctx context.Context, p string) ([]byte, error) {
	if m, ok := r.byDigest[path.Base(path.Dir(p))]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("synthetic registry: no content at %s", p)
}
