package costest

import (
	"crypto/md5"
	"encoding/hex"
	"hash"
	"hash/crc64"
	"io"
	"sync"
)

// crcTable is CRC-64/ECMA-182 in its reflected form, the checksum COS returns
// in x-cos-hash-crc64ecma (identical to CRC-64/XZ).
var crcTable = crc64.MakeTable(crc64.ECMA)

// copyBufferSize is the buffer used for streaming bodies: large enough that
// per-call overhead (hashing setup, syscalls) is negligible.
const copyBufferSize = 1 << 20

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// digest accumulates the MD5, CRC-64 and length of a byte stream in one pass.
type digest struct {
	md5  hash.Hash
	crc  uint64
	size int64
}

func newDigest() *digest { return &digest{md5: md5.New()} }

func (d *digest) Write(p []byte) (int, error) {
	d.md5.Write(p)
	d.crc = crc64.Update(d.crc, crcTable, p)
	d.size += int64(len(p))
	return len(p), nil
}

func (d *digest) md5Sum() []byte { return d.md5.Sum(nil) }
func (d *digest) md5Hex() string { return hex.EncodeToString(d.md5Sum()) }

// copyHashed copies src to dst through a large pooled buffer, computing the
// MD5, CRC-64 and length in the same pass. (An MD5 goroutine overlapping the
// write was measured slower on two cores shared with the client.) It reads
// at most limit+1 bytes, so the caller can tell a body over the limit from
// one that fits exactly.
func copyHashed(dst io.Writer, src io.Reader, limit int64) (*digest, error) {
	d := newDigest()
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	buf := *bp
	src = io.LimitReader(src, limit+1)
	for {
		// Fill the whole buffer so hashing and writing work on large
		// blocks; io.ReadFull is not used because it would turn a body cut
		// short (io.ErrUnexpectedEOF) into a clean end.
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var k int
			k, err = src.Read(buf[n:])
			n += k
		}
		if n > 0 {
			d.Write(buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return d, werr
			}
		}
		if err == io.EOF {
			return d, nil
		}
		if err != nil {
			return d, err
		}
	}
}

// crcOperator is the GF(2) matrix that advances a CRC-64 over a run of zero
// bytes; column i is the image of bit i.
type crcOperator [64]uint64

func (m *crcOperator) times(vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// compose returns m∘n (apply n first, then m).
func (m *crcOperator) compose(n *crcOperator) crcOperator {
	var out crcOperator
	for i := range out {
		out[i] = m.times(n[i])
	}
	return out
}

var (
	crcOperatorMu    sync.Mutex
	crcOperatorCache = map[int64]*crcOperator{}
)

// zeroOperator returns the operator that appends length zero bytes to a CRC
// state, after zlib's crc32_combine, cached because multipart objects are
// mostly made of equal-sized parts.
func zeroOperator(length int64) *crcOperator {
	crcOperatorMu.Lock()
	op, ok := crcOperatorCache[length]
	crcOperatorMu.Unlock()
	if ok {
		return op
	}
	var odd, even crcOperator
	odd[0] = 0xC96C5795D7870F42 // reflected ECMA-182 polynomial: one zero bit
	row := uint64(1)
	for n := 1; n < 64; n++ {
		odd[n] = row
		row <<= 1
	}
	even = odd.compose(&odd)  // two zero bits
	odd = even.compose(&even) // four zero bits
	var result crcOperator
	for i := range result {
		result[i] = 1 << i
	}
	for n := length; n > 0; {
		even = odd.compose(&odd) // first pass: one zero byte
		if n&1 != 0 {
			result = even.compose(&result)
		}
		n >>= 1
		if n == 0 {
			break
		}
		odd = even.compose(&even)
		if n&1 != 0 {
			result = odd.compose(&result)
		}
		n >>= 1
	}
	op = &result
	crcOperatorMu.Lock()
	if len(crcOperatorCache) > 1024 {
		clear(crcOperatorCache)
	}
	crcOperatorCache[length] = op
	crcOperatorMu.Unlock()
	return op
}

// crc64Combine returns the CRC-64 of A‖B given crcA = CRC(A), crcB = CRC(B)
// and len(B), so a multipart object's CRC needs no re-read of its data.
func crc64Combine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	return zeroOperator(lenB).times(crcA) ^ crcB
}
