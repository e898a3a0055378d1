package sam

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// Mask is a binary mask at the image's displayed size: one byte per pixel,
// 0 or 255, row-major.
type Mask struct {
	Width, Height int
	Pix           []byte
	// Score is the decoder's predicted IoU for the chosen mask.
	Score float32
	// RunTime is the time spent inside ONNX Runtime; the rest of Decode is
	// prompt assembly and post-processing in Go.
	RunTime time.Duration
}

// Decode runs the decoder on an embedding for a prompt and builds the mask
// from low_res_masks. When the decoder returns several masks, the one with
// the highest predicted IoU is taken. It returns ErrEmptyPrompt for a prompt
// with no points and no box.
func (m *Model) Decode(ctx context.Context, e *Embedding, p Prompt) (*Mask, error) {
	if e == nil || len(e.Data) != embedLen || e.Width <= 0 || e.Height <= 0 {
		return nil, errors.New("decode prompt: invalid embedding")
	}
	coords, labels, err := promptTensors(p, e.Width, e.Height)
	if err != nil {
		return nil, err
	}
	origSize, err := origSizeTensor(m.origType, e.Width, e.Height)
	if err != nil {
		return nil, fmt.Errorf("decode prompt: %w", err)
	}
	n := int64(len(labels))
	byName := map[string]onnxrt.Tensor{
		inEmbeddings: onnxrt.NewFloat32(e.Data, 1, embedDim, embedSide, embedSide),
		inCoords:     onnxrt.NewFloat32(coords, 1, n, 2),
		inLabels:     onnxrt.NewFloat32(labels, 1, n),
		inMask:       onnxrt.NewFloat32(m.zeroMask, 1, 1, lowRes, lowRes),
		inHasMask:    onnxrt.NewFloat32(m.zeroHasMask, 1),
		inOrigSize:   origSize,
	}
	inputs := make([]onnxrt.Tensor, len(m.decIn))
	for i, name := range m.decIn {
		inputs[i] = byName[name]
	}
	start := time.Now()
	outs, err := m.dec.Run(ctx, inputs)
	runTime := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("run decoder: %w", err)
	}
	if len(outs) != len(m.dec.OutputNames()) {
		return nil, fmt.Errorf("run decoder: got %d outputs, want %d", len(outs), len(m.dec.OutputNames()))
	}
	score, low, err := pickMask(outs[m.iouOut], outs[m.lowResOut])
	if err != nil {
		return nil, fmt.Errorf("read decoder output: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("decode prompt: %w", context.Cause(ctx))
	}
	return &Mask{Width: e.Width, Height: e.Height, Pix: m.postprocess(low, e.Width, e.Height), Score: score, RunTime: runTime}, nil
}

// postprocess builds the w×h mask from one mask's low-res logits. The
// upsampler of the last image size is kept, since clicks on one image come
// in a row, and so is scratch memory.
func (m *Model) postprocess(low []float32, w, h int) []byte {
	u := m.ups.Load()
	if u == nil || u.w != w || u.h != h {
		u = newUpsampler(w, h)
		m.ups.Store(u)
	}
	var scratch []float32
	if p, ok := m.scratch.Get().(*[]float32); ok {
		scratch = *p
	}
	if len(scratch) < u.scratchLen() {
		scratch = make([]float32, u.scratchLen())
	}
	pix := u.mask(low, nil, scratch)
	m.scratch.Put(&scratch)
	return pix
}

// pickMask checks the decoder's outputs and returns the IoU and the 256×256
// logits of the mask with the highest predicted IoU.
func pickMask(iou, low onnxrt.Tensor) (score float32, logits []float32, err error) {
	if iou.Type != onnxrt.Float32 || low.Type != onnxrt.Float32 {
		return 0, nil, fmt.Errorf("outputs are %v and %v, want float", iou.Type, low.Type)
	}
	s := low.Shape
	if len(s) != 4 || s[0] != 1 || s[1] < 1 || s[2] != lowRes || s[3] != lowRes || len(low.Float32) != low.Len() {
		return 0, nil, fmt.Errorf("%s has shape %v, want [1, M, 256, 256]", outLowRes, s)
	}
	nm := int(s[1])
	if len(iou.Float32) != nm {
		return 0, nil, fmt.Errorf("%s has %d values for %d masks", outIoU, len(iou.Float32), nm)
	}
	best := 0
	for i, v := range iou.Float32 {
		if v > iou.Float32[best] {
			best = i
		}
	}
	const plane = lowRes * lowRes
	return iou.Float32[best], low.Float32[best*plane : (best+1)*plane], nil
}

// The mask is built as the official decoder's mask_postprocessing does it:
// bilinear upsample of the 256×256 logits to 1024×1024, crop to the resized
// image (newH×newW), bilinear resize to H×W (both with align_corners=False
// and no antialiasing, as torch.nn.functional.interpolate), threshold > 0.
//
// Both resizes are separable and linear, so each output column depends on at
// most three adjacent low-res columns through fixed weights (the two 1024
// columns a bilinear tap reads are adjacent, and adjacent 1024 columns map to
// low-res positions 0.25 apart). upsampler precomputes those composed taps for
// columns and rows; mask then runs the horizontal pass on the low-res rows,
// and the vertical pass with the threshold straight into the mask, only in
// the blocks along the mask's edge.

// taps holds, for each output index, three weights on low-res indices
// start, start+1, start+2.
type taps struct {
	start []int32
	w     [][3]float32
}

// composedTaps returns the taps of the map from a 256-sample axis to n
// output samples, through a 1024 frame cropped to its first crop samples.
func composedTaps(n, crop int) taps {
	t := taps{start: make([]int32, n), w: make([][3]float32, n)}
	for i := range n {
		j0, j1, v0, v1 := bilinearTaps(i, crop, n)
		k00, k01, u00, u01 := bilinearTaps(j0, lowRes, InputSize)
		k10, k11, u10, u11 := bilinearTaps(j1, lowRes, InputSize)
		// k00 is the least index and k11 <= k00+2. Near the end of the
		// axis the window moves left and its first weight stays 0.
		start := min(k00, lowRes-3)
		var acc [3]float64
		acc[k00-start] += v0 * u00
		acc[k01-start] += v0 * u01
		acc[k10-start] += v1 * u10
		acc[k11-start] += v1 * u11
		t.start[i] = int32(start)
		t.w[i] = [3]float32{float32(acc[0]), float32(acc[1]), float32(acc[2])}
	}
	return t
}

// bilinearTaps returns the two source indices and weights of output index i
// for an in→out resize with align_corners=False, as PyTorch's
// area_pixel_compute_source_index computes them (scale in/out, clamped at 0).
func bilinearTaps(i, in, out int) (i0, i1 int, w0, w1 float64) {
	src := (float64(i)+0.5)*float64(in)/float64(out) - 0.5
	if src < 0 {
		src = 0
	}
	i0 = int(src)
	i1 = i0
	if i0 < in-1 {
		i1 = i0 + 1
	}
	l := src - float64(i0)
	return i0, i1, 1 - l, l
}

// upsampler turns 256×256 low-res logits into a w×h mask. It is immutable
// once built, so decodes of one image can share it.
type upsampler struct {
	w, h       int
	cols, rows taps
	// r0 and nr bound the low-res rows the row taps read.
	r0, nr int
	// blocks[b] is the range of low-res columns that output columns
	// b·blockCols up to (b+1)·blockCols read.
	blocks [][2]int
}

func newUpsampler(w, h int) *upsampler {
	nw, nh := resizedSize(w, h)
	u := &upsampler{w: w, h: h, cols: composedTaps(w, nw), rows: composedTaps(h, nh)}
	u.r0 = int(u.rows.start[0])
	u.nr = int(u.rows.start[h-1]) + 3 - u.r0
	for x0 := 0; x0 < w; x0 += blockCols {
		x1 := min(x0+blockCols, w)
		u.blocks = append(u.blocks, [2]int{int(u.cols.start[x0]), int(u.cols.start[x1-1]) + 3})
	}
	return u
}

// blockCols is the width of the column blocks whose logit bounds let the
// mask skip areas that are wholly inside or outside it.
const blockCols = 32

// clearlyPositive is the least low-res logit for which a weighted mean is
// surely positive in float32, whatever the (non-negative) weights.
const clearlyPositive = 1e-30

// scratchLen returns the float32 scratch that mask needs.
func (u *upsampler) scratchLen() int {
	return u.nr * u.w
}

// mask thresholds the upsampled logits at 0 into pix (allocated when short)
// and returns it. scratch, when at least scratchLen long, saves an
// allocation; its contents do not matter.
//
// Every upsampled value is a weighted mean of at most 3×3 low-res logits,
// with non-negative weights. So for each low-res row and block of output
// columns, the extremes of the low-res logits the block reads bound its
// values: where all the rows a block of output rows reads are <= 0, the
// block is outside the mask; where all are clearly positive, it is inside.
// Only the remaining blocks, along the mask's edge, run the two passes.
func (u *upsampler) mask(low []float32, pix []byte, scratch []float32) []byte {
	w, h, r0, nr := u.w, u.h, u.r0, u.nr
	nb := len(u.blocks)
	if len(pix) < w*h {
		pix = make([]byte, w*h)
	}
	pix = pix[:w*h]
	if len(scratch) < nr*w {
		scratch = make([]float32, nr*w)
	}
	tmp := scratch[:nr*w]
	// Bounds of the low-res logits per row and block, and whether the
	// horizontal pass has filled the row's block in tmp.
	bounds := make([][2]float32, nr*nb)
	done := make([]bool, nr*nb)
	for r := range nr {
		row := low[(r0+r)*lowRes : (r0+r+1)*lowRes]
		for b, cr := range u.blocks {
			blk := row[cr[0]:cr[1]]
			lo, hi := blk[0], blk[0]
			for _, v := range blk[1:] {
				if v < lo {
					lo = v
				}
				if v > hi {
					hi = v
				}
			}
			bounds[r*nb+b] = [2]float32{lo, hi}
		}
	}
	// horizontal fills block b of low-res row r (relative to r0) in tmp.
	horizontal := func(r, b int) {
		if done[r*nb+b] {
			return
		}
		done[r*nb+b] = true
		src := low[(r0+r)*lowRes : (r0+r+1)*lowRes]
		x0, x1 := b*blockCols, min((b+1)*blockCols, w)
		dst := tmp[r*w+x0 : r*w+x1]
		starts, ws := u.cols.start[x0:x1], u.cols.w[x0:x1]
		for x := range dst {
			s := int(starts[x])
			a := src[s : s+3]
			wx := &ws[x]
			dst[x] = wx[0]*a[0] + wx[1]*a[1] + wx[2]*a[2]
		}
	}
	for y := range h {
		r := int(u.rows.start[y]) - r0
		ws := u.rows.w[y]
		out := pix[y*w : (y+1)*w]
		for b := range nb {
			x0, x1 := b*blockCols, min((b+1)*blockCols, w)
			b0, b1, b2 := bounds[r*nb+b], bounds[(r+1)*nb+b], bounds[(r+2)*nb+b]
			if b0[1] <= 0 && b1[1] <= 0 && b2[1] <= 0 {
				clear(out[x0:x1])
				continue
			}
			if b0[0] > clearlyPositive && b1[0] > clearlyPositive && b2[0] > clearlyPositive {
				fill(out[x0:x1], 255)
				continue
			}
			horizontal(r, b)
			horizontal(r+1, b)
			horizontal(r+2, b)
			thresholdRow(out[x0:x1], tmp[r*w+x0:r*w+x1], tmp[(r+1)*w+x0:(r+1)*w+x1], tmp[(r+2)*w+x0:(r+2)*w+x1], ws)
		}
	}
	return pix
}

// thresholdRow writes 255 where ws·(a, b, c) > 0 and 0 elsewhere.
func thresholdRow(out []byte, a, b, c []float32, ws [3]float32) {
	a, b, c = a[:len(out)], b[:len(out)], c[:len(out)]
	w0, w1, w2 := ws[0], ws[1], ws[2]
	for x := range out {
		out[x] = positive(w0*a[x] + w1*b[x] + w2*c[x])
	}
}

// positive returns 255 if v > 0 and 0 otherwise. It compiles to a compare
// and SETA, without a branch: along a noisy edge the sign is unpredictable.
func positive(v float32) byte {
	var b byte
	if v > 0 {
		b = 1
	}
	return -b
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
