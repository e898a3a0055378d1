package sam

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

func solidNRGBA(w, h int, r, g, b uint8) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = r, g, b, 255
	}
	return m
}

func solidYCbCr(w, h int, ratio image.YCbCrSubsampleRatio, y, cb, cr uint8) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), ratio)
	for i := range m.Y {
		m.Y[i] = y
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = cb, cr
	}
	return m
}

// hwcModel and friends return fake-backed models of each layout.
func layoutModel(t *testing.T, shape []int64, typ onnxrt.DataType) *Model {
	t.Helper()
	return newFakeModel(t, fakeEncoder(shape, typ, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
}

func hwcModel(t *testing.T) *Model  { return layoutModel(t, []int64{-1, -1, 3}, onnxrt.Float32) }
func nchwModel(t *testing.T) *Model { return layoutModel(t, []int64{1, 3, 1024, 1024}, onnxrt.Float32) }

func TestPreprocessConstant(t *testing.T) {
	const w, h = 1000, 700 // resized to 1024×717: an upscale
	wantRGB := [3]float32{200, 100, 50}
	ycc := func(ratio image.YCbCrSubsampleRatio) image.Image {
		y, cb, cr := color.RGBToYCbCr(200, 100, 50)
		return solidYCbCr(w, h, ratio, y, cb, cr)
	}
	paletted := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{color.Black, color.NRGBA{200, 100, 50, 255}})
	for i := range paletted.Pix {
		paletted.Pix[i] = 1
	}
	rgba64 := image.NewRGBA64(image.Rect(0, 0, w, h))
	draw.Draw(rgba64, rgba64.Bounds(), image.NewUniform(color.RGBA{200, 100, 50, 255}), image.Point{}, draw.Src)
	rgba := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(rgba, rgba.Bounds(), image.NewUniform(color.RGBA{200, 100, 50, 255}), image.Point{}, draw.Src)
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for i := range gray.Pix {
		gray.Pix[i] = 77
	}
	tests := []struct {
		name string
		img  image.Image
		want [3]float32
		tol  float32
	}{
		{"nrgba", solidNRGBA(w, h, 200, 100, 50), wantRGB, 0},
		{"rgba", rgba, wantRGB, 0},
		{"gray", gray, [3]float32{77, 77, 77}, 0},
		{"paletted", paletted, wantRGB, 0},
		{"rgba64 fallback", rgba64, wantRGB, 0},
		{"nrgba translucent", func() image.Image {
			m := solidNRGBA(w, h, 200, 100, 50)
			for i := 3; i < len(m.Pix); i += 4 {
				m.Pix[i] = 10
			}
			return m
		}(), wantRGB, 0},
		// Y'CbCr quantization moves the colour by up to one level or so.
		{"ycbcr 4:2:0", ycc(image.YCbCrSubsampleRatio420), wantRGB, 1.5},
		{"ycbcr 4:4:4", ycc(image.YCbCrSubsampleRatio444), wantRGB, 1.5},
		{"ycbcr 4:2:2", ycc(image.YCbCrSubsampleRatio422), wantRGB, 1.5},
		{"ycbcr 4:1:1", ycc(image.YCbCrSubsampleRatio411), wantRGB, 1.5},
		{"ycbcr 4:1:0", ycc(image.YCbCrSubsampleRatio410), wantRGB, 1.5},
		{"ycbcr 4:4:0", ycc(image.YCbCrSubsampleRatio440), wantRGB, 1.5},
	}
	for _, tt := range tests {
		t.Run(tt.name+" hwc", func(t *testing.T) {
			in := hwcModel(t).encoderInput(tt.img)
			if want := []int64{717, 1024, 3}; !equalShape(in.Shape, want) {
				t.Fatalf("shape %v, want %v", in.Shape, want)
			}
			for i, v := range in.Float32 {
				if c := i % 3; math.Abs(float64(v-tt.want[c])) > float64(tt.tol) {
					t.Fatalf("value %d (pixel %d, channel %d) = %v, want %v", i, i/3, c, v, tt.want[c])
				}
			}
		})
		t.Run(tt.name+" nchw", func(t *testing.T) {
			in := nchwModel(t).encoderInput(tt.img)
			if want := []int64{1, 3, 1024, 1024}; !equalShape(in.Shape, want) {
				t.Fatalf("shape %v, want %v", in.Shape, want)
			}
			mean := [3]float32{123.675, 116.28, 103.53}
			std := [3]float32{58.395, 57.12, 57.375}
			for c := range 3 {
				want := (tt.want[c] - mean[c]) / std[c]
				for y := range 1024 {
					for x := range 1024 {
						v := in.Float32[c*1024*1024+y*1024+x]
						if y >= 717 {
							if v != 0 {
								t.Fatalf("padding (%d, %d, %d) = %v, want 0", c, y, x, v)
							}
							continue
						}
						if math.Abs(float64(v-want)) > float64(tt.tol/std[c])+1e-5 {
							t.Fatalf("pixel (%d, %d, %d) = %v, want %v", c, y, x, v, want)
						}
					}
				}
			}
		})
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPreprocessNormalizedValues pins the NCHW numbers for black and white.
func TestPreprocessNormalizedValues(t *testing.T) {
	tests := []struct {
		name string
		v    uint8
		want [3]float32
	}{
		{"black", 0, [3]float32{-2.117904, -2.035714, -1.804444}},
		{"white", 255, [3]float32{2.248908, 2.428571, 2.640000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := nchwModel(t).encoderInput(solidNRGBA(64, 32, tt.v, tt.v, tt.v))
			for c := range 3 {
				for _, i := range []int{c * 1 << 20, c*1<<20 + 511*1024 + 1023} {
					if got := in.Float32[i]; math.Abs(float64(got-tt.want[c])) > 1e-5 {
						t.Errorf("channel %d value %d = %v, want %v", c, i, got, tt.want[c])
					}
				}
				if got := in.Float32[c*1<<20+512*1024]; got != 0 {
					t.Errorf("channel %d first padding row = %v, want 0", c, got)
				}
			}
		})
	}
}

func TestPreprocessUint8(t *testing.T) {
	m := layoutModel(t, []int64{-1, -1, 3}, onnxrt.Uint8)
	img := solidNRGBA(300, 200, 0, 128, 255)
	img.Pix[0] = 255 // one bright pixel in a 300→1024 upscale stays in range
	in := m.encoderInput(img)
	if in.Type != onnxrt.Uint8 || !equalShape(in.Shape, []int64{683, 1024, 3}) {
		t.Fatalf("got %v %v, want uint8 [683 1024 3]", in.Type, in.Shape)
	}
	last := in.Uint8[len(in.Uint8)-3:]
	if last[0] != 0 || last[1] != 128 || last[2] != 255 {
		t.Errorf("last pixel %v, want [0 128 255]", last)
	}
	if in.Uint8[0] != 255 {
		t.Errorf("first value %d, want 255", in.Uint8[0])
	}
}

// TestPreprocessAreaAverage: halving a random image averages 2×2 blocks.
func TestPreprocessAreaAverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	img := image.NewRGBA(image.Rect(0, 0, 2048, 1024))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	in := hwcModel(t).encoderInput(img)
	if !equalShape(in.Shape, []int64{512, 1024, 3}) {
		t.Fatalf("shape %v, want [512 1024 3]", in.Shape)
	}
	for y := range 512 {
		for x := range 1024 {
			for c := range 3 {
				var sum int
				for _, d := range [4][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
					sum += int(img.Pix[img.PixOffset(2*x+d[0], 2*y+d[1])+c])
				}
				want := float32(sum) / 4
				if got := in.Float32[(y*1024+x)*3+c]; got != want {
					t.Fatalf("pixel (%d, %d) channel %d = %v, want %v", x, y, c, got, want)
				}
			}
		}
	}
}

// TestPreprocessYCbCrMatchesRGB compares resizing in Y'CbCr with converting
// to RGB first, on a sub-image at odd offsets.
func TestPreprocessYCbCrMatchesRGB(t *testing.T) {
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio444,
		image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410, image.YCbCrSubsampleRatio440,
	}
	for _, ratio := range ratios {
		t.Run(ratio.String(), func(t *testing.T) {
			full := image.NewYCbCr(image.Rect(0, 0, 2600, 1500), ratio)
			// Smooth content within the RGB gamut, so that chroma sampling
			// positions matter but clamping does not.
			for y := range 1500 {
				for x := range 2600 {
					full.Y[full.YOffset(x, y)] = uint8(128 + 60*math.Sin(float64(x)/50)*math.Cos(float64(y)/70))
				}
			}
			for i := range full.Cb {
				x, y := i%full.CStride, i/full.CStride
				full.Cb[i] = uint8(128 + 30*math.Sin(float64(x)/13))
				full.Cr[i] = uint8(128 + 30*math.Cos(float64(y)/11))
			}
			sub := full.SubImage(image.Rect(13, 7, 2513, 1407)).(*image.YCbCr)
			rgb := image.NewRGBA(image.Rect(0, 0, 2500, 1400))
			draw.Draw(rgb, rgb.Bounds(), sub, sub.Rect.Min, draw.Src)
			m := hwcModel(t)
			got, want := m.encoderInput(sub), m.encoderInput(rgb)
			var maxDiff float64
			for i := range got.Float32 {
				maxDiff = max(maxDiff, math.Abs(float64(got.Float32[i]-want.Float32[i])))
			}
			// The RGB path rounds each converted pixel to 8 bits.
			if maxDiff > 1 {
				t.Errorf("max |Y'CbCr path - RGB path| = %v, want ≤ 1", maxDiff)
			}
		})
	}
}

// TestPreprocessSubImage checks that a sub-image is resized from its own
// bounds.
func TestPreprocessSubImage(t *testing.T) {
	big := solidNRGBA(300, 300, 0, 0, 0)
	sub := big.SubImage(image.Rect(100, 100, 200, 150)).(*image.NRGBA)
	draw.Draw(sub, sub.Bounds(), image.NewUniform(color.NRGBA{9, 99, 199, 255}), image.Point{}, draw.Src)
	in := hwcModel(t).encoderInput(sub)
	if !equalShape(in.Shape, []int64{512, 1024, 3}) {
		t.Fatalf("shape %v, want [512 1024 3]", in.Shape)
	}
	for i, v := range in.Float32 {
		if want := [3]float32{9, 99, 199}[i%3]; v != want {
			t.Fatalf("value %d = %v, want %v", i, v, want)
		}
	}
}

// checkAxisFilter checks that every output reads inside the axis with
// non-negative weights that sum to one.
func checkAxisFilter(t *testing.T, dst, n int, scale, off float64, box bool) {
	t.Helper()
	f := newAxisFilter(dst, n, scale, off, box)
	for i := range dst {
		s, c := int(f.start[i]), int(f.count[i])
		if s < 0 || c < 1 || s+f.taps > n || c > f.taps {
			t.Fatalf("dst %d n %d scale %v box %v: output %d reads [%d, %d) of %d, %d of them weighted", dst, n, scale, box, i, s, s+f.taps, n, c)
		}
		for k, w := range f.w[i*f.taps+c : (i+1)*f.taps] {
			if w != 0 {
				t.Fatalf("dst %d n %d scale %v box %v: output %d has weight %d at %d, past its count %d", dst, n, scale, box, i, w, c+k, c)
			}
		}
		var sum int32
		for _, w := range f.w[i*f.taps:][:c] {
			if w < 0 {
				t.Fatalf("dst %d n %d scale %v box %v: output %d has weight %d", dst, n, scale, box, i, w)
			}
			sum += w
		}
		if sum != 1<<fixBits {
			t.Fatalf("dst %d n %d scale %v box %v: output %d weights sum to %d, want %d", dst, n, scale, box, i, sum, 1<<fixBits)
		}
	}
}

func TestAxisFilterWeights(t *testing.T) {
	tests := []struct {
		dst, n int
		scale  float64
		box    bool
	}{
		{1024, 4000, 4000.0 / 1024, true}, {768, 3000, 3000.0 / 768, true}, {1024, 640, 0.625, false},
		{1024, 1024, 1, false}, {512, 1000, 1000.0 / 512, true}, {1024, 2000, 2000.0 / 1024 / 4, true},
		{1024, 2000, 2000.0 / 1024 / 4, false}, {1, 1, 1, true}, {1, 1, 1, false}, {3, 7, 7.0 / 3, true},
	}
	for _, tt := range tests {
		checkAxisFilter(t, tt.dst, tt.n, tt.scale, 0, tt.box)
	}
}

// FuzzAxisFilter covers the resize of any image side, luma or chroma.
func FuzzAxisFilter(f *testing.F) {
	f.Add(uint16(4000), uint8(1), uint8(0), false)
	f.Add(uint16(3), uint8(2), uint8(1), true)
	f.Add(uint16(65535), uint8(4), uint8(3), false)
	f.Fuzz(func(t *testing.T, side uint16, sub, origin uint8, long bool) {
		if side == 0 || sub == 0 || sub > 4 {
			return
		}
		// The image's side, the other one long or short, and a chroma
		// plane subsampled by sub with the image starting at origin.
		w, other := int(side), 1
		if long {
			other = 65535
		}
		dst, _ := resizedSize(w, other)
		fs, o := int(sub), int(origin)%int(sub)
		n := (o + w + fs - 1) / fs
		scale := float64(w) / float64(dst)
		checkAxisFilter(t, dst, w, scale, 0, scale > 1)
		checkAxisFilter(t, dst, n, scale/float64(fs), float64(o)/float64(fs), scale > 1)
	})
}

// testYCbCr returns a 4:2:0 Y'CbCr image of w×h with some structure.
func testYCbCr(w, h int) *image.YCbCr {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		row := m.Y[y*m.YStride:][:w]
		for x := range row {
			row[x] = uint8(x ^ y)
		}
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(i), uint8(i>>3)
	}
	return m
}

func BenchmarkPreprocess4000x3000(b *testing.B) {
	img := testYCbCr(4000, 3000)
	for _, bm := range []struct {
		name  string
		shape []int64
		typ   onnxrt.DataType
	}{
		{"hwc", []int64{-1, -1, 3}, onnxrt.Float32},
		{"nchw", []int64{1, 3, 1024, 1024}, onnxrt.Float32},
	} {
		b.Run(bm.name, func(b *testing.B) {
			m, err := newModel(fakeEncoder(bm.shape, bm.typ, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				m.encoderInput(img)
			}
		})
	}
}

func BenchmarkPreprocessRGBA4000x3000(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	m, err := newModel(fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.encoderInput(img)
	}
}

// BenchmarkJPEGDecode4000x3000 is the standard library's JPEG decode of a
// 4000×3000 photo-sized image, for comparison with the preprocessing.
func BenchmarkJPEGDecode4000x3000(b *testing.B) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testYCbCr(4000, 3000), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
