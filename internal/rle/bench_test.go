package rle_test

import (
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// BenchmarkEncodeDisc1920x1080 encodes a typical SAM mask on a full-HD image.
func BenchmarkEncodeDisc1920x1080(b *testing.B) {
	mask := disc(1920, 1080)
	b.SetBytes(int64(len(mask)))
	b.ReportAllocs()
	for b.Loop() {
		rle.Encode(mask)
	}
}

// BenchmarkEncodeNoise256x256 encodes the worst case: every pixel its own run.
func BenchmarkEncodeNoise256x256(b *testing.B) {
	mask := make([]byte, 256*256)
	for i := range mask {
		mask[i] = byte(i%2) * 255
	}
	b.SetBytes(int64(len(mask)))
	b.ReportAllocs()
	for b.Loop() {
		rle.Encode(mask)
	}
}

// BenchmarkDecode decodes the 1920×1080 disc back to 8,294,400 RGBA bytes.
func BenchmarkDecode(b *testing.B) {
	mask := disc(1920, 1080)
	data := rle.Encode(mask)
	b.SetBytes(int64(4 * len(mask)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rle.Decode(data, 4*len(mask)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeNoise256x256 decodes the encoder's worst case.
func BenchmarkDecodeNoise256x256(b *testing.B) {
	mask := make([]byte, 256*256)
	for i := range mask {
		mask[i] = byte(i%2) * 255
	}
	data := rle.Encode(mask)
	b.SetBytes(int64(4 * len(mask)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rle.Decode(data, 4*len(mask)); err != nil {
			b.Fatal(err)
		}
	}
}
