package cos

import (
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"strconv"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// COS checks content with CRC-64/ECMA-182 in its reflected form, which is
// Go's crc64.ECMA table; answers carry it as x-cos-hash-crc64ecma.
var crcTable = crc64.MakeTable(crc64.ECMA)

// crcSlices are the slicing-by-8 tables of crcTable: crcSlices[k][b] is the
// CRC state of byte b followed by k zero bytes.
var crcSlices = func() (t [8][256]uint64) {
	t[0] = *crcTable
	for k := 1; k < 8; k++ {
		for b := range 256 {
			prev := t[k-1][b]
			t[k][b] = t[0][prev&0xff] ^ prev>>8
		}
	}
	return t
}()

// crcStreams is how many parts of a buffer crcOf runs through at once.
const crcStreams = 4

// crcOf is the CRC64 of data, crc64.Checksum(data, crcTable), at about
// three times its speed on large buffers: the CRC of a buffer is a chain
// of table lookups, each waiting for the one before, so crcOf runs four
// independent chains over the buffer's quarters in one loop (which the
// processor overlaps) and joins them with crcCombine. A part's CRC is the
// largest CPU cost of a push after the registry's own sha256.
func crcOf(data []byte) uint64 {
	quarter := len(data) / crcStreams &^ 7
	if quarter < 4*kib {
		return crc64.Checksum(data, crcTable)
	}
	t := &crcSlices
	var s [crcStreams]uint64
	for i := range s {
		s[i] = ^uint64(0)
	}
	q0, q1, q2, q3 := data[:quarter], data[quarter:2*quarter], data[2*quarter:3*quarter], data[3*quarter:4*quarter]
	for len(q0) >= 8 && len(q1) >= 8 && len(q2) >= 8 && len(q3) >= 8 {
		s[0] = crcSlice8(t, s[0]^binary.LittleEndian.Uint64(q0))
		s[1] = crcSlice8(t, s[1]^binary.LittleEndian.Uint64(q1))
		s[2] = crcSlice8(t, s[2]^binary.LittleEndian.Uint64(q2))
		s[3] = crcSlice8(t, s[3]^binary.LittleEndian.Uint64(q3))
		q0, q1, q2, q3 = q0[8:], q1[8:], q2[8:], q3[8:]
	}
	crc := ^s[0]
	for i := 1; i < crcStreams; i++ {
		crc = crcCombine(crc, ^s[i], int64(quarter))
	}
	rest := data[crcStreams*quarter:]
	return crcCombine(crc, crc64.Checksum(rest, crcTable), int64(len(rest)))
}

// crcSlice8 advances a CRC state by the eight bytes already xored into x.
func crcSlice8(t *[8][256]uint64, x uint64) uint64 {
	return t[7][byte(x)] ^ t[6][byte(x>>8)] ^ t[5][byte(x>>16)] ^ t[4][byte(x>>24)] ^
		t[3][byte(x>>32)] ^ t[2][byte(x>>40)] ^ t[1][byte(x>>48)] ^ t[0][x>>56]
}

// parseCRC reads an x-cos-hash-crc64ecma value; ok is false when absent.
func parseCRC(header string) (crc uint64, ok bool) {
	crc, err := strconv.ParseUint(header, 10, 64)
	return crc, err == nil
}

// checkWriteCRC checks COS's answer to a write (PUT Object, Upload Part)
// of data whose CRC64 is want: the answer must carry
// x-cos-hash-crc64ecma, equal to want. A mismatch is an error that is
// retried (the bytes were damaged on the way, and are sent again); what
// names the write. The driver checks this itself rather than through the
// SDK's EnableCRC, whose hash/crc64 pass over every body is twice as slow
// as crcOf.
func checkWriteCRC(resp *cossdk.Response, want uint64, what string) error {
	got, ok := parseCRC(resp.Header.Get("x-cos-hash-crc64ecma"))
	switch {
	case !ok:
		return fmt.Errorf("cos: %s: COS sent no CRC64", what)
	case got != want:
		return fmt.Errorf("cos: %s: COS computed CRC64 %s, the data sent has %s", what, formatCRC(got), formatCRC(want))
	}
	return nil
}

// formatCRC renders a CRC64 as COS does: unsigned decimal.
func formatCRC(crc uint64) string { return strconv.FormatUint(crc, 10) }

// crcCombine returns the CRC of A followed by B from crc(A), crc(B) and
// len(B), without the data (the GF(2) matrix method zlib uses), so the
// writer can check a whole object from the CRCs of its parts.
func crcCombine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [64]uint64
	odd[0] = crc64.ECMA // the operator for one zero bit
	row := uint64(1)
	for n := 1; n < 64; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd)
		if lenB&1 != 0 {
			crcA = gf2Times(&even, crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
		gf2Square(&odd, &even)
		if lenB&1 != 0 {
			crcA = gf2Times(&odd, crcA)
		}
		lenB >>= 1
		if lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

// crcSuffix returns the CRC of B from crc(A followed by B), crc(A) and
// len(B): combining is linear, crc(AB) = shift(crc(A), len(B)) ^ crc(B).
func crcSuffix(crcAB, crcA uint64, lenB int64) uint64 {
	return crcAB ^ crcCombine(crcA, 0, lenB)
}

func gf2Times(mat *[64]uint64, vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[64]uint64) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}
