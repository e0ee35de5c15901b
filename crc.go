package cos

import (
	"hash/crc64"
	"strconv"
)

// COS checks content with CRC-64/ECMA-182 in its reflected form, which is
// Go's crc64.ECMA table; answers carry it as x-cos-hash-crc64ecma.
var crcTable = crc64.MakeTable(crc64.ECMA)

// parseCRC reads an x-cos-hash-crc64ecma value; ok is false when absent.
func parseCRC(header string) (crc uint64, ok bool) {
	crc, err := strconv.ParseUint(header, 10, 64)
	return crc, err == nil
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
