package gc

import (
	"fmt"
	"sort"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/opencontainers/go-digest"
)

// mark replays upstream's MarkAndSweep decisions on what list and read
// found, in upstream's order: repositories in path order, each one's
// revisions in path order, then its layer links against the mark set as
// it stands after that repository. That order matters in upstream (a
// layer link is judged before later repositories are marked; a manifest
// first reached through an index in a repository that does not hold it
// is not descended into again), so the replay keeps it to decide the same.
// Upstream's printed lines are emitted at the same points.
func (c *collector) mark(inv *inventory, manifests map[digest.Digest]*manifestRead, tags map[*repoEntry]map[string]tagRead) (*Result, error) {
	markSet := make(map[digest.Digest]struct{})
	deleteLayers := map[string][]digest.Digest{}
	var manifestArr []storage.ManifestDel

	for _, r := range inv.repos {
		c.emit("%s", r.name)
		c.progress.repos.Add(1)
		for _, rev := range r.revisions {
			// Upstream's manifest enumeration: a link whose blob exists.
			if !rev.link || !inv.exists(rev.digest) {
				continue
			}
			if err := rev.digest.Validate(); err != nil {
				return nil, fmt.Errorf("%s: revision link %s: %v", r.name, rev.digest, err)
			}
			if c.opts.RemoveUntagged && !c.young(rev.mod) {
				n := 0
				for _, t := range tags[r] {
					if t.err != nil {
						return nil, fmt.Errorf("failed to retrieve tags for digest %v: %v", rev.digest, t.err)
					}
					if t.digest == rev.digest {
						n++
					}
				}
				if n == 0 {
					if len(r.tags) == 0 {
						c.emit("manifest tags path of repository %s does not exist", r.name)
						continue
					}
					manifestArr = append(manifestArr, storage.ManifestDel{Name: r.name, Digest: rev.digest, Tags: r.tagNames()})
					continue
				}
			}
			c.emit("%s: marking manifest %s ", r.name, rev.digest)
			markSet[rev.digest] = struct{}{}
			if err := c.markReferences(inv, r, rev.digest, manifests, markSet); err != nil {
				return nil, err
			}
		}
		for _, l := range r.layers {
			if !l.link || !inv.exists(l.digest) {
				continue // upstream's layer enumeration skips it
			}
			if _, ok := markSet[l.digest]; !ok && !c.young(l.mod) {
				deleteLayers[r.name] = append(deleteLayers[r.name], l.digest)
			}
		}
	}

	res := &Result{Marked: markSet, LayerLinks: deleteLayers}
	for _, m := range manifestArr {
		if _, ok := markSet[m.Digest]; !ok {
			c.emit("manifest eligible for deletion: %s", m)
			res.Manifests = append(res.Manifests, m)
		}
	}

	// What min-age protects: a blob, or a link to it, written recently
	// belongs to a push that may not have written its manifest yet.
	youngLink := map[digest.Digest]bool{}
	for _, r := range inv.repos {
		for _, l := range r.layers {
			if l.link && c.young(l.mod) {
				youngLink[l.digest] = true
			}
		}
	}
	for dgst, b := range inv.blobs {
		if !b.data {
			continue // upstream's blob enumeration only sees data files
		}
		if _, ok := markSet[dgst]; ok {
			continue
		}
		if c.young(b.mod) || youngLink[dgst] {
			res.KeptYoung = append(res.KeptYoung, dgst)
			continue
		}
		res.Blobs = append(res.Blobs, dgst)
		res.BytesFreed += b.size
	}
	sort.Slice(res.Blobs, func(i, j int) bool { return res.Blobs[i] < res.Blobs[j] })
	sort.Slice(res.KeptYoung, func(i, j int) bool { return res.KeptYoung[i] < res.KeptYoung[j] })
	return res, nil
}

// markReferences is upstream's markManifestReferences: mark what the
// manifest references and descend into each newly marked reference that
// is a manifest of this repository.
func (c *collector) markReferences(inv *inventory, r *repoEntry, dgst digest.Digest, manifests map[digest.Digest]*manifestRead, markSet map[digest.Digest]struct{}) error {
	m := manifests[dgst]
	if m == nil {
		return fmt.Errorf("failed to retrieve manifest for digest %v: not read", dgst)
	}
	if m.err != nil {
		return fmt.Errorf("failed to retrieve manifest for digest %v: %v", dgst, m.err)
	}
	c.progress.manifestsMarked.Add(1)
	for _, ref := range m.refs {
		if _, marked := markSet[ref]; marked {
			continue
		}
		markSet[ref] = struct{}{}
		c.emit("%s: marking blob %s", r.name, ref)
		if rev := r.revision(ref); rev != nil && rev.link && inv.exists(ref) {
			if err := c.markReferences(inv, r, ref, manifests, markSet); err != nil {
				return err
			}
		}
	}
	return nil
}
