//go:build !linux

package cos

// allocBuffer allocates a part buffer on the Go heap.
func allocBuffer(size int) []byte { return make([]byte, 0, size) }
