package testenv

import (
	"io"
	"math/rand/v2"
)

// RandomBytes returns n pseudo-random bytes. The same seed gives the same
// bytes, so a failure can be reproduced; distinct seeds give distinct
// content (distinct layers, distinct blobs).
func RandomBytes(n int, seed uint64) []byte {
	buf := make([]byte, n)
	_, _ = chacha8(seed).Read(buf)
	return buf
}

func chacha8(seed uint64) *rand.ChaCha8 {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(key)
}

// PatternBlockSize is the size of the block a PatternReader repeats.
const PatternBlockSize = 1 << 20

// PatternReader yields a deterministic stream of any length at little more
// than the cost of a copy, for content too large to hold or to generate
// byte by byte (gigabyte blobs in benchmarks): a PatternBlockSize block of
// seeded pseudo-random bytes, repeated, with the first 8 bytes of every
// block replaced by the block's index, so that no two blocks of a stream,
// and no two streams of different seeds, are equal.
type PatternReader struct {
	block []byte
	left  int64
	pos   int64
}

// NewPatternReader returns a reader of size bytes for seed.
func NewPatternReader(seed uint64, size int64) *PatternReader {
	return &PatternReader{block: RandomBytes(PatternBlockSize, seed), left: size}
}

// Read fills p with the next bytes of the stream.
func (r *PatternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	off := int(r.pos % PatternBlockSize)
	if off == 0 {
		index := r.pos / PatternBlockSize
		for j := range 8 {
			r.block[j] = byte(index >> (8 * j))
		}
	}
	n := copy(p, r.block[off:])
	n = int(min(int64(n), r.left))
	r.pos += int64(n)
	r.left -= int64(n)
	return n, nil
}
