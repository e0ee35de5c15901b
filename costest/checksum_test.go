package costest

import (
	"hash/crc64"
	"math/rand"
	"testing"
)

func TestCRC64Vectors(t *testing.T) {
	for in, want := range map[string]uint64{
		"123456789": 11051210869376104954,
		"abc":       3231342946509354535,
		"hello":     11177612005948864433,
		"":          0,
	} {
		if got := crc64.Checksum([]byte(in), crcTable); got != want {
			t.Errorf("CRC64(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestCRC64CombineMatchesWholeChecksum(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, sizes := range [][2]int{{0, 5}, {5, 0}, {1, 1}, {100, 3000}, {4096, 4096}, {12345, 1 << 16}} {
		a := make([]byte, sizes[0])
		b := make([]byte, sizes[1])
		rng.Read(a)
		rng.Read(b)
		want := crc64.Checksum(append(append([]byte{}, a...), b...), crcTable)
		got := crc64Combine(crc64.Checksum(a, crcTable), crc64.Checksum(b, crcTable), int64(len(b)))
		if got != want {
			t.Errorf("combine(%d bytes, %d bytes) = %d, want %d", len(a), len(b), got, want)
		}
	}
}
