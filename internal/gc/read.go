package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// manifestRead is a manifest's references, or why they could not be had.
// An error is kept, not returned, until the mark needs the manifest: a
// manifest upstream would never read must not fail the run.
type manifestRead struct {
	refs []digest.Digest
	err  error
}

// tagRead is where a tag's current link points (empty when it has none),
// or why it could not be read.
type tagRead struct {
	digest digest.Digest
	err    error
}

// read fetches, many at once, the manifests the mark may open and, with
// RemoveUntagged, every tag's current link (once per tag: upstream reads
// every tag of a repository once per manifest of it).
func (c *collector) read(ctx context.Context, inv *inventory) (map[digest.Digest]*manifestRead, map[*repoEntry]map[string]tagRead, error) {
	tags := map[*repoEntry]map[string]tagRead{}
	if c.opts.RemoveUntagged {
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opts.Concurrency)
		for _, r := range inv.repos {
			tags[r] = map[string]tagRead{}
			for name, t := range r.tags {
				if !t.current {
					continue // upstream's Lookup skips a tag with no current link
				}
				c.progress.tagsTotal.Add(1)
				g.Go(func() error {
					p := path.Join(repositoriesRoot, r.name, "_manifests/tags", name, "current/link")
					content, err := c.driver.GetContent(gctx, p)
					var read tagRead
					switch {
					case errors.As(err, new(storagedriver.PathNotFoundError)):
					case err != nil:
						read.err = err
					default:
						read.digest, read.err = digest.Parse(string(content))
					}
					if gctx.Err() != nil {
						return gctx.Err()
					}
					mu.Lock()
					tags[r][name] = read
					mu.Unlock()
					c.progress.tagsRead.Add(1)
					return nil
				})
			}
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
	}

	// Every manifest a repository's enumeration marks, then, level by
	// level, whatever they reference that is a manifest somewhere.
	revisionAnywhere := map[digest.Digest]bool{}
	for _, r := range inv.repos {
		for _, l := range r.revisions {
			if l.link && inv.exists(l.digest) {
				revisionAnywhere[l.digest] = true
			}
		}
	}
	manifests := map[digest.Digest]*manifestRead{}
	var next []digest.Digest
	want := func(d digest.Digest) {
		if _, ok := manifests[d]; !ok && revisionAnywhere[d] {
			manifests[d] = nil
			next = append(next, d)
		}
	}
	for _, r := range inv.repos {
		for _, l := range r.revisions {
			if !c.opts.RemoveUntagged || c.young(l.mod) || tagged(tags[r], l.digest) {
				want(l.digest)
			}
		}
	}
	for len(next) > 0 {
		level := next
		next = nil
		c.progress.manifestsTotal.Add(int64(len(level)))
		reads := make([]*manifestRead, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opts.Concurrency)
		for i, d := range level {
			g.Go(func() error {
				reads[i] = c.readManifest(gctx, d)
				c.progress.manifestsRead.Add(1)
				return gctx.Err()
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
		for i, d := range level {
			manifests[d] = reads[i]
			for _, ref := range reads[i].refs {
				want(ref)
			}
		}
	}
	return manifests, tags, nil
}

// tagged reports whether a tag's current link points at dgst.
func tagged(tags map[string]tagRead, dgst digest.Digest) bool {
	for _, t := range tags {
		if t.err == nil && t.digest == dgst {
			return true
		}
	}
	return false
}

// exists reports whether dgst's data is in the blob store, what upstream's
// linked blob stores check behind every link.
func (inv *inventory) exists(dgst digest.Digest) bool {
	b := inv.blobs[dgst]
	return b != nil && b.data
}

// blobDataPath is where the blob store keeps dgst's data.
func blobDataPath(dgst digest.Digest) string {
	hex := dgst.Encoded()
	return path.Join(blobsRoot, string(dgst.Algorithm()), hex[:2], hex, "data")
}

// readManifest reads a manifest blob and takes its references with
// distribution's own manifest types, chosen exactly as upstream's manifest
// store chooses them.
func (c *collector) readManifest(ctx context.Context, dgst digest.Digest) *manifestRead {
	content, err := c.driver.GetContent(ctx, blobDataPath(dgst))
	if err != nil {
		return &manifestRead{err: err}
	}
	m, err := unmarshalManifest(content)
	if err != nil {
		return &manifestRead{err: err}
	}
	read := &manifestRead{}
	for _, d := range m.References() {
		read.refs = append(read.refs, d.Digest)
	}
	return read
}

// unmarshalManifest is the choice of manifest handler upstream's manifest
// store makes in Get (registry/storage/manifeststore.go), with the same
// types and errors.
func unmarshalManifest(content []byte) (distribution.Manifest, error) {
	var versioned struct {
		specs.Versioned
		MediaType string `json:"mediaType,omitempty"`
	}
	if err := json.Unmarshal(content, &versioned); err != nil {
		return nil, err
	}
	if versioned.SchemaVersion != 2 {
		return nil, fmt.Errorf("unrecognized manifest schema version %d", versioned.SchemaVersion)
	}
	switch versioned.MediaType {
	case schema2.MediaTypeManifest:
		m := &schema2.DeserializedManifest{}
		return m, m.UnmarshalJSON(content)
	case v1.MediaTypeImageManifest:
		m := &ocischema.DeserializedManifest{}
		return m, m.UnmarshalJSON(content)
	case manifestlist.MediaTypeManifestList:
		m := &manifestlist.DeserializedManifestList{}
		return m, m.UnmarshalJSON(content)
	case v1.MediaTypeImageIndex:
		m := &ocischema.DeserializedImageIndex{}
		return m, m.UnmarshalJSON(content)
	case "":
		// No media type: an OCI index if it parses as one with manifests,
		// otherwise an OCI image manifest.
		index := &ocischema.DeserializedImageIndex{}
		if err := index.UnmarshalJSON(content); err == nil && index.Manifests != nil {
			return index, nil
		}
		m := &ocischema.DeserializedManifest{}
		return m, m.UnmarshalJSON(content)
	default:
		return nil, distribution.ErrManifestVerification{fmt.Errorf("unrecognized manifest content type %s", versioned.MediaType)}
	}
}
