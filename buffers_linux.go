package cos

import "syscall"

// allocBuffer maps anonymous memory for a part buffer, outside the Go heap,
// and asks for transparent huge pages: a 16 MiB buffer is then a handful of
// 2 MiB pages rather than 4,096 small ones, whose first-touch faults made
// filling a fresh buffer several times slower than copying into a warm one.
// Without huge pages (THP off) the advice is ignored.
func allocBuffer(size int) []byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, size)
	}
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	return b[:0]
}
