package cos

import "strings"

// storageClass is the storage class of an object written at key with size
// bytes (-1: a multipart upload or copy, whose parts are at least
// minPartSize each): storageclass where it pays, the standard class
// everywhere else. "" sends no class (the bucket's default).
//
// COS bills STANDARD_IA and INTELLIGENT_TIERING objects under 64 KB as
// 64 KB and deletes of STANDARD_IA before 30 days as 30 days, so a class
// other than STANDARD pays only for objects that are large and live long:
// the registry's blob data, written once and kept until garbage
// collection. Link files, manifests' links, hash states, upload data
// (moved away seconds after its last PATCH) and upload-state records stay
// STANDARD. A multi-AZ bucket holds only the MAZ_ classes, so there the
// standard class is MAZ_STANDARD.
func (d *driver) storageClass(key string, size int64) string {
	class := d.params.StorageClass
	if class == "" {
		return ""
	}
	if isBlobData(d.pathOf(key)) && (size < 0 || size >= d.params.StorageClassThreshold) {
		return class
	}
	if strings.HasPrefix(class, "MAZ_") {
		return "MAZ_STANDARD"
	}
	return "STANDARD"
}

// isBlobData reports whether path is the content of a blob in the
// registry's layout (/docker/registry/v2/blobs/<algorithm>/<xx>/<hex>/data),
// the only objects the registry keeps long that can be large.
func isBlobData(path string) bool {
	return strings.HasPrefix(path, "/docker/registry/v2/blobs/") && strings.HasSuffix(path, "/data")
}
