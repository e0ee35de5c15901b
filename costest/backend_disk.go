package costest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// diskBackend keeps blobs as files and persists every index record as a small
// JSON file, so a server restarted on the same directory sees the same
// buckets, objects and in-progress multipart uploads. Layout under root:
//
//	blobs/<id>                                   blob bytes
//	tmp/                                         blobs and records being written
//	buckets/<bucket>/bucket.json                 bucket record
//	buckets/<bucket>/objects/<sha256(key)>.json  object record (keys may be 850 bytes, too long for a file name)
//	buckets/<bucket>/uploads/<uploadId>/upload.json, part-NNNNN.json
//
// Every file appears by rename, so a crash or a dropped request never leaves a
// half-written object visible.
type diskBackend struct {
	root string
}

func newDiskBackend(root string) (*diskBackend, error) {
	for _, d := range []string{"blobs", "tmp", "buckets"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("costest: disk backend: %w", err)
		}
	}
	return &diskBackend{root: root}, nil
}

type diskBlobWriter struct {
	b *diskBackend
	f *os.File
}

func (b *diskBackend) CreateBlob() (blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(b.root, "tmp"), "blob-*")
	if err != nil {
		return nil, err
	}
	return &diskBlobWriter{b: b, f: f}, nil
}

func (w *diskBlobWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (w *diskBlobWriter) Commit() (string, error) {
	id := randomHex(16)
	name := w.f.Name()
	if err := w.f.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	if err := os.Rename(name, w.b.blobPath(id)); err != nil {
		os.Remove(name)
		return "", err
	}
	return id, nil
}

func (w *diskBlobWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func (b *diskBackend) blobPath(id string) string { return filepath.Join(b.root, "blobs", id) }

func (b *diskBackend) OpenBlob(id string) (blobReader, error) { return os.Open(b.blobPath(id)) }

func (b *diskBackend) RemoveBlob(id string) error { return os.Remove(b.blobPath(id)) }

func (b *diskBackend) bucketDir(bucket string) string {
	return filepath.Join(b.root, "buckets", bucket)
}

func (b *diskBackend) objectPath(bucket, key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(b.bucketDir(bucket), "objects", hex.EncodeToString(sum[:])+".json")
}

func (b *diskBackend) uploadDir(u *uploadRecord) string {
	return filepath.Join(b.bucketDir(u.Bucket), "uploads", u.UploadID)
}

// writeJSON writes v to path atomically (temporary file, then rename).
func (b *diskBackend) writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(b.root, "tmp"), "record-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func (b *diskBackend) SaveBucket(r *bucketRecord) error {
	dir := b.bucketDir(r.Name)
	for _, d := range []string{"objects", "uploads"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return b.writeJSON(filepath.Join(dir, "bucket.json"), r)
}

func (b *diskBackend) SaveObject(bucket string, o *objectRecord) error {
	return b.writeJSON(b.objectPath(bucket, o.Key), o)
}

func (b *diskBackend) DeleteObject(bucket, key string) error {
	err := os.Remove(b.objectPath(bucket, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (b *diskBackend) SaveUpload(u *uploadRecord) error {
	dir := b.uploadDir(u)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return b.writeJSON(filepath.Join(dir, "upload.json"), u)
}

func (b *diskBackend) SavePart(u *uploadRecord, p *partRecord) error {
	return b.writeJSON(filepath.Join(b.uploadDir(u), fmt.Sprintf("part-%05d.json", p.Number)), p)
}

func (b *diskBackend) DeleteUpload(u *uploadRecord) error { return os.RemoveAll(b.uploadDir(u)) }

func (b *diskBackend) Load() ([]*bucketRecord, []*objectEntry, []*uploadRecord, error) {
	var (
		buckets []*bucketRecord
		objects []*objectEntry
		uploads []*uploadRecord
	)
	// Whatever was being written when the last process stopped is garbage.
	tmp := filepath.Join(b.root, "tmp")
	if entries, err := os.ReadDir(tmp); err == nil {
		for _, e := range entries {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
	bucketEntries, err := os.ReadDir(filepath.Join(b.root, "buckets"))
	if err != nil {
		return nil, nil, nil, err
	}
	for _, be := range bucketEntries {
		dir := filepath.Join(b.root, "buckets", be.Name())
		var br bucketRecord
		if err := readJSON(filepath.Join(dir, "bucket.json"), &br); err != nil {
			continue // a bucket directory without its record never finished creation
		}
		buckets = append(buckets, &br)
		objectFiles, _ := os.ReadDir(filepath.Join(dir, "objects"))
		for _, of := range objectFiles {
			var o objectRecord
			if err := readJSON(filepath.Join(dir, "objects", of.Name()), &o); err != nil {
				return nil, nil, nil, fmt.Errorf("costest: disk backend: %w", err)
			}
			objects = append(objects, &objectEntry{Bucket: br.Name, Object: &o})
		}
		uploadDirs, _ := os.ReadDir(filepath.Join(dir, "uploads"))
		for _, ud := range uploadDirs {
			udir := filepath.Join(dir, "uploads", ud.Name())
			var u uploadRecord
			if err := readJSON(filepath.Join(udir, "upload.json"), &u); err != nil {
				os.RemoveAll(udir)
				continue
			}
			u.Parts = map[int]*partRecord{}
			partFiles, _ := os.ReadDir(udir)
			for _, pf := range partFiles {
				if !strings.HasPrefix(pf.Name(), "part-") {
					continue
				}
				var p partRecord
				if err := readJSON(filepath.Join(udir, pf.Name()), &p); err != nil {
					return nil, nil, nil, fmt.Errorf("costest: disk backend: %w", err)
				}
				u.Parts[p.Number] = &p
			}
			uploads = append(uploads, &u)
		}
	}
	return buckets, objects, uploads, nil
}

// Sweep deletes blob files no loaded record refers to.
func (b *diskBackend) Sweep(keep func(string) bool) {
	entries, err := os.ReadDir(filepath.Join(b.root, "blobs"))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !keep(e.Name()) {
			os.Remove(b.blobPath(e.Name()))
		}
	}
}

func (b *diskBackend) Close() error { return nil }

// The disk backend persists the index; the memory backend does not.
var _ persister = (*diskBackend)(nil)
