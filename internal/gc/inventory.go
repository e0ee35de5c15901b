package gc

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// The registry's storage layout (distribution's registry/storage/paths.go).
const (
	storageRoot      = "/docker/registry/v2"
	blobsRoot        = storageRoot + "/blobs"
	repositoriesRoot = storageRoot + "/repositories"
)

// inventory is what the listings found: every blob and every repository
// with its manifest revisions, tags and layer links.
type inventory struct {
	blobs  map[digest.Digest]*blobEntry
	repos  []*repoEntry // in upstream's order: path order of their names
	byName map[string]*repoEntry
	// others are directories with layer links and no _manifests (every
	// manifest deleted): not repositories to upstream's enumeration, so
	// their links are never judged, but a cache must forget them too.
	others []*repoEntry
}

// blobEntry is a blob's directory in the blob store.
type blobEntry struct {
	size   int64
	mod    time.Time
	data   bool     // its data file exists: upstream's blob exists
	others []string // the files under the directory other than data (none the registry writes)
}

// repoEntry is a repository: a directory holding a _manifests directory.
type repoEntry struct {
	name      string
	revisions []*linkEntry          // _manifests/revisions, in path order
	layers    []*linkEntry          // _layers, in path order
	tags      map[string]*tagEntry  // _manifests/tags/<tag>
	byDigest  map[digest.Digest]int // revisions index by digest
	layerAt   map[digest.Digest]int // layers index by digest
	manifests bool                  // a _manifests directory exists
}

// linkEntry is a link directory: <algorithm>/<hex>/ holding link.
type linkEntry struct {
	digest digest.Digest
	mod    time.Time
	link   bool     // the link file exists
	files  []string // every file under the directory
}

// tagEntry is a tag's directory.
type tagEntry struct {
	current bool                       // current/link exists
	index   map[digest.Digest][]string // index/<alg>/<hex>/: the files under it
}

// tagNames are the repository's tags, sorted as upstream's TagService.All
// returns them.
func (r *repoEntry) tagNames() []string {
	names := make([]string, 0, len(r.tags))
	for t := range r.tags {
		names = append(names, t)
	}
	sort.Strings(names)
	return names
}

// revision returns the repository's revision of dgst, or nil.
func (r *repoEntry) revision(dgst digest.Digest) *linkEntry {
	if i, ok := r.byDigest[dgst]; ok {
		return r.revisions[i]
	}
	return nil
}

// list reads the blob store and the repository tree, side by side, each
// as one walk (on COS, flat listing pages).
func (c *collector) list(ctx context.Context) (*inventory, error) {
	inv := &inventory{blobs: map[digest.Digest]*blobEntry{}, byName: map[string]*repoEntry{}}
	repos := map[string]*repoEntry{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.listBlobs(gctx, inv.blobs) })
	g.Go(func() error { return c.listRepositories(gctx, repos) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, r := range repos {
		if !r.manifests {
			inv.others = append(inv.others, r)
			continue
		}
		sortLinks(r.revisions)
		sortLinks(r.layers)
		r.byDigest = make(map[digest.Digest]int, len(r.revisions))
		for i, l := range r.revisions {
			r.byDigest[l.digest] = i
		}
		r.layerAt = make(map[digest.Digest]int, len(r.layers))
		for i, l := range r.layers {
			r.layerAt[l.digest] = i
		}
		inv.repos = append(inv.repos, r)
		inv.byName[r.name] = r
	}
	sort.Slice(inv.repos, func(i, j int) bool { return lessPath(inv.repos[i].name, inv.repos[j].name) })
	return inv, nil
}

// listBlobs records every file under the blob store by the blob directory
// it is in (blobs/<algorithm>/<2 hex>/<hex>/).
func (c *collector) listBlobs(ctx context.Context, blobs map[digest.Digest]*blobEntry) error {
	err := c.driver.Walk(ctx, blobsRoot, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		p := fi.Path()
		parts := strings.Split(strings.TrimPrefix(p, blobsRoot+"/"), "/")
		if len(parts) < 4 {
			return nil // not inside a blob directory
		}
		dgst := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if err := dgst.Validate(); err != nil {
			// Upstream's enumeration stops on the same path.
			return fmt.Errorf("error enumerating blobs: %s: %v", p, err)
		}
		b := blobs[dgst]
		if b == nil {
			b = &blobEntry{}
			blobs[dgst] = b
		}
		if len(parts) == 4 && parts[3] == "data" {
			b.data, b.size, b.mod = true, fi.Size(), fi.ModTime()
		} else {
			b.others = append(b.others, p)
		}
		c.progress.blobsListed.Add(1)
		return nil
	})
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil // no blob stored yet
	}
	return err
}

// listRepositories records every repository's revisions, tags and layer
// links. Upload directories are skipped: they are purge-uploads' business.
func (c *collector) listRepositories(ctx context.Context, repos map[string]*repoEntry) error {
	err := c.driver.Walk(ctx, repositoriesRoot, func(fi storagedriver.FileInfo) error {
		p := fi.Path()
		if fi.IsDir() {
			if path.Base(p) == "_uploads" {
				return storagedriver.ErrSkipDir
			}
			return nil
		}
		parts := strings.Split(strings.TrimPrefix(p, repositoriesRoot+"/"), "/")
		// A repository's name ends before its first component that
		// starts with "_" (upstream's catalog walk does not look further).
		i := 0
		for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
			i++
		}
		if i == 0 || i == len(parts) {
			return nil
		}
		name := strings.Join(parts[:i], "/")
		r := repos[name]
		if r == nil {
			r = &repoEntry{name: name, tags: map[string]*tagEntry{}}
			repos[name] = r
		}
		rest := parts[i+1:]
		switch parts[i] {
		case "_manifests":
			r.manifests = true
			c.progress.repoFiles.Add(1)
			if len(rest) >= 4 && rest[0] == "revisions" {
				r.revisions = addLink(r.revisions, rest[1:], p, fi.ModTime())
			} else if len(rest) >= 2 && rest[0] == "tags" {
				t := r.tags[rest[1]]
				if t == nil {
					t = &tagEntry{index: map[digest.Digest][]string{}}
					r.tags[rest[1]] = t
				}
				switch {
				case len(rest) == 4 && rest[2] == "current" && rest[3] == "link":
					t.current = true
				case len(rest) >= 6 && rest[2] == "index":
					dgst := digest.NewDigestFromEncoded(digest.Algorithm(rest[3]), rest[4])
					t.index[dgst] = append(t.index[dgst], p)
				}
			}
		case "_layers":
			c.progress.repoFiles.Add(1)
			if len(rest) >= 3 {
				r.layers = addLink(r.layers, rest, p, fi.ModTime())
			}
		}
		return nil
	})
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil // no repository yet
	}
	return err
}

// addLink records file p, found at <algorithm>/<hex>/<rest...> of a link
// store, in the entry of its link directory. The walk lists a directory's
// files together, so the entry is the last one when it exists.
func addLink(links []*linkEntry, parts []string, p string, mod time.Time) []*linkEntry {
	dgst := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[1])
	var l *linkEntry
	if n := len(links); n > 0 && links[n-1].digest == dgst {
		l = links[n-1]
	} else {
		l = &linkEntry{digest: dgst}
		links = append(links, l)
	}
	l.files = append(l.files, p)
	if len(parts) == 3 && parts[2] == "link" {
		l.link, l.mod = true, mod
	}
	return links
}

func sortLinks(links []*linkEntry) {
	sort.SliceStable(links, func(i, j int) bool {
		return lessPath(links[i].files[0], links[j].files[0])
	})
}

// lessPath is the registry's path order: byte order with "/" before every
// other byte, the order its walks and catalog follow.
func lessPath(a, b string) bool {
	return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00")) < 0
}
