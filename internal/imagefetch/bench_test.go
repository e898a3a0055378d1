package imagefetch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/jpeg"
	"testing"
)

// BenchmarkFetchDecodeJPEG4000x3000 fetches a 12 MP photo-like JPEG from an
// httptest server and decodes it, with EXIF orientation 1 (no-op) and 6
// (rotate 90°, what phones write for portrait shots).
func BenchmarkFetchDecodeJPEG4000x3000(b *testing.B) {
	jpg := photoJPEG(b, 4000, 3000)
	for _, o := range []int{1, 6} {
		b.Run(fmt.Sprintf("orientation=%d", o), func(b *testing.B) {
			body := withJPEGExif(jpg, exifTIFF(o, binary.BigEndian))
			ls := newFakeLS(b, "", "Token "+legacyKey)
			ls.serveBytes("/data/upload/1/photo.jpg", "image/jpeg", body)
			f := newFetcher(b, Config{LabelStudio: ls.base(b), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
			loc, err := f.Resolve("/data/upload/1/photo.jpg", 0)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				img, err := f.Fetch(b.Context(), loc, "1.1")
				if err != nil {
					b.Fatal(err)
				}
				if o == 6 && img.Bounds().Dx() != 3000 {
					b.Fatalf("width: got %d, want 3000", img.Bounds().Dx())
				}
			}
		})
	}
}

// BenchmarkOrient4000x3000 times the orientation step alone.
func BenchmarkOrient4000x3000(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(photoJPEG(b, 4000, 3000)))
	if err != nil {
		b.Fatal(err)
	}
	ycc := img.(*image.YCbCr)
	odd := ycc.SubImage(image.Rect(0, 0, 4000, 2999)).(*image.YCbCr)
	rgba := image.NewRGBA(ycc.Rect)
	tests := []struct {
		name string
		img  image.Image
		o    int
	}{
		{"YCbCr420-planes/o6", ycc, 6},
		{"YCbCr420-planes/o3", ycc, 3},
		{"YCbCr420-to-RGBA/o6 (odd height)", odd, 6},
		{"RGBA/o6", rgba, 6},
		{"RGBA/o3", rgba, 3},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				orient(tt.img, tt.o)
			}
		})
	}
}
