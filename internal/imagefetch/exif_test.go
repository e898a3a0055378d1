package imagefetch

import (
	"encoding/binary"
	"image"
	"os"
	"testing"
)

func TestOrientationParser(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(32, 16), 90)
	pngb := encodePNG(t, markedImage(32, 16))
	gray := image.NewGray(image.Rect(0, 0, 4, 3))
	webp6, err := os.ReadFile("testdata/exif6.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpPlain, err := os.ReadFile("testdata/plain.webp")
	if err != nil {
		t.Fatal(err)
	}
	le, be := order(binary.LittleEndian), order(binary.BigEndian)

	// A JPEG whose first APP1 is XMP, then Exif.
	xmp := append([]byte{0xFF, 0xE1, 0x00, 0x20}, []byte("http://ns.adobe.com/xap/1.0/\x00\x00")...)
	jpgXMP := append(append(append([]byte{}, jpg[:2]...), xmp...), withJPEGExif(jpg, exifTIFF(8, le))[2:]...)

	// LONG-typed orientation, written by a few tools.
	long := exifTIFF(3, be)
	binary.BigEndian.PutUint16(long[8+2+12+2:], 4)
	binary.BigEndian.PutUint32(long[8+2+12+8:], 3)

	tests := []struct {
		name string
		f    format
		data []byte
		want int
	}{
		{"JPEG without Exif", formatJPEG, jpg, 1},
		{"JPEG Exif LE 6", formatJPEG, withJPEGExif(jpg, exifTIFF(6, le)), 6},
		{"JPEG Exif BE 8", formatJPEG, withJPEGExif(jpg, exifTIFF(8, be)), 8},
		{"JPEG XMP then Exif", formatJPEG, jpgXMP, 8},
		{"JPEG Exif value 9 is invalid", formatJPEG, withJPEGExif(jpg, exifTIFF(9, le)), 1},
		{"JPEG Exif value 0 is invalid", formatJPEG, withJPEGExif(jpg, exifTIFF(0, le)), 1},
		{"JPEG Exif truncated", formatJPEG, withJPEGExif(jpg, exifTIFF(6, le))[:30], 1},
		{"TIFF orientation LONG", formatTIFF, long, 3},
		{"PNG without eXIf", formatPNG, pngb, 1},
		{"PNG eXIf 5", formatPNG, withPNGExif(pngb, exifTIFF(5, be)), 5},
		{"PNG eXIf with Exif prefix", formatPNG, withPNGExif(pngb, append([]byte("Exif\x00\x00"), exifTIFF(7, le)...)), 7},
		{"TIFF file LE 2", formatTIFF, grayTIFF(gray, 2, le), 2},
		{"TIFF file BE 4", formatTIFF, grayTIFF(gray, 4, be), 4},
		{"TIFF file without tag", formatTIFF, grayTIFF(gray, 0, le), 1},
		{"WebP (cwebp) EXIF 6", formatWebP, webp6, 6},
		{"WebP without EXIF", formatWebP, webpPlain, 1},
		{"GIF has none", formatGIF, []byte("GIF89a"), 1},
		{"empty", formatJPEG, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := orientation(tt.f, tt.data); got != tt.want {
				t.Errorf("orientation: got %d, want %d", got, tt.want)
			}
		})
	}
}

func FuzzOrientation(f *testing.F) {
	jpg := encodeJPEG(f, markedImage(16, 16), 50)
	pngb := encodePNG(f, markedImage(16, 16))
	gray := image.NewGray(image.Rect(0, 0, 2, 2))
	for o := 1; o <= 8; o++ {
		f.Add(withJPEGExif(jpg, exifTIFF(o, binary.LittleEndian)))
		f.Add(withPNGExif(pngb, exifTIFF(o, binary.BigEndian)))
		f.Add(grayTIFF(gray, o, binary.BigEndian))
	}
	if b, err := os.ReadFile("testdata/exif6.webp"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("RIFF\x20\x00\x00\x00WEBPEXIF\xff\xff\xff\xff"))
	f.Add([]byte("\xff\xd8\xff\xe1\x00\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fm := range []format{formatJPEG, formatPNG, formatWebP, formatTIFF, sniff(data)} {
			if o := orientation(fm, data); o < 1 || o > 8 {
				t.Fatalf("orientation(%v): got %d, want 1..8", fm, o)
			}
		}
		// The TIFF parser must accept any bytes behind an Exif header too.
		if o := tiffOrientation(data); o < 1 || o > 8 {
			t.Fatalf("tiffOrientation: got %d, want 1..8", o)
		}
	})
}
