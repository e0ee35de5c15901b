//go:build unix

package cos

import "syscall"

// allocBuffer maps anonymous memory for a part buffer, outside the Go heap.
func allocBuffer(size int) []byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, size)
	}
	return b[:0]
}
