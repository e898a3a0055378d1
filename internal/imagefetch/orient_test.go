package imagefetch

import (
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"testing"
)

// storedPoint maps display pixel (dx, dy) to the stored pixel it shows,
// straight from the table of the Exif specification.
func storedPoint(o, w, h, dx, dy int) (int, int) {
	switch o {
	case 2:
		return w - 1 - dx, dy
	case 3:
		return w - 1 - dx, h - 1 - dy
	case 4:
		return dx, h - 1 - dy
	case 5:
		return dy, dx
	case 6:
		return dy, h - 1 - dx
	case 7:
		return w - 1 - dy, h - 1 - dx
	case 8:
		return w - 1 - dy, dx
	}
	return dx, dy
}

// noisy fills every pixel with a different value, via set.
func noisy(w, h int, set func(x, y int, v uint32)) {
	v := uint32(12345)
	for y := range h {
		for x := range w {
			v = v*1664525 + 1013904223
			set(x, y, v)
		}
	}
}

func TestOrientMatchesReference(t *testing.T) {
	makers := map[string]func(w, h int) image.Image{
		"RGBA": func(w, h int) image.Image {
			m := image.NewRGBA(image.Rect(0, 0, w, h))
			noisy(w, h, func(x, y int, v uint32) { m.SetRGBA(x, y, color.RGBA{uint8(v), uint8(v >> 8), uint8(v >> 16), 255}) })
			return m
		},
		"RGBA sub-image": func(w, h int) image.Image {
			m := image.NewRGBA(image.Rect(-3, 5, w+4, h+9))
			noisy(w+7, h+4, func(x, y int, v uint32) {
				m.SetRGBA(x-3, y+5, color.RGBA{uint8(v), uint8(v >> 8), uint8(v >> 16), 255})
			})
			return m.SubImage(image.Rect(0, 7, w, h+7))
		},
		"NRGBA": func(w, h int) image.Image {
			m := image.NewNRGBA(image.Rect(0, 0, w, h))
			noisy(w, h, func(x, y int, v uint32) {
				m.SetNRGBA(x, y, color.NRGBA{uint8(v), uint8(v >> 8), uint8(v >> 16), uint8(v >> 24)})
			})
			return m
		},
		"Gray": func(w, h int) image.Image {
			m := image.NewGray(image.Rect(0, 0, w, h))
			noisy(w, h, func(x, y int, v uint32) { m.SetGray(x, y, color.Gray{uint8(v >> 5)}) })
			return m
		},
		"Paletted (generic path)": func(w, h int) image.Image {
			m := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
			noisy(w, h, func(x, y int, v uint32) { m.SetColorIndex(x, y, uint8(v>>7)) })
			return m
		},
	}
	for _, r := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		makers["YCbCr "+r.String()] = func(w, h int) image.Image {
			m := image.NewYCbCr(image.Rect(0, 0, w, h), r)
			noisy(len(m.Y), 1, func(x, _ int, v uint32) { m.Y[x] = uint8(v >> 9) })
			noisy(len(m.Cb), 1, func(x, _ int, v uint32) { m.Cb[x], m.Cr[x] = uint8(v>>3), uint8(v>>17) })
			return m
		}
	}
	sizes := []image.Point{{1, 1}, {7, 5}, {8, 6}, {64, 64}, {130, 67}, {132, 68}, {65, 200}}
	for name, mk := range makers {
		for _, sz := range sizes {
			src := mk(sz.X, sz.Y)
			b := src.Bounds()
			for o := 1; o <= 8; o++ {
				t.Run(fmt.Sprintf("%s/%dx%d/o%d", name, sz.X, sz.Y, o), func(t *testing.T) {
					got := orient(src, o)
					wantW, wantH := sz.X, sz.Y
					if o >= 5 {
						wantW, wantH = sz.Y, sz.X
					}
					gb := got.Bounds()
					if gb.Dx() != wantW || gb.Dy() != wantH {
						t.Fatalf("size: got %dx%d, want %dx%d", gb.Dx(), gb.Dy(), wantW, wantH)
					}
					if o == 1 && got != src {
						t.Fatal("orientation 1: got a copy, want the image itself")
					}
					for dy := range wantH {
						for dx := range wantW {
							sx, sy := storedPoint(o, sz.X, sz.Y, dx, dy)
							want := color.RGBAModel.Convert(src.At(b.Min.X+sx, b.Min.Y+sy)).(color.RGBA)
							g := color.RGBAModel.Convert(got.At(gb.Min.X+dx, gb.Min.Y+dy)).(color.RGBA)
							if g != want {
								t.Fatalf("display (%d,%d) from stored (%d,%d): got %v, want %v (result %T)", dx, dy, sx, sy, g, want, got)
							}
						}
					}
				})
			}
		}
	}
}

func TestOrientKeepsFastTypes(t *testing.T) {
	tests := []struct {
		name string
		src  image.Image
		o    int
		want string
	}{
		{"YCbCr 4:2:0 even sides, rotate", image.NewYCbCr(image.Rect(0, 0, 64, 48), image.YCbCrSubsampleRatio420), 6, "*image.YCbCr"},
		{"YCbCr 4:2:0 even sides, flip", image.NewYCbCr(image.Rect(0, 0, 64, 48), image.YCbCrSubsampleRatio420), 3, "*image.YCbCr"},
		{"YCbCr 4:2:2 transposed to 4:4:0", image.NewYCbCr(image.Rect(0, 0, 64, 48), image.YCbCrSubsampleRatio422), 8, "*image.YCbCr"},
		{"YCbCr 4:2:0 odd height, rotate 90", image.NewYCbCr(image.Rect(0, 0, 64, 47), image.YCbCrSubsampleRatio420), 6, "*image.RGBA"},
		{"YCbCr 4:2:0 odd height, rotate 270 (no vertical flip)", image.NewYCbCr(image.Rect(0, 0, 64, 47), image.YCbCrSubsampleRatio420), 8, "*image.YCbCr"},
		{"YCbCr 4:1:1 transposed", image.NewYCbCr(image.Rect(0, 0, 64, 48), image.YCbCrSubsampleRatio411), 5, "*image.RGBA"},
		{"NRGBA", image.NewNRGBA(image.Rect(0, 0, 4, 2)), 7, "*image.NRGBA"},
		{"Gray", image.NewGray(image.Rect(0, 0, 4, 2)), 2, "*image.Gray"},
		{"CMYK", image.NewCMYK(image.Rect(0, 0, 4, 2)), 2, "*image.RGBA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprintf("%T", orient(tt.src, tt.o)); got != tt.want {
				t.Errorf("type: got %s, want %s", got, tt.want)
			}
		})
	}
}
