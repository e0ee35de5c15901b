// Package bench holds the performance benchmarks of registry-cos: the COS
// storage driver measured through the registry's HTTP API, the driver API and
// the registry's storage walks, against the costest emulator, with the
// upstream filesystem driver as the yardstick where a comparison makes sense.
//
// The package has no non-test code. Run every benchmark once with
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./bench/
//
// and add -short for a quick run on small data (a smoke test of the harness;
// its figures mean nothing). docs/benchmarks.md describes each benchmark, the
// figures of the last run and the targets they are held to.
//
// Large data is generated on the fly by a deterministic reader and written to
// temporary directories that are removed afterwards; nothing is committed.
package bench
