package cos

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Walk visits the tree under from in distribution's path order: byte order
// with '/' sorting before every other character, so that tag-list and
// catalog paging (which filter in that order after StartAfterHint) never
// drop an entry. Raw key order differs: it puts "1.2.3/" before "1.2/".
//
// Each directory entered is first fetched with one flat listing page; when
// its whole subtree fits in that page it is walked in memory, so a walk
// that descends everything (the garbage collector over blobs/) costs
// listing pages, not a request per blob. A bigger directory is listed with
// a delimiter instead, so a subtree the callback skips is never listed.
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
	w := &walker{d: d, ctx: ctx, fn: f, hint: hint}
	root := &walkNode{isDir: true}
	if err := w.load(from, root); err != nil {
		return err
	}
	if len(root.children) == 0 && from != "/" && !root.hinted {
		return storagedriver.PathNotFoundError{Path: from}
	}
	if err := w.walkDir(from, root); err != nil && !errors.Is(err, errWalkStop) {
		return err
	}
	return nil
}

var errWalkStop = errors.New("walk stopped")

type walker struct {
	d    *driver
	ctx  context.Context
	fn   storagedriver.WalkFn
	hint string // cleared once the walk has passed it
}

// walkNode is one directory entry. A directory's children are known once
// it has been loaded, by a flat listing of its subtree or a delimiter
// listing of its level.
type walkNode struct {
	name     string
	isDir    bool
	size     int64
	modTime  time.Time
	loaded   bool
	hinted   bool // its listing started at the hint
	children []*walkNode
}

func (w *walker) walkDir(dir string, n *walkNode) error {
	if !n.loaded {
		if err := w.load(dir, n); err != nil {
			return err
		}
	}
	for _, child := range n.children {
		p := joinPath(dir, child.name)
		if w.hint != "" {
			if child.isDir && (p == w.hint || isUnder(w.hint, p)) {
				// The hint or an ancestor of it: reported already; what
				// lies inside may come after the hint.
				if err := w.walkDir(p, child); err != nil {
					return err
				}
				continue
			}
			if !pathLess(w.hint, p) {
				continue
			}
			w.hint = ""
		}
		size := child.size
		if !child.isDir && isUploadRecordSize(size) {
			// Maybe an upload's state record: report the bytes written,
			// as Stat does. Other objects of such a size (1 in 4096) cost
			// one needless HEAD.
			head, err := w.d.head(w.ctx, w.d.key(p))
			if err != nil && !isNotFound(err) {
				return err
			}
			if err == nil && head.uploadSize >= 0 {
				size = head.uploadSize
			}
		}
		info := storagedriver.FileInfoInternal{FileInfoFields: storagedriver.FileInfoFields{
			Path: p, IsDir: child.isDir, Size: size, ModTime: child.modTime}}
		err := w.fn(info)
		switch {
		case err == nil && child.isDir:
			if err := w.walkDir(p, child); err != nil {
				return err
			}
		case err == nil, errors.Is(err, storagedriver.ErrSkipDir):
		case errors.Is(err, storagedriver.ErrFilledBuffer):
			return errWalkStop
		default:
			return err
		}
		child.children = nil // walked: let it go
	}
	return nil
}

// load fills in the children of the directory at dir.
func (w *walker) load(dir string, n *walkNode) error {
	prefix := w.d.dirPrefix(dir)
	n.loaded = true
	if w.hint == "" {
		res, err := w.d.list(w.ctx, &cossdk.BucketGetOptions{Prefix: prefix, MaxKeys: maxListKeys})
		if err != nil {
			return err
		}
		if !res.IsTruncated {
			n.children = buildTree(prefix, res.Contents)
			return nil
		}
	}
	opt := &cossdk.BucketGetOptions{Prefix: prefix, Delimiter: "/", MaxKeys: maxListKeys}
	if w.hint != "" && isUnder(w.hint, dir) {
		// Every entry after the hint sorts after this marker in raw key
		// order too: a name greater than the hint's is a greater key.
		first, _, _ := strings.Cut(strings.TrimPrefix(w.hint, strings.TrimSuffix(dir, "/")+"/"), "/")
		opt.Marker = prefix + first
		n.hinted = true
	}
	for {
		res, err := w.d.list(w.ctx, opt)
		if err != nil {
			return err
		}
		for _, obj := range res.Contents {
			if name := strings.TrimPrefix(obj.Key, prefix); name != "" {
				n.children = append(n.children, fileNode(name, obj))
			}
		}
		for _, p := range res.CommonPrefixes {
			if name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/"); name != "" {
				n.children = append(n.children, &walkNode{name: name, isDir: true})
			}
		}
		if !res.IsTruncated {
			break
		}
		opt.Marker = res.NextMarker
	}
	sortNodes(n.children)
	return nil
}

// buildTree turns a complete flat listing of a subtree into nodes.
func buildTree(prefix string, objects []cossdk.Object) []*walkNode {
	root := &walkNode{isDir: true}
	dirs := map[string]*walkNode{"": root}
	for _, obj := range objects {
		rel := strings.TrimPrefix(obj.Key, prefix)
		parent, parentPath := root, ""
		components := strings.Split(rel, "/")
		for i, name := range components {
			if name == "" {
				break // a "dir/" marker key, or an empty component
			}
			if i == len(components)-1 {
				parent.children = append(parent.children, fileNode(name, obj))
				break
			}
			dirPath := parentPath + "/" + name
			dir, ok := dirs[dirPath]
			if !ok {
				dir = &walkNode{name: name, isDir: true, loaded: true}
				dirs[dirPath] = dir
				parent.children = append(parent.children, dir)
			}
			parent, parentPath = dir, dirPath
		}
	}
	for _, dir := range dirs {
		sortNodes(dir.children)
	}
	return root.children
}

func fileNode(name string, obj cossdk.Object) *walkNode {
	modTime, _ := time.Parse(time.RFC3339Nano, obj.LastModified)
	return &walkNode{name: name, size: obj.Size, modTime: modTime}
}

// sortNodes orders siblings by name; a file sorts before a directory of
// the same name.
func sortNodes(nodes []*walkNode) {
	sort.SliceStable(nodes, func(i, j int) bool {
		if nodes[i].name != nodes[j].name {
			return nodes[i].name < nodes[j].name
		}
		return !nodes[i].isDir && nodes[j].isDir
	})
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

// pathLess is distribution's path order: '/' sorts before every other byte.
func pathLess(a, b string) bool {
	return strings.ReplaceAll(a, "/", "\x00") < strings.ReplaceAll(b, "/", "\x00")
}
