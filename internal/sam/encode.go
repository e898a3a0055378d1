package sam

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// Embedding is an encoded image.
type Embedding struct {
	// Data is the encoder's image_embeddings, [1, 256, 64, 64].
	Data []float32
	// Width and Height are the displayed size of the original image, the
	// frame of prompts and masks.
	Width, Height int
}

// Bytes returns the memory the embedding holds, for cache accounting.
func (e *Embedding) Bytes() int64 {
	return int64(cap(e.Data))*4 + int64(unsafe.Sizeof(*e))
}

// MaxSide is the longest image side Encode accepts, the JPEG limit.
const MaxSide = 65535

// Encode resizes img so its long side is 1024 pixels, builds the encoder
// input for the model's layout and runs the encoder.
func (m *Model) Encode(ctx context.Context, img image.Image) (*Embedding, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("encode image: empty image %v", b)
	}
	if w > MaxSide || h > MaxSide {
		return nil, fmt.Errorf("encode image: %d×%d is larger than %d pixels a side", w, h, MaxSide)
	}
	in := m.encoderInput(img)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("encode image: %w", context.Cause(ctx))
	}
	outs, err := m.enc.Run(ctx, []onnxrt.Tensor{in})
	if err != nil {
		return nil, fmt.Errorf("run encoder: %w", err)
	}
	if m.encOut >= len(outs) {
		return nil, fmt.Errorf("run encoder: got %d outputs", len(outs))
	}
	out := outs[m.encOut]
	if out.Type != onnxrt.Float32 || len(out.Float32) != embedLen {
		return nil, fmt.Errorf("run encoder: output is %v %v, want float [1, 256, 64, 64]", out.Type, out.Shape)
	}
	return &Embedding{Data: out.Float32, Width: w, Height: h}, nil
}

// The SAM pixel mean and standard deviation per RGB channel, in 0..255 units
// (segment_anything's Sam.pixel_mean and pixel_std).
const (
	meanR, meanG, meanB = 123.675, 116.28, 103.53
	stdR, stdG, stdB    = 58.395, 57.12, 57.375
)

// encoderInput resizes img to the long side 1024 and lays it out as the
// encoder takes it.
func (m *Model) encoderInput(img image.Image) onnxrt.Tensor {
	b := img.Bounds()
	nw, nh := resizedSize(b.Dx(), b.Dy())
	rs := newResizer(img, nw, nh)
	switch {
	case m.layout == LayoutNCHW:
		const side = InputSize * InputSize
		data := make([]float32, 3*side) // zero padding right and bottom
		mean := [3]float32{meanR, meanG, meanB}
		inv := [3]float32{1 / stdR, 1 / stdG, 1 / stdB}
		rs.run(func(y int, r, g, bl []float32) {
			for c, src := range [3][]float32{r, g, bl} {
				dst := data[c*side+y*InputSize:][:len(src)]
				mean, is := mean[c], inv[c]
				for x, v := range src {
					dst[x] = (v - mean) * is
				}
			}
		})
		return onnxrt.NewFloat32(data, 1, 3, InputSize, InputSize)
	case m.encType == onnxrt.Uint8:
		data := make([]uint8, nh*nw*3)
		rs.run(func(y int, r, g, bl []float32) {
			dst := data[y*nw*3:][:nw*3]
			for x := range r {
				dst[3*x] = toByte(r[x])
				dst[3*x+1] = toByte(g[x])
				dst[3*x+2] = toByte(bl[x])
			}
		})
		return onnxrt.NewUint8(data, int64(nh), int64(nw), 3)
	default:
		data := make([]float32, nh*nw*3)
		rs.run(func(y int, r, g, bl []float32) {
			dst := data[y*nw*3:][:nw*3]
			for x := range r {
				dst[3*x] = r[x]
				dst[3*x+1] = g[x]
				dst[3*x+2] = bl[x]
			}
		})
		return onnxrt.NewFloat32(data, int64(nh), int64(nw), 3)
	}
}

func toByte(v float32) uint8 {
	return uint8(min(max(v+0.5, 0), 255))
}

// Resizing.
//
// Downscaling uses an area (box) filter, upscaling bilinear interpolation,
// each as a pair of separable fixed-point filters over 8-bit planes: a
// vertical pass over whole source rows into an accumulator, then a
// horizontal pass per channel. JPEG images (*image.YCbCr) are resized in
// their own planes, chroma at its subsampled resolution, and converted to RGB
// only at the output size; since the conversion is affine this equals
// converting first, up to the final clamp.

// fixBits is the precision of one filter's fixed-point weights.
const fixBits = 12

// axisFilter maps an axis of n source samples to dst output samples: output
// i reads samples start[i] to start[i]+taps-1 with weights w[i*taps:], which
// sum to 1<<fixBits; only the first count[i] weights can be non-zero.
type axisFilter struct {
	taps  int
	start []int32
	count []int32
	w     []int32
}

// newAxisFilter builds the filter for dst outputs over n source samples,
// where one output sample spans scale source samples and output 0 starts at
// source coordinate off (sample k covers [k, k+1)). With box set it averages
// the area each output covers; otherwise it interpolates bilinearly between
// sample centres.
func newAxisFilter(dst, n int, scale, off float64, box bool) axisFilter {
	taps := 2
	if box {
		taps = int(math.Ceil(scale)) + 1
	}
	taps = min(taps, n)
	f := axisFilter{
		taps:  taps,
		start: make([]int32, dst),
		count: make([]int32, dst),
		w:     make([]int32, dst*taps),
	}
	wf := make([]float64, taps)
	for i := range dst {
		clear(wf)
		var k0 int
		if box {
			a := min(max(off+float64(i)*scale, 0), float64(n))
			b := min(max(a+scale, 0), float64(n))
			k0 = min(int(a), n-1)
			for k := k0; k < n && k-k0 < taps && float64(k) < b; k++ {
				wf[k-k0] = min(b, float64(k+1)) - max(a, float64(k))
			}
		} else {
			c := min(max(off+(float64(i)+0.5)*scale-0.5, 0), float64(n-1))
			k0 = int(c)
			l := c - float64(k0)
			wf[0] = 1 - l
			if k0+1 < n {
				wf[1] = l
			}
		}
		// Drop empty taps at both ends.
		lo, hi := 0, taps
		for lo < hi-1 && wf[lo] <= 0 {
			lo++
		}
		for hi > lo+1 && wf[hi-1] <= 0 {
			hi--
		}
		// Keep the whole window of taps inside the axis: near its end the
		// window starts earlier, with leading zero weights.
		start := k0 + lo
		shift := max(0, start+taps-n)
		start -= shift
		ws := f.w[i*taps : (i+1)*taps]
		var total float64
		for _, v := range wf[lo:hi] {
			total += v
		}
		var sum int32
		big := shift
		for k, v := range wf[lo:hi] {
			j := shift + k
			if total > 0 {
				ws[j] = int32(math.Round(v / total * (1 << fixBits)))
			}
			sum += ws[j]
			if ws[j] > ws[big] {
				big = j
			}
		}
		ws[big] += 1<<fixBits - sum
		f.start[i] = int32(start)
		f.count[i] = int32(shift + hi - lo)
	}
	return f
}

// plane is one 8-bit image plane with bpp interleaved channels per sample.
type plane struct {
	pix    []byte // sample (0, 0) first
	stride int
	width  int // samples per row
	bpp    int
	fx, fy axisFilter
}

// vertical sums the source rows of output row y into acc (width·bpp
// values), three rows per pass over acc.
func (p *plane) vertical(y int, acc []int32) {
	start, count := int(p.fy.start[y]), int(p.fy.count[y])
	ws := p.fy.w[y*p.fy.taps:][:count]
	n := len(acc)
	row := func(k int) []byte { return p.pix[(start+k)*p.stride:][:n] }
	for k := 0; k < count; k += 3 {
		switch count - k {
		case 1:
			addRows1(acc, row(k), ws[k], k == 0)
		case 2:
			addRows2(acc, row(k), row(k+1), ws[k], ws[k+1], k == 0)
		default:
			addRows3(acc, row(k), row(k+1), row(k+2), ws[k], ws[k+1], ws[k+2], k == 0)
		}
	}
}

// addRows1 adds (or, with set, stores) w·a into acc.
func addRows1(acc []int32, a []byte, w int32, set bool) {
	a = a[:len(acc)]
	if set {
		for i, v := range a {
			acc[i] = w * int32(v)
		}
		return
	}
	for i, v := range a {
		acc[i] += w * int32(v)
	}
}

// addRows2 adds (or, with set, stores) wa·a + wb·b into acc.
func addRows2(acc []int32, a, b []byte, wa, wb int32, set bool) {
	a, b = a[:len(acc)], b[:len(acc)]
	if set {
		for i := range acc {
			acc[i] = wa*int32(a[i]) + wb*int32(b[i])
		}
		return
	}
	for i := range acc {
		acc[i] += wa*int32(a[i]) + wb*int32(b[i])
	}
}

// addRows3 adds (or, with set, stores) wa·a + wb·b + wc·c into acc.
func addRows3(acc []int32, a, b, c []byte, wa, wb, wc int32, set bool) {
	a, b, c = a[:len(acc)], b[:len(acc)], c[:len(acc)]
	if set {
		for i := range acc {
			acc[i] = wa*int32(a[i]) + wb*int32(b[i]) + wc*int32(c[i])
		}
		return
	}
	for i := range acc {
		acc[i] += wa*int32(a[i]) + wb*int32(b[i]) + wc*int32(c[i])
	}
}

// The horizontal pass always reads all taps of an output, so that its work
// is the same for every output, and is unrolled for the common tap counts.

// inv2Fix scales a sum of two passes of fixed-point weights back to 0..255.
const inv2Fix = 1.0 / (1 << (2 * fixBits))

// horizontal1 filters a one-channel acc into out (0..255).
func (p *plane) horizontal1(acc []int32, out []float32) {
	starts, w := p.fx.start[:len(out)], p.fx.w
	switch p.fx.taps {
	case 2:
		horizontal1Taps2(acc, out, starts, w)
	case 3:
		horizontal1Taps3(acc, out, starts, w)
	case 4:
		horizontal1Taps4(acc, out, starts, w)
	case 5:
		horizontal1Taps5(acc, out, starts, w)
	default:
		taps := p.fx.taps
		for x, s := range starts {
			ws, a := w[taps*x:taps*(x+1)], acc[int(s):int(s)+taps]
			var sum int
			for k, wk := range ws {
				sum += int(wk) * int(a[k])
			}
			out[x] = float32(sum) * inv2Fix
		}
	}
}

// The unrolled cases are separate functions, kept out of line, so that each
// loop gets the registers to itself; inlined into horizontal1 they spill.

//go:noinline
func horizontal1Taps2(acc []int32, out []float32, starts, w []int32) {
	out = out[:len(starts)]
	for x, s := range starts {
		ws, a := (*[2]int32)(w[2*x:]), (*[2]int32)(acc[s:])
		out[x] = float32(int(ws[0])*int(a[0])+int(ws[1])*int(a[1])) * inv2Fix
	}
}

//go:noinline
func horizontal1Taps3(acc []int32, out []float32, starts, w []int32) {
	out = out[:len(starts)]
	for x, s := range starts {
		ws, a := (*[3]int32)(w[3*x:]), (*[3]int32)(acc[s:])
		out[x] = float32(int(ws[0])*int(a[0])+int(ws[1])*int(a[1])+int(ws[2])*int(a[2])) * inv2Fix
	}
}

//go:noinline
func horizontal1Taps4(acc []int32, out []float32, starts, w []int32) {
	out = out[:len(starts)]
	for x, s := range starts {
		ws, a := (*[4]int32)(w[4*x:]), (*[4]int32)(acc[s:])
		out[x] = float32(int(ws[0])*int(a[0])+int(ws[1])*int(a[1])+int(ws[2])*int(a[2])+int(ws[3])*int(a[3])) * inv2Fix
	}
}

//go:noinline
func horizontal1Taps5(acc []int32, out []float32, starts, w []int32) {
	out = out[:len(starts)]
	for x, s := range starts {
		ws, a := (*[5]int32)(w[5*x:]), (*[5]int32)(acc[s:])
		out[x] = float32(int(ws[0])*int(a[0])+int(ws[1])*int(a[1])+int(ws[2])*int(a[2])+
			int(ws[3])*int(a[3])+int(ws[4])*int(a[4])) * inv2Fix
	}
}

// horizontal1Pair filters two one-channel accs that share p's filter, as
// Cb and Cr do, into outA and outB (0..255).
func (p *plane) horizontal1Pair(accA, accB []int32, outA, outB []float32) {
	if p.fx.taps != 3 {
		p.horizontal1(accA, outA)
		p.horizontal1(accB, outB)
		return
	}
	starts, w := p.fx.start[:len(outA)], p.fx.w
	outB = outB[:len(outA)]
	for x, s := range starts {
		ws, a, b := (*[3]int32)(w[3*x:]), (*[3]int32)(accA[s:]), (*[3]int32)(accB[s:])
		w0, w1, w2 := int(ws[0]), int(ws[1]), int(ws[2])
		outA[x] = float32(w0*int(a[0])+w1*int(a[1])+w2*int(a[2])) * inv2Fix
		outB[x] = float32(w0*int(b[0])+w1*int(b[1])+w2*int(b[2])) * inv2Fix
	}
}

// horizontal3 filters channels 0, 1 and 2 of a four-channel acc into r, g
// and b (0..255).
func (p *plane) horizontal3(acc []int32, r, g, b []float32) {
	taps, starts, w := p.fx.taps, p.fx.start[:len(r)], p.fx.w
	g, b = g[:len(r)], b[:len(r)]
	for x, s := range starts {
		ws, a := w[taps*x:taps*(x+1)], acc[4*int(s):4*(int(s)+taps)]
		var sr, sg, sb int
		for k, wk := range ws {
			px := (*[3]int32)(a[4*k:])
			sr += int(wk) * int(px[0])
			sg += int(wk) * int(px[1])
			sb += int(wk) * int(px[2])
		}
		r[x], g[x], b[x] = float32(sr)*inv2Fix, float32(sg)*inv2Fix, float32(sb)*inv2Fix
	}
}

// sourceKind says how a resizer turns its planes into RGB.
type sourceKind int

const (
	kindRGB   sourceKind = iota // one plane, channels 0, 1, 2 of 4
	kindGray                    // one plane, one channel
	kindYCbCr                   // three planes Y, Cb, Cr
)

// resizer produces the rows of an image resized to dstW×dstH.
type resizer struct {
	kind       sourceKind
	planes     []plane
	dstW, dstH int
}

// newResizer prepares the filters that resize img to dstW×dstH.
func newResizer(img image.Image, dstW, dstH int) *resizer {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	sx, sy := float64(w)/float64(dstW), float64(h)/float64(dstH)
	full := func(pix []byte, stride, bpp int) plane {
		return plane{
			pix: pix, stride: stride, width: w, bpp: bpp,
			fx: newAxisFilter(dstW, w, sx, 0, sx > 1),
			fy: newAxisFilter(dstH, h, sy, 0, sy > 1),
		}
	}
	rs := &resizer{dstW: dstW, dstH: dstH}
	switch m := img.(type) {
	case *image.YCbCr:
		return newYCbCrResizer(m, dstW, dstH)
	case *image.NYCbCrA:
		return newYCbCrResizer(&m.YCbCr, dstW, dstH)
	case *image.Gray:
		rs.kind = kindGray
		rs.planes = []plane{full(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1)}
	case *image.RGBA:
		rs.kind = kindRGB
		rs.planes = []plane{full(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4)}
	case *image.NRGBA:
		// Colour without alpha, as decoders that drop the alpha channel see it.
		rs.kind = kindRGB
		rs.planes = []plane{full(m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4)}
	default:
		n := toNRGBA(img)
		rs.kind = kindRGB
		rs.planes = []plane{full(n.Pix, n.Stride, 4)}
	}
	return rs
}

// toNRGBA converts any image to an *image.NRGBA with its origin at (0, 0).
func toNRGBA(img image.Image) *image.NRGBA {
	b := img.Bounds()
	n := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	if p, ok := img.(*image.Paletted); ok {
		var lut [256][4]byte
		for i, c := range p.Palette {
			r, g, bl, a := c.RGBA()
			if a != 0 { // un-premultiply
				r, g, bl = r*0xffff/a, g*0xffff/a, bl*0xffff/a
			}
			lut[i] = [4]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8), byte(a >> 8)}
		}
		for y := range b.Dy() {
			src := p.Pix[p.PixOffset(b.Min.X, b.Min.Y+y):][:b.Dx()]
			dst := n.Pix[y*n.Stride:][:4*b.Dx()]
			for x, i := range src {
				copy(dst[4*x:4*x+4], lut[i][:])
			}
		}
		return n
	}
	draw.Draw(n, n.Bounds(), img, b.Min, draw.Src)
	return n
}

// newYCbCrResizer resizes the luma plane and both chroma planes, each at its
// own resolution, onto the same dstW×dstH grid.
func newYCbCrResizer(m *image.YCbCr, dstW, dstH int) *resizer {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	sx, sy := float64(w)/float64(dstW), float64(h)/float64(dstH)
	fx, fy := 1, 1 // chroma subsampling factors
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		fx = 2
	case image.YCbCrSubsampleRatio420:
		fx, fy = 2, 2
	case image.YCbCrSubsampleRatio440:
		fy = 2
	case image.YCbCrSubsampleRatio411:
		fx = 4
	case image.YCbCrSubsampleRatio410:
		fx, fy = 4, 2
	}
	// Chroma sample k covers luma [f·k, f·k+f) in absolute coordinates; the
	// plane's first sample is the one holding b.Min.
	cw := (b.Max.X+fx-1)/fx - b.Min.X/fx
	ch := (b.Max.Y+fy-1)/fy - b.Min.Y/fy
	offX := float64(b.Min.X-b.Min.X/fx*fx) / float64(fx)
	offY := float64(b.Min.Y-b.Min.Y/fy*fy) / float64(fy)
	// Chroma takes the same kind of filter as luma: when downscaling, each
	// output averages the chroma of the area it covers, even where that area
	// is smaller than a chroma sample.
	cfx := newAxisFilter(dstW, cw, sx/float64(fx), offX, sx > 1)
	cfy := newAxisFilter(dstH, ch, sy/float64(fy), offY, sy > 1)
	co := m.COffset(b.Min.X, b.Min.Y)
	return &resizer{
		kind: kindYCbCr,
		dstW: dstW, dstH: dstH,
		planes: []plane{
			{pix: m.Y[m.YOffset(b.Min.X, b.Min.Y):], stride: m.YStride, width: w, bpp: 1,
				fx: newAxisFilter(dstW, w, sx, 0, sx > 1), fy: newAxisFilter(dstH, h, sy, 0, sy > 1)},
			{pix: m.Cb[co:], stride: m.CStride, width: cw, bpp: 1, fx: cfx, fy: cfy},
			{pix: m.Cr[co:], stride: m.CStride, width: cw, bpp: 1, fx: cfx, fy: cfy},
		},
	}
}

// rowsPerWorker is the least number of output rows worth a goroutine.
const rowsPerWorker = 128

// maxWorkers bounds the goroutines one resize uses.
const maxWorkers = 4

// run calls emit for every output row, with the row's R, G and B values in
// 0..255. Bands of rows run on parallel goroutines, so emit must only write
// data that belongs to row y.
func (rs *resizer) run(emit func(y int, r, g, b []float32)) {
	workers := min(runtime.GOMAXPROCS(0), maxWorkers, max(1, rs.dstH/rowsPerWorker))
	band := (rs.dstH + workers - 1) / workers
	var wg sync.WaitGroup
	for y0 := 0; y0 < rs.dstH; y0 += band {
		y1 := min(y0+band, rs.dstH)
		wg.Go(func() { rs.rows(y0, y1, emit) })
	}
	wg.Wait()
}

// rows produces output rows y0..y1-1.
func (rs *resizer) rows(y0, y1 int, emit func(y int, r, g, b []float32)) {
	w := rs.dstW
	buf := make([]float32, 3*w)
	r, g, bl := buf[:w], buf[w:2*w], buf[2*w:]
	accs := make([][]int32, len(rs.planes))
	for i, p := range rs.planes {
		accs[i] = make([]int32, p.width*p.bpp)
	}
	for y := y0; y < y1; y++ {
		for i := range rs.planes {
			rs.planes[i].vertical(y, accs[i])
		}
		switch rs.kind {
		case kindRGB:
			rs.planes[0].horizontal3(accs[0], r, g, bl)
		case kindGray:
			rs.planes[0].horizontal1(accs[0], r)
			copy(g, r)
			copy(bl, r)
		case kindYCbCr:
			// r, g, bl hold Y, Cb, Cr until converted in place.
			rs.planes[0].horizontal1(accs[0], r)
			rs.planes[1].horizontal1Pair(accs[1], accs[2], g, bl)
			ycbcrToRGB(r, g, bl)
		}
		emit(y, r, g, bl)
	}
}

// ycbcrToRGB converts JFIF Y'CbCr (full range, as JPEG stores it) to RGB
// in place, clamped to 0..255.
func ycbcrToRGB(y, cb, cr []float32) {
	cb, cr = cb[:len(y)], cr[:len(y)]
	for i := range y {
		yy, u, v := y[i], cb[i]-128, cr[i]-128
		y[i] = min(max(yy+1.402*v, 0), 255)
		cb[i] = min(max(yy-0.344136*u-0.714136*v, 0), 255)
		cr[i] = min(max(yy+1.772*u, 0), 255)
	}
}
