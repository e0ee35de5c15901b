//go:build !linux

package bench

import "errors"

// freeBytes is unknown outside Linux.
func freeBytes(string) int64 { return -1 }

// procStatus needs Linux's /proc.
func procStatus(int, string) (int64, error) {
	return 0, errors.New("peak RSS is read from /proc/PID/status, which only Linux has")
}

// procCPUSeconds needs Linux's /proc.
func procCPUSeconds(int) (float64, error) {
	return 0, errors.New("CPU time is read from /proc/PID/stat, which only Linux has")
}
