package cos

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Walk visits the tree under from in distribution's path order: byte order
// with '/' sorting before every other character, so that tag-list and
// catalog paging (which filter in that order after StartAfterHint) never
// drop an entry.
//
// The tree is read with flat listing pages (no delimiter), and a subtree
// the callback skips is jumped over by moving the marker past it, so a walk
// costs the pages of what it visits plus one listing per skipped subtree
// that does not end in the page already held.
//
// Raw key order differs from path order: "a-b" and "a.b" list before
// "a/x" ('-' and '.' sort before '/'), yet the directory "a" and all it
// holds come first in path order. So entries are buffered in path order
// and one is handed to the callback only once no key still unlisted could
// produce an entry sorting before it (see safe).
func (d *driver) Walk(ctx context.Context, from string, f storagedriver.WalkFn, options ...func(*storagedriver.WalkOptions)) error {
	var opts storagedriver.WalkOptions
	for _, o := range options {
		o(&opts)
	}
	hint := opts.StartAfterHint
	if hint == from || (hint != "" && !isUnder(hint, from)) {
		if hint != from && !pathLess(hint, from) {
			return nil // the hint lies after the whole tree
		}
		hint = ""
	}
	prefix := d.dirPrefix(from)
	w := newWalker(prefix, from, hint, f, func(marker string, maxKeys int, sub string) (*cossdk.BucketGetResult, error) {
		return d.list(ctx, &cossdk.BucketGetOptions{Prefix: prefix + sub, Marker: marker, MaxKeys: maxKeys})
	})
	w.uploadSize = func(rel string) (int64, bool, error) {
		head, err := d.head(ctx, prefix+rel)
		if err != nil && !isNotFound(err) {
			return 0, false, err
		}
		return head.uploadSize, err == nil && head.uploadSize >= 0, nil
	}
	found, err := w.run()
	if err != nil {
		return err
	}
	if !found && from != "/" && hint == "" {
		return storagedriver.PathNotFoundError{Path: from}
	}
	return nil
}

// listFn lists keys under the walk's prefix + sub after marker.
type listFn func(marker string, maxKeys int, sub string) (*cossdk.BucketGetResult, error)

type walker struct {
	prefix  string // key prefix of the walk's root
	from    string // the walk's root path
	fn      storagedriver.WalkFn
	list    listFn
	pageLen int
	// uploadSize, when set, tells the bytes written of an upload's state
	// record at rel (false: not a record).
	uploadSize func(rel string) (int64, bool, error)

	hint string // relative to from; cleared once the walk has passed it

	pending []walkEntry // in path order, not yet handed to fn
	floor   string      // sort key of the last entry handed out (or skipped past)

	marker string // where the next flat page starts
	done   bool   // the flat listing has no more pages
	// bound: every key not yet listed that can still matter is >= bound.
	bound string
	// probed: directories (relative) whose keys a probe listing found
	// absent (true) or present (false).
	probed map[string]bool
	found  bool // some key lies under the walk's root
}

// walkEntry is a file or directory found in a listing, relative to the
// walk's root.
type walkEntry struct {
	rel     string
	isDir   bool
	size    int64
	modTime time.Time
	sortKey string // path order: '/' as "\x00"; a directory as rel + "/"
}

func newWalker(prefix, from, hint string, fn storagedriver.WalkFn, list listFn) *walker {
	w := &walker{prefix: prefix, from: from, fn: fn, list: list, pageLen: maxListKeys, probed: map[string]bool{}}
	if hint != "" {
		w.hint = strings.TrimPrefix(hint, strings.TrimSuffix(from, "/")+"/")
		// A key up to the hint's first component yields only entries at or
		// before the hint in path order: every entry after it lists later.
		first, _, _ := strings.Cut(w.hint, "/")
		w.marker = prefix + first
		w.bound = w.marker + "\x00"
	}
	return w
}

// run walks, reporting whether any key lies under the root.
func (w *walker) run() (bool, error) {
	for {
		for len(w.pending) == 0 || !w.done && w.unsafe(w.pending[0]) != "" {
			if w.done {
				return w.found, nil
			}
			if err := w.fetch(); err != nil {
				return w.found, err
			}
		}
		e := w.pending[0]
		w.pending = w.pending[1:]
		w.floor = e.sortKey
		if w.hint != "" {
			if !pathLess(w.hint, e.rel) {
				if e.isDir && (e.rel == w.hint || strings.HasPrefix(w.hint, e.rel+"/")) {
					continue // the hint or an ancestor: what it holds may come after
				}
				if e.isDir {
					w.skip(e) // wholly before the hint
				}
				continue
			}
			w.hint = ""
		}
		size := e.size
		if !e.isDir && w.uploadSize != nil && isUploadRecordSize(size) {
			// Maybe an upload's state record: report the bytes written,
			// as Stat does. Other objects of such a size (1 in 4096) cost
			// one needless HEAD.
			n, ok, err := w.uploadSize(e.rel)
			if err != nil {
				return w.found, err
			}
			if ok {
				size = n
			}
		}
		info := storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
			Path: joinPath(w.from, e.rel), IsDir: e.isDir, Size: size, ModTime: e.modTime}}
		switch err := w.fn(info); {
		case err == nil:
		case errors.Is(err, storagedriver.ErrSkipDir):
			if e.isDir {
				w.skip(e)
			}
		case errors.Is(err, storagedriver.ErrFilledBuffer):
			return w.found, nil
		default:
			return w.found, err
		}
	}
}

// unsafe returns the directory (relative) whose keys, not all listed yet,
// could still yield an entry sorting before e, or "" when e can be handed
// out. Only a directory named by a proper prefix of e's path followed by a
// byte below '/' can ("a" for "a-b": "a/..." lists after "a-b"), and
// all its keys sort before that prefix + "0". The shortest such prefix has
// the greatest bound, so the first one already listed past settles the rest.
func (w *walker) unsafe(e walkEntry) string {
	for i := 1; i < len(e.rel); i++ {
		if e.rel[i] >= '/' {
			continue
		}
		y := e.rel[:i]
		if w.prefix+y+"0" <= w.bound {
			return ""
		}
		if !w.probed[y] {
			return y
		}
	}
	return ""
}

// fetch reads the next flat page, or, when a page's worth of entries is
// already held back by a directory that may not exist ("repo" for
// "repo-1", "repo-2", ...), probes that directory with one small listing
// instead of reading on through keys the walk may skip.
func (w *walker) fetch() error {
	if len(w.pending) >= w.pageLen {
		if y := w.unsafe(w.pending[0]); y != "" {
			if _, asked := w.probed[y]; !asked {
				res, err := w.list("", 1, y+"/")
				if err != nil {
					return err
				}
				w.probed[y] = len(res.Contents) == 0
				return nil
			}
		}
	}
	res, err := w.list(w.marker, w.pageLen, "")
	if err != nil {
		return err
	}
	for _, obj := range res.Contents {
		w.found = true
		w.add(obj)
	}
	if res.IsTruncated {
		w.marker = res.NextMarker
		w.bound = max(w.bound, w.marker+"\x00")
	} else {
		w.done = true
	}
	w.sortPending()
	return nil
}

// add buffers the entries of one key: its directories and, unless it is a
// "dir/" marker, the file. An empty component ends the entries.
func (w *walker) add(obj cossdk.Object) {
	rel := strings.TrimPrefix(obj.Key, w.prefix)
	start := 0
	for {
		j := strings.IndexByte(rel[start:], '/')
		if j < 0 {
			if start < len(rel) {
				modTime, _ := time.Parse(time.RFC3339Nano, obj.LastModified)
				w.push(walkEntry{rel: rel, size: obj.Size, modTime: modTime})
			}
			return
		}
		if j == 0 {
			return
		}
		start += j
		w.push(walkEntry{rel: rel[:start], isDir: true})
		start++
	}
}

func (w *walker) push(e walkEntry) {
	e.sortKey = pathKey(e.rel)
	if e.isDir {
		e.sortKey += "\x00"
	}
	if e.sortKey > w.floor { // not handed out, skipped or passed already
		w.pending = append(w.pending, e)
	}
}

func (w *walker) sortPending() {
	slices.SortStableFunc(w.pending, func(a, b walkEntry) int { return strings.Compare(a.sortKey, b.sortKey) })
	w.pending = slices.CompactFunc(w.pending, func(a, b walkEntry) bool { return a.sortKey == b.sortKey })
}

// skip drops the subtree of the directory e and moves the marker past its
// keys if the page held ends inside it.
func (w *walker) skip(e walkEntry) {
	w.floor = e.sortKey + "\xff" // after every entry below e
	i := 0
	for i < len(w.pending) && w.pending[i].sortKey <= w.floor {
		i++
	}
	w.pending = w.pending[i:]
	// Keys below e sort before e + "0"; U+10FFFF is the greatest character
	// a key can hold, so the marker passes them all but freak names, which
	// the floor drops.
	if jump := w.prefix + e.rel + "/\U0010FFFF"; !w.done && w.marker < jump {
		w.marker = jump
	}
	w.bound = max(w.bound, w.prefix+e.rel+"0")
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// isUnder reports whether p lies strictly inside the directory dir.
func isUnder(p, dir string) bool {
	if dir == "/" {
		return len(p) > 1 && p[0] == '/'
	}
	return strings.HasPrefix(p, dir+"/")
}

// pathKey maps a path to a string whose byte order is distribution's path
// order.
func pathKey(p string) string {
	return strings.ReplaceAll(p, "/", "\x00")
}

// pathLess is distribution's path order: '/' sorts before every other byte.
func pathLess(a, b string) bool {
	return pathKey(a) < pathKey(b)
}
