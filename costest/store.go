package costest

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// store is the in-memory index of buckets, objects and multipart uploads. It
// counts references to blobs (several objects and parts may share one after a
// copy or a Complete), persists every change through the backend, and keeps
// a short history of changes so listings can lag behind writes.
//
// Records are immutable once stored: a change replaces the record, so readers
// may keep a record they got without holding the lock.
type store struct {
	mu      sync.Mutex
	backend backend
	// persist is the backend's persistence when it has one (disk); nil
	// keeps the index in memory only.
	persist persister
	buckets map[string]*bucketState
	refs    map[string]int
	now     func() time.Time
	lag     func() time.Duration
}

type bucketState struct {
	record    *bucketRecord
	objects   map[string]*objectRecord
	uploads   map[string]*uploadRecord
	objectLog []objectChange
	uploadLog []uploadChange
}

// objectChange remembers what a key held before a write or delete at a time.
type objectChange struct {
	at   time.Time
	key  string
	prev *objectRecord // nil: the key did not exist
}

// uploadChange remembers whether an upload existed before it was created or
// ended.
type uploadChange struct {
	at   time.Time
	id   string
	prev *uploadRecord
}

func newStore(be backend, now func() time.Time, lag func() time.Duration) (*store, error) {
	s := &store{backend: be, buckets: map[string]*bucketState{}, refs: map[string]int{}, now: now, lag: lag}
	p, ok := be.(persister)
	if !ok {
		return s, nil
	}
	s.persist = p
	buckets, objects, uploads, err := p.Load()
	if err != nil {
		return nil, err
	}
	for _, b := range buckets {
		s.buckets[b.Name] = newBucketState(b)
	}
	for _, e := range objects {
		if bs := s.buckets[e.Bucket]; bs != nil {
			bs.objects[e.Object.Key] = e.Object
			s.acquire(e.Object.Segments)
		}
	}
	for _, u := range uploads {
		if bs := s.buckets[u.Bucket]; bs != nil {
			bs.uploads[u.UploadID] = u
			for _, p := range u.Parts {
				s.acquire(p.Segments)
			}
		}
	}
	p.Sweep(func(id string) bool { return s.refs[id] > 0 })
	return s, nil
}

// persisted runs save against the persistence, if the backend has one.
func (s *store) persisted(save func(p persister) error) error {
	if s.persist == nil {
		return nil
	}
	return save(s.persist)
}

func newBucketState(r *bucketRecord) *bucketState {
	return &bucketState{record: r, objects: map[string]*objectRecord{}, uploads: map[string]*uploadRecord{}}
}

// acquire and release count segment references; the caller holds s.mu.
func (s *store) acquire(segs []segment) {
	for _, sg := range segs {
		s.refs[sg.Blob]++
	}
}

func (s *store) release(segs []segment) {
	for _, sg := range segs {
		s.refs[sg.Blob]--
		if s.refs[sg.Blob] <= 0 {
			delete(s.refs, sg.Blob)
			s.backend.RemoveBlob(sg.Blob)
		}
	}
}

// releaseLocked is release for callers that do not hold the lock.
func (s *store) releaseLocked(segs []segment) {
	s.mu.Lock()
	s.release(segs)
	s.mu.Unlock()
}

// createBucket adds a bucket; false when it is already held.
func (s *store) createBucket(r *bucketRecord) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[r.Name]; ok {
		return false, nil
	}
	if err := s.persisted(func(p persister) error { return p.SaveBucket(r) }); err != nil {
		return false, err
	}
	s.buckets[r.Name] = newBucketState(r)
	return true, nil
}

func (s *store) bucket(name string) (*bucketRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, ok := s.buckets[name]
	if !ok {
		return nil, false
	}
	return bs.record, true
}

func (s *store) bucketState(name string) (*bucketState, *cosError) {
	bs, ok := s.buckets[name]
	if !ok {
		return nil, errNoSuchBucket()
	}
	return bs, nil
}

// getObject returns the current record of a key (read-after-write: never
// lagged).
func (s *store) getObject(bucket, key string) (*objectRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, cerr
	}
	o, ok := bs.objects[key]
	if !ok {
		return nil, errNoSuchKey()
	}
	return o, nil
}

// openObject returns a key's record and pins its blobs until release is
// called, so a concurrent overwrite or delete cannot remove data being read.
func (s *store) openObject(bucket, key string) (*objectRecord, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, nil, cerr
	}
	o, ok := bs.objects[key]
	if !ok {
		return nil, nil, errNoSuchKey()
	}
	s.acquire(o.Segments)
	return o, func() { s.releaseLocked(o.Segments) }, nil
}

// putObject stores rec under its key, replacing what the key held. The new
// record takes its own references on its segments.
func (s *store) putObject(bucket string, rec *objectRecord) error {
	_, err := s.updateObject(bucket, rec.Key, func(*objectRecord) (*objectRecord, error) { return rec, nil })
	return err
}

// updateObject replaces a key's record with what build returns; build sees
// the current record (nil if none) under the lock and may refuse with an
// error.
func (s *store) updateObject(bucket, key string, build func(old *objectRecord) (*objectRecord, error)) (*objectRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, cerr
	}
	old := bs.objects[key]
	rec, err := build(old)
	if err != nil {
		return nil, err
	}
	if err := s.persisted(func(p persister) error { return p.SaveObject(bucket, rec) }); err != nil {
		return nil, err
	}
	s.acquire(rec.Segments)
	bs.objects[key] = rec
	s.logObject(bs, key, old)
	if old != nil {
		s.release(old.Segments)
	}
	return rec, nil
}

// deleteObject removes a key; deleting a missing key is not an error.
func (s *store) deleteObject(bucket, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return cerr
	}
	old, ok := bs.objects[key]
	if !ok {
		return nil
	}
	if err := s.persisted(func(p persister) error { return p.DeleteObject(bucket, key) }); err != nil {
		return err
	}
	delete(bs.objects, key)
	s.logObject(bs, key, old)
	s.release(old.Segments)
	return nil
}

func (s *store) logObject(bs *bucketState, key string, prev *objectRecord) {
	lag := s.lag()
	if lag <= 0 {
		bs.objectLog = nil
		return
	}
	now := s.now()
	bs.objectLog = pruneLog(bs.objectLog, now.Add(-lag), func(c objectChange) time.Time { return c.at })
	bs.objectLog = append(bs.objectLog, objectChange{at: now, key: key, prev: prev})
}

func (s *store) logUpload(bs *bucketState, id string, prev *uploadRecord) {
	lag := s.lag()
	if lag <= 0 {
		bs.uploadLog = nil
		return
	}
	now := s.now()
	bs.uploadLog = pruneLog(bs.uploadLog, now.Add(-lag), func(c uploadChange) time.Time { return c.at })
	bs.uploadLog = append(bs.uploadLog, uploadChange{at: now, id: id, prev: prev})
}

// pruneLog drops the changes made before cutoff: listings already see them.
func pruneLog[T any](log []T, cutoff time.Time, at func(T) time.Time) []T {
	i := 0
	for i < len(log) && at(log[i]).Before(cutoff) {
		i++
	}
	if i == 0 {
		return log
	}
	return append(log[:0:0], log[i:]...)
}

// listObjects returns the objects whose key starts with prefix as they were
// at asOf (a listing lags by ListLag), sorted in binary key order.
func (s *store) listObjects(bucket, prefix string, asOf time.Time) ([]*objectRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, cerr
	}
	view := map[string]*objectRecord{}
	for k, o := range bs.objects {
		if strings.HasPrefix(k, prefix) {
			view[k] = o
		}
	}
	// Undo, newest first, every change made after asOf.
	for i := len(bs.objectLog) - 1; i >= 0; i-- {
		c := bs.objectLog[i]
		if !c.at.After(asOf) {
			break
		}
		if !strings.HasPrefix(c.key, prefix) {
			continue
		}
		if c.prev == nil {
			delete(view, c.key)
		} else {
			view[c.key] = c.prev
		}
	}
	out := make([]*objectRecord, 0, len(view))
	for _, o := range view {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *objectRecord) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// createUpload registers a new multipart upload.
func (s *store) createUpload(u *uploadRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(u.Bucket)
	if cerr != nil {
		return cerr
	}
	if err := s.persisted(func(p persister) error { return p.SaveUpload(u) }); err != nil {
		return err
	}
	bs.uploads[u.UploadID] = u
	s.logUpload(bs, u.UploadID, nil)
	return nil
}

// upload returns an upload and a snapshot of its parts sorted by number.
func (s *store) upload(bucket, key, id string) (*uploadRecord, []*partRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, cerr := s.findUpload(bucket, key, id)
	if cerr != nil {
		return nil, nil, cerr
	}
	return u, sortedParts(u), nil
}

func sortedParts(u *uploadRecord) []*partRecord {
	parts := make([]*partRecord, 0, len(u.Parts))
	for _, p := range u.Parts {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b *partRecord) int { return cmp.Compare(a.Number, b.Number) })
	return parts
}

// findUpload looks an upload up by id; it must belong to key. The caller
// holds s.mu.
func (s *store) findUpload(bucket, key, id string) (*uploadRecord, *cosError) {
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, cerr
	}
	u, ok := bs.uploads[id]
	if !ok || u.Key != key {
		return nil, errNoSuchUpload()
	}
	return u, nil
}

// putPart stores a part, replacing one with the same number.
func (s *store) putPart(bucket, key, id string, p *partRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, cerr := s.findUpload(bucket, key, id)
	if cerr != nil {
		return cerr
	}
	if err := s.persisted(func(ps persister) error { return ps.SavePart(u, p) }); err != nil {
		return err
	}
	s.acquire(p.Segments)
	if old := u.Parts[p.Number]; old != nil {
		s.release(old.Segments)
	}
	u.Parts[p.Number] = p
	return nil
}

// completeUpload turns an upload into an object. build sees the upload and
// its sorted parts under the lock and returns the object (whose segments are
// the chosen parts' segments) or a COS error; on success the upload ends.
func (s *store) completeUpload(bucket, key, id string, build func(u *uploadRecord, parts []*partRecord) (*objectRecord, error)) (*objectRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, cerr := s.findUpload(bucket, key, id)
	if cerr != nil {
		return nil, cerr
	}
	bs := s.buckets[bucket]
	rec, err := build(u, sortedParts(u))
	if err != nil {
		return nil, err
	}
	if err := s.persisted(func(p persister) error { return p.SaveObject(bucket, rec) }); err != nil {
		return nil, err
	}
	s.acquire(rec.Segments)
	old := bs.objects[key]
	bs.objects[key] = rec
	s.logObject(bs, key, old)
	if old != nil {
		s.release(old.Segments)
	}
	s.endUpload(bs, u)
	return rec, nil
}

// endUpload removes an upload and drops its parts' references; the caller
// holds s.mu.
func (s *store) endUpload(bs *bucketState, u *uploadRecord) {
	s.persisted(func(p persister) error { return p.DeleteUpload(u) })
	delete(bs.uploads, u.UploadID)
	s.logUpload(bs, u.UploadID, u)
	for _, p := range u.Parts {
		s.release(p.Segments)
	}
}

// abortUpload ends an upload and frees its parts.
func (s *store) abortUpload(bucket, key, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, cerr := s.findUpload(bucket, key, id)
	if cerr != nil {
		return cerr
	}
	s.endUpload(s.buckets[bucket], u)
	return nil
}

// listUploads returns the uploads whose key starts with prefix as they were
// at asOf, sorted by key, then upload id (initiation order).
func (s *store) listUploads(bucket, prefix string, asOf time.Time) ([]*uploadRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, cerr := s.bucketState(bucket)
	if cerr != nil {
		return nil, cerr
	}
	view := map[string]*uploadRecord{}
	for id, u := range bs.uploads {
		if strings.HasPrefix(u.Key, prefix) {
			view[id] = u
		}
	}
	for i := len(bs.uploadLog) - 1; i >= 0; i-- {
		c := bs.uploadLog[i]
		if !c.at.After(asOf) {
			break
		}
		if c.prev == nil {
			delete(view, c.id)
		} else if strings.HasPrefix(c.prev.Key, prefix) {
			view[c.id] = c.prev
		}
	}
	out := make([]*uploadRecord, 0, len(view))
	for _, u := range view {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *uploadRecord) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.UploadID, b.UploadID)
	})
	return out, nil
}

// allBuckets returns every bucket record.
func (s *store) allBuckets() []*bucketRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*bucketRecord, 0, len(s.buckets))
	for _, bs := range s.buckets {
		out = append(out, bs.record)
	}
	return out
}
