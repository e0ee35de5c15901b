package cos

import "testing"

// TestStorageClassDecision: the configured class goes to blob data of at
// least the threshold (or of unknown, multipart size) under the root, the
// standard class of its family to everything else.
func TestStorageClassDecision(t *testing.T) {
	blob := "/docker/registry/v2/blobs/sha256/ab/abcdef/data"
	tests := []struct {
		class, root, path string
		size              int64
		want              string
	}{
		{"", "", blob, 1 << 20, ""},
		{"STANDARD_IA", "", blob, 1 << 20, "STANDARD_IA"},
		{"STANDARD_IA", "", blob, -1, "STANDARD_IA"},
		{"STANDARD_IA", "", blob, 64 << 10, "STANDARD_IA"},
		{"STANDARD_IA", "", blob, 64<<10 - 1, "STANDARD"},
		{"STANDARD_IA", "registry", blob, 1 << 20, "STANDARD_IA"},
		{"STANDARD_IA", "", "/docker/registry/v2/repositories/a/_uploads/u/data", 1 << 30, "STANDARD"},
		{"STANDARD_IA", "", "/docker/registry/v2/repositories/a/_layers/sha256/abcdef/link", 71, "STANDARD"},
		{"STANDARD_IA", "", "/docker/registry/v2/blobs/sha256/ab/abcdef", 1 << 20, "STANDARD"},
		{"INTELLIGENT_TIERING", "", blob, 1 << 20, "INTELLIGENT_TIERING"},
		{"MAZ_STANDARD_IA", "", blob, 1 << 20, "MAZ_STANDARD_IA"},
		{"MAZ_INTELLIGENT_TIERING", "", "/docker/registry/v2/repositories/a/_manifests/tags/v1/current/link", 71, "MAZ_STANDARD"},
	}
	for _, tc := range tests {
		d := &driver{params: Parameters{StorageClass: tc.class}.withDefaults(), root: tc.root}
		if got := d.storageClass(d.key(tc.path), tc.size); got != tc.want {
			t.Errorf("class %q, root %q, %s of %d bytes: %q, want %q", tc.class, tc.root, tc.path, tc.size, got, tc.want)
		}
	}
}
