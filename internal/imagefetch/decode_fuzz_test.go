package imagefetch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// fuzzMaxPixels is the pixel cap of FuzzDecodeImage: small, so that the
// decoders stay fast, and above the generated seeds.
const fuzzMaxPixels = 1 << 14

// decodeSeeds returns every image in testdata, the real photo of the app
// tests, and small images of each format, pixel type, subsampling and EXIF
// orientation the decoder handles, plus bodies that are not images.
func decodeSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	files, err := filepath.Glob("testdata/*")
	if err != nil {
		tb.Fatal(err)
	}
	files = append(files, filepath.Join("..", "app", "testdata", "photo-orientation6.jpg"))
	for _, name := range files {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() || strings.HasSuffix(name, ".md") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	if len(seeds) < 3 {
		tb.Fatalf("found %d seed images in testdata and ../app/testdata, want at least 3", len(seeds))
	}

	enc := func(fn func(*bytes.Buffer) error) []byte {
		var buf bytes.Buffer
		if err := fn(&buf); err != nil {
			tb.Fatal(err)
		}
		return buf.Bytes()
	}
	// Odd sides, and sides that are not multiples of the 8×8 blocks or the
	// chroma blocks, reach every strip of the remapping code.
	rgba := markedImage(37, 23)
	nrgba := image.NewNRGBA(image.Rect(0, 0, 40, 18))
	gray := image.NewGray(image.Rect(0, 0, 17, 72))
	gray16 := image.NewGray16(image.Rect(0, 0, 9, 5))
	pal := image.NewPaletted(image.Rect(0, 0, 12, 10), color.Palette{color.Black, red, blue})
	for i := range nrgba.Pix {
		nrgba.Pix[i] = uint8(i * 7)
	}
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 13)
	}
	for i := range gray16.Pix {
		gray16.Pix[i] = uint8(i * 31)
	}
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	jpegs := [][]byte{encodeJPEG(tb, rgba, 90), encodeJPEG(tb, markedImage(64, 48), 50), encodeJPEG(tb, gray, 80)}
	pngs := [][]byte{encodePNG(tb, rgba), encodePNG(tb, nrgba), encodePNG(tb, gray16), encodePNG(tb, pal)}
	for o := 1; o <= 8; o++ {
		for _, j := range jpegs {
			seeds = append(seeds, withJPEGExif(j, exifTIFF(o, binary.LittleEndian)))
		}
		for _, p := range pngs {
			seeds = append(seeds, withPNGExif(p, exifTIFF(o, binary.BigEndian)))
		}
		seeds = append(seeds, grayTIFF(gray, o, binary.BigEndian))
	}
	// A GIF whose only frame covers part of the logical screen.
	small := image.NewPaletted(image.Rect(3, 2, 11, 7), pal.Palette)
	seeds = append(seeds,
		enc(func(b *bytes.Buffer) error {
			return gif.EncodeAll(b, &gif.GIF{Image: []*image.Paletted{small}, Delay: []int{0}, Config: image.Config{ColorModel: pal.Palette, Width: 16, Height: 9}})
		}),
		enc(func(b *bytes.Buffer) error { return gif.Encode(b, pal, nil) }),
		enc(func(b *bytes.Buffer) error { return bmp.Encode(b, rgba) }),
		enc(func(b *bytes.Buffer) error { return tiff.Encode(b, nrgba, &tiff.Options{Compression: tiff.Deflate}) }),
		enc(func(b *bytes.Buffer) error {
			return (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(b, gray)
		}),
		pngHeaderBomb(200, 200),
		pngHeaderBomb(0, 5),
		[]byte{},
		[]byte("<!DOCTYPE html><html><body>login</body></html>"),
		[]byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>`),
		[]byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"),
		[]byte("RIFF\x1a\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
	)
	return seeds
}

// FuzzDecodeImage runs decode, the path every fetched body takes, over
// arbitrary bytes with a small pixel cap. It must not panic; it must fail
// with an *Error of status 413 or 422, and with 413 exactly when the header
// claims more pixels than the cap; and an image it returns must have no
// more pixels than the cap and show each stored pixel where its EXIF
// orientation puts it.
func FuzzDecodeImage(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	const what = "image.bin"
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := decode(data, fuzzMaxPixels, what, "")

		fm := sniff(data)
		var cfg image.Config
		cfgErr := errors.New("not an image")
		if fm != formatUnknown {
			cfg, cfgErr = fm.codec().decodeConfig(bytes.NewReader(data))
		}
		limit := int64(fuzzMaxPixels)
		if cfgErr == nil && (cfg.ColorModel == color.RGBA64Model || cfg.ColorModel == color.NRGBA64Model) {
			limit /= 2 // 16 bits a channel count twice
		}
		overCap := cfgErr == nil && cfg.Width > 0 && cfg.Height > 0 && int64(cfg.Width)*int64(cfg.Height) > limit

		if err != nil {
			if img != nil {
				t.Fatalf("decode returned an image and the error %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("decode error %T (%v), want *Error", err, err)
			}
			if e.Status != http.StatusUnprocessableEntity && e.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("decode status %d (%v), want 413 or 422", e.Status, err)
			}
			if (e.Status == http.StatusRequestEntityTooLarge) != overCap {
				t.Fatalf("decode status %d for a %v header of %dx%d (%v), want 413 exactly over %d pixels", e.Status, fm, cfg.Width, cfg.Height, cfgErr, limit)
			}
			if !strings.HasPrefix(e.Msg, what) {
				t.Fatalf("decode message %q does not name the image %q first", e.Msg, what)
			}
			return
		}
		if img == nil {
			t.Fatal("decode returned neither an image nor an error")
		}
		if cfgErr != nil || overCap {
			t.Fatalf("decode accepted a %v body whose header is %dx%d (%v)", fm, cfg.Width, cfg.Height, cfgErr)
		}
		b := img.Bounds()
		if n := int64(b.Dx()) * int64(b.Dy()); n > fuzzMaxPixels || n <= 0 {
			t.Fatalf("decoded %v: %d pixels, want 1..%d", b, n, fuzzMaxPixels)
		}
		o := orientation(fm, data)
		if want := displayRect(o, cfg.Width, cfg.Height); b != want {
			t.Fatalf("decoded bounds %v for a %v header of %dx%d with orientation %d, want %v", b, fm, cfg.Width, cfg.Height, o, want)
		}

		// The stored pixels, decoded again without orientation.
		stored, err := fm.codec().decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("second decode: %v", err)
		}
		if fm == formatGIF {
			stored = gifCanvas(stored, cfg)
		}
		checkOriented(t, img, stored, o)
	})
}

// checkOriented fails unless every display pixel of got is the stored pixel
// that EXIF orientation o puts there (see orient.go). Colours may differ by
// 2 in 255 where a conversion to RGBA rounds differently from the colour
// model's own RGBA method.
func checkOriented(t *testing.T, got, stored image.Image, o int) {
	t.Helper()
	sb := stored.Bounds()
	w, h := sb.Dx(), sb.Dy()
	for dy := range got.Bounds().Dy() {
		for dx := range got.Bounds().Dx() {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = w-1-dx, dy
			case 3:
				sx, sy = w-1-dx, h-1-dy
			case 4:
				sx, sy = dx, h-1-dy
			case 5:
				sx, sy = dy, dx
			case 6:
				sx, sy = dy, h-1-dx
			case 7:
				sx, sy = w-1-dy, h-1-dx
			case 8:
				sx, sy = w-1-dy, dx
			default:
				sx, sy = dx, dy
			}
			gr, gg, gb, ga := got.At(got.Bounds().Min.X+dx, got.Bounds().Min.Y+dy).RGBA()
			wr, wg, wb, wa := stored.At(sb.Min.X+sx, sb.Min.Y+sy).RGBA()
			if !near16(gr, wr) || !near16(gg, wg) || !near16(gb, wb) || !near16(ga, wa) {
				t.Fatalf("orientation %d: display (%d,%d) is %04x %04x %04x %04x, stored (%d,%d) is %04x %04x %04x %04x",
					o, dx, dy, gr, gg, gb, ga, sx, sy, wr, wg, wb, wa)
			}
		}
	}
}

// near16 reports whether two 16-bit colour channels are within 2 in 255.
func near16(a, b uint32) bool {
	return max(a, b)-min(a, b) <= 2*0x101
}
