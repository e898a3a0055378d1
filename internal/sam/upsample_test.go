package sam

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// refResize is a direct bilinear resize with align_corners=False and no
// antialiasing, as torch.nn.functional.interpolate(size=...) computes it,
// in float64.
func refResize(src []float64, sw, sh, dw, dh int) []float64 {
	index := func(i, in, out int) (int, int, float64) {
		s := (float64(i)+0.5)*float64(in)/float64(out) - 0.5
		if s < 0 {
			s = 0
		}
		i0 := int(s)
		i1 := i0
		if i0 < in-1 {
			i1++
		}
		return i0, i1, s - float64(i0)
	}
	dst := make([]float64, dw*dh)
	for y := range dh {
		y0, y1, ly := index(y, sh, dh)
		for x := range dw {
			x0, x1, lx := index(x, sw, dw)
			top := (1-lx)*src[y0*sw+x0] + lx*src[y0*sw+x1]
			bot := (1-lx)*src[y1*sw+x0] + lx*src[y1*sw+x1]
			dst[y*dw+x] = (1-ly)*top + ly*bot
		}
	}
	return dst
}

// refLogits is mask_postprocessing step by step: upsample to 1024×1024,
// crop to the resized image, resize to w×h.
func refLogits(low []float32, w, h int) []float64 {
	src := make([]float64, len(low))
	for i, v := range low {
		src[i] = float64(v)
	}
	up := refResize(src, lowRes, lowRes, InputSize, InputSize)
	nw, nh := resizedSize(w, h)
	crop := make([]float64, nw*nh)
	for y := range nh {
		copy(crop[y*nw:(y+1)*nw], up[y*InputSize:y*InputSize+nw])
	}
	return refResize(crop, nw, nh, w, h)
}

// composedLogits applies the upsampler's composed taps without the
// threshold.
func composedLogits(u *upsampler, low []float32) []float64 {
	out := make([]float64, u.w*u.h)
	for y := range u.h {
		for x := range u.w {
			var v float64
			for j := range 3 {
				for i := range 3 {
					r, c := int(u.rows.start[y])+j, int(u.cols.start[x])+i
					v += float64(u.rows.w[y][j]) * float64(u.cols.w[x][i]) * float64(low[r*lowRes+c])
				}
			}
			out[y*u.w+x] = v
		}
	}
	return out
}

// testLogits returns low-res logits that mix a disc, large flat regions of
// both signs and noise, so that every path of the vertical pass runs.
func testLogits(seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	low := discLogits(300+200*rng.Float64(), 300+200*rng.Float64(), 50+150*rng.Float64())
	for y := range lowRes {
		for x := range lowRes {
			i := y*lowRes + x
			switch {
			case x > 200 && y < 60:
				low[i] = 5 + rng.Float32() // all positive
			case x < 40 && y > 200:
				low[i] = -1 - rng.Float32()
			case x > 150 && y > 150:
				low[i] += float32(rng.NormFloat64()) // rough boundary
			}
		}
	}
	return low
}

func checkUpsampler(t *testing.T, w, h int, low []float32) {
	t.Helper()
	u := newUpsampler(w, h)
	ref := refLogits(low, w, h)
	// The same map on |low| gives, per pixel, the magnitude of what was
	// summed, the scale of float32 rounding.
	abs := make([]float32, len(low))
	for i, v := range low {
		abs[i] = float32(math.Abs(float64(v)))
	}
	scale := refLogits(abs, w, h)
	tol := func(i int) float64 { return 1e-6*scale[i] + 1e-12 }
	got := composedLogits(u, low)
	var worst float64
	for i := range ref {
		worst = max(worst, math.Abs(got[i]-ref[i])/tol(i))
	}
	if worst > 1 {
		t.Errorf("%d×%d: |composed - reference| logit reaches %.2f× the tolerance 1e-6·Σw|logit|", w, h, worst)
	}
	pix := u.mask(low, nil, nil)
	if len(pix) != w*h {
		t.Fatalf("%d×%d: mask has %d bytes, want %d", w, h, len(pix), w*h)
	}
	var diffs int
	for i, v := range ref {
		want := byte(0)
		if v > 0 {
			want = 255
		}
		if pix[i] != want && math.Abs(v) > tol(i) {
			diffs++
			if diffs < 5 {
				t.Errorf("%d×%d: pixel (%d, %d) = %d, want %d (reference logit %g)", w, h, i%w, i/w, pix[i], want, v)
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d×%d: %d pixels differ from the reference threshold", w, h, diffs)
	}
}

func TestUpsamplerMatchesReference(t *testing.T) {
	sizes := [][2]int{
		{1920, 1080}, {1080, 1920}, {640, 426}, {2048, 1024}, {1080, 1080},
		{1024, 1024}, {1025, 1023}, {4000, 3000}, {333, 777}, {1, 1}, {7, 3}, {3, 2000},
	}
	for i, s := range sizes {
		checkUpsampler(t, s[0], s[1], testLogits(uint64(i)))
	}
}

// TestUpsamplerConstant checks that constant logits stay constant: the
// composed weights sum to one everywhere.
func TestUpsamplerConstant(t *testing.T) {
	for _, s := range [][2]int{{1920, 1080}, {640, 426}, {5, 9}} {
		u := newUpsampler(s[0], s[1])
		for _, tp := range []taps{u.cols, u.rows} {
			for i, w := range tp.w {
				if sum := w[0] + w[1] + w[2]; math.Abs(float64(sum)-1) > 1e-6 {
					t.Fatalf("%v: weights of output %d sum to %v, want 1", s, i, sum)
				}
				for _, v := range w {
					if v < 0 {
						t.Fatalf("%v: output %d has negative weight %v", s, i, v)
					}
				}
			}
		}
	}
}

func FuzzUpsampler(f *testing.F) {
	f.Add(uint16(1920), uint16(1080), uint64(1))
	f.Add(uint16(1), uint16(3000), uint64(2))
	f.Add(uint16(641), uint16(427), uint64(3))
	f.Fuzz(func(t *testing.T, w, h uint16, seed uint64) {
		if w == 0 || h == 0 || w > 3000 || h > 3000 {
			return
		}
		checkUpsampler(t, int(w), int(h), testLogits(seed))
	})
}

func BenchmarkPostprocess1920x1080(b *testing.B) {
	low := discLogits(512, 288, 0.1*1024)
	m := newFakeModel(b, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.postprocess(low, 1920, 1080)
	}
}

// BenchmarkPostprocessWorst1920x1080 uses noisy logits, so that the block
// bounds never let the vertical pass skip work.
func BenchmarkPostprocessWorst1920x1080(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	low := make([]float32, lowRes*lowRes)
	for i := range low {
		low[i] = float32(rng.NormFloat64())
	}
	m := newFakeModel(b, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		m.postprocess(low, 1920, 1080)
	}
}

// BenchmarkDecodeFake1920x1080 is a whole Decode with a decoder that returns
// a fixed tensor at once: everything Decode does outside ONNX Runtime.
func BenchmarkDecodeFake1920x1080(b *testing.B) {
	m := newFakeModel(b, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0),
		fakeDecoder(onnxrt.Float32, []float32{0.9}, discLogits(512, 288, 0.1*1024)))
	e := testEmbedding(1920, 1080)
	p := Prompt{Points: []Point{{X: 960, Y: 540, Positive: true}}}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := m.Decode(context.Background(), e, p); err != nil {
			b.Fatal(err)
		}
	}
}
