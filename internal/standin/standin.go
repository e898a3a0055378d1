// Package standin builds tiny ONNX models that carry the exact input and
// output names, types and shapes of Segment Anything's encoders and decoder,
// so that the pipeline can be tested end to end through ONNX Runtime without
// the real weights.
//
// The models compute something simple and checkable instead of a
// segmentation:
//
//   - The encoders pool the (normalized, padded) image to 64×64 and apply a
//     fixed 1×1 convolution to 256 channels, so their output depends on the
//     image.
//   - The decoders paint a disc around the prompt's centre: the first point
//     labelled 1; else the midpoint of the points labelled 2 and 3 (a box);
//     else point 0. In original pixels, pixel (y, x) gets the logit
//     (r²−d²)/r², where d is the distance from (x, y) to the centre scaled by
//     max(H, W)/1024 and r = f·0.1·max(H, W) for the mask's radius factor f.
//     low_res_masks holds the same disc on the 256×256 grid of the padded
//     1024 frame (cell (i, j) stands for (4j+1.5, 4i+1.5), radius f·102.4)
//     plus has_mask_input·mask_input. iou_predictions is
//     0.5·sigmoid(mean(image_embeddings)) plus a per-mask offset.
//
// The models are written with a small protobuf encoder in this package (no
// Python, no generated code); the committed copies under models/ are
// regenerated with `go run ./cmd/gen-standins` and checked byte for byte by
// the tests.
package standin

import (
	"embed"
	"fmt"
)

//go:generate go run ../../cmd/gen-standins -dir models

// The file names of the committed models.
const (
	EncoderHWCFile    = "encoder_hwc.onnx"
	EncoderNCHWFile   = "encoder_nchw.onnx"
	DecoderSingleFile = "decoder_single.onnx"
	DecoderMultiFile  = "decoder_multi.onnx"
)

// Geometry shared with the real models.
const (
	// Side is the long side, in pixels, of the frame the encoder sees.
	Side = 1024
	// EmbedDim is the number of channels of image_embeddings.
	EmbedDim = 256
	// EmbedSide is the height and width of image_embeddings.
	EmbedSide = 64
	// LowResSide is the height and width of low_res_masks and mask_input.
	LowResSide = 256
)

// RadiusFraction is the disc radius of a mask with radius factor 1, as a
// fraction of the long side of the image.
const RadiusFraction = 0.1

// MultiRadii returns the radius factors of the four masks of DecoderMulti.
func MultiRadii() [4]float32 { return [4]float32{1.0, 0.5, 1.0, 1.5} }

// MultiIoUOffsets returns the IoU offsets of the four masks of DecoderMulti.
// The best is index 2, the disc of radius factor 1.
func MultiIoUOffsets() [4]float32 { return [4]float32{0.1, 0.2, 0.4, 0.3} }

// SingleIoUOffset is the IoU offset of DecoderSingle's only mask, whose
// radius factor is 1.
const SingleIoUOffset = 0.4

// pixelMean and pixelStd are the normalization the HWC encoder applies, in
// 0..255 units.
func pixelMean() [3]float32 { return [3]float32{123.675, 116.28, 103.53} }
func pixelStd() [3]float32  { return [3]float32{58.395, 57.12, 57.375} }

//go:embed models/*.onnx
var committed embed.FS

// EncoderHWC returns the stand-in for a samexporter --use-preprocess encoder:
// input_image float32 [image_height, image_width, 3] holds raw RGB 0..255 of
// an image the caller resized so that its long side is 1024; the graph
// normalizes, transposes to CHW and zero-pads bottom and right to 1024×1024,
// then pools and projects to image_embeddings float32 [1, 256, 64, 64].
func EncoderHWC() []byte {
	g := newGraph("sam_encoder_hwc_standin")
	g.input("input_image", dtFloat, symbolic("image_height"), symbolic("image_width"), fixed(3))

	pm, ps := pixelMean(), pixelStd()
	mean := g.floats("pixel_mean", []int64{3}, pm[:]...)
	std := g.floats("pixel_std", []int64{3}, ps[:]...)
	x := g.op("Sub", in("input_image", mean))
	x = g.op("Div", in(x, std))
	x = g.op("Transpose", in(x), attrIntList("perm", 2, 0, 1)) // [3,H,W]

	// Pads [0,0,0, 0,1024-H,1024-W]: begins of C,H,W, then ends of C,H,W.
	shape := g.op("Shape", in("input_image"))
	hw := g.op("Slice", in(shape,
		g.int64s("hw_starts", []int64{1}, 0),
		g.int64s("hw_ends", []int64{1}, 2)))
	missing := g.op("Sub", in(g.int64s("side_hw", []int64{2}, Side, Side), hw))
	pads := g.op("Concat", in(g.int64s("pads_head", []int64{4}, 0, 0, 0, 0), missing), attrInt("axis", 0))
	x = g.op("Pad", in(x, pads))                                        // mode "constant", value 0
	x = g.op("Unsqueeze", in(x, g.int64s("batch_axis", []int64{1}, 0))) // [1,3,1024,1024]

	project(g, x)
	return g.model()
}

// EncoderNCHW returns the stand-in for an encoder whose input_image float32
// [1, 3, 1024, 1024] the caller has already normalized and padded; it pools
// and projects to image_embeddings float32 [1, 256, 64, 64].
func EncoderNCHW() []byte {
	g := newGraph("sam_encoder_nchw_standin")
	g.input("input_image", dtFloat, fixed(1), fixed(3), fixed(Side), fixed(Side))
	project(g, "input_image")
	return g.model()
}

// project pools x [1,3,1024,1024] by 16 and projects it to the graph output
// image_embeddings [1,256,64,64] with a fixed 1×1 convolution.
func project(g *graph, x string) {
	const k = Side / EmbedSide
	x = g.op("AveragePool", in(x), attrIntList("kernel_shape", k, k), attrIntList("strides", k, k))
	w, b := EmbedWeights()
	wn := g.floats("embed_weight", []int64{EmbedDim, 3, 1, 1}, w...)
	bn := g.floats("embed_bias", []int64{EmbedDim}, b...)
	g.opTo("image_embeddings", "Conv", in(x, wn, bn))
	g.output("image_embeddings", dtFloat, fixed(1), fixed(EmbedDim), fixed(EmbedSide), fixed(EmbedSide))
}

// EmbedWeights returns the encoders' 1×1 convolution: weight [256][3]
// (row-major, output channel first) and bias [256]. The values are small
// dyadic fractions, exact in float32 on every platform, and their mean is
// positive so that brighter images give a larger mean embedding.
func EmbedWeights() (weight, bias []float32) {
	weight = make([]float32, EmbedDim*3)
	bias = make([]float32, EmbedDim)
	for k := range EmbedDim {
		for c := range 3 {
			weight[k*3+c] = float32((k*37+c*11)%23-9) / 64
		}
		bias[k] = float32(k%7-3) / 128
	}
	return weight, bias
}

// DecoderSingle returns the stand-in for a decoder exported with
// --return-single-mask (M = 1).
func DecoderSingle() []byte {
	return decoder("sam_decoder_single_standin", []float32{1}, []float32{SingleIoUOffset})
}

// DecoderMulti returns the stand-in for a decoder that returns all four
// masks (M = 4).
func DecoderMulti() []byte {
	radii, offsets := MultiRadii(), MultiIoUOffsets()
	return decoder("sam_decoder_multi_standin", radii[:], offsets[:])
}

func decoder(name string, radii, offsets []float32) []byte {
	m := int64(len(radii))
	g := newGraph(name)
	g.input("image_embeddings", dtFloat, fixed(1), fixed(EmbedDim), fixed(EmbedSide), fixed(EmbedSide))
	g.input("point_coords", dtFloat, fixed(1), symbolic("num_points"), fixed(2))
	g.input("point_labels", dtFloat, fixed(1), symbolic("num_points"))
	g.input("mask_input", dtFloat, fixed(1), fixed(1), fixed(LowResSide), fixed(LowResSide))
	g.input("has_mask_input", dtFloat, fixed(1))
	g.input("orig_im_size", dtFloat, fixed(2))

	// Constants.
	idx0 := g.int64s("index_0", nil, 0)
	idx1 := g.int64s("index_1", nil, 1)
	half := g.floats("half", nil, 0.5)
	zero := g.floats("zero", nil, 0)
	one := g.floats("one", nil, 1)
	side := g.floats("side", nil, Side)
	frac := g.floats("radius_fraction", nil, RadiusFraction)
	factors := g.floats("radius_factors", []int64{1, m, 1, 1}, radii...)
	iouOffsets := g.floats("iou_offsets", []int64{1, m}, offsets...)
	unsqueeze1 := g.int64s("axis_1", []int64{1}, 1)

	// Centre of the prompt in the 1024 frame, [1,2].
	pts := g.op("Reshape", in("point_coords", g.int64s("points_shape", []int64{2}, -1, 2))) // [N,2]
	pick := func(label float32) (point, present string) {
		l := g.floats(fmt.Sprintf("label_%g", label), nil, label)
		is := g.op("Cast", in(g.op("Equal", in("point_labels", l))), attrInt("to", dtFloat)) // [1,N]
		first := g.op("ArgMax", in(is), attrInt("axis", 1), attrInt("keepdims", 0))          // [1]
		point = g.op("Gather", in(pts, first), attrInt("axis", 0))                           // [1,2]
		anyOf := g.op("ReduceMax", in(is), attrIntList("axes", 1), attrInt("keepdims", 0))   // [1]
		present = g.op("Cast", in(anyOf), attrInt("to", dtBool))
		return point, present
	}
	fg, hasFG := pick(1)
	topLeft, hasTL := pick(2)
	bottomRight, hasBR := pick(3)
	boxCentre := g.op("Mul", in(g.op("Add", in(topLeft, bottomRight)), half))
	hasBox := g.op("And", in(hasTL, hasBR))
	point0 := g.op("Gather", in(pts, g.int64s("first_point", []int64{1}, 0)), attrInt("axis", 0))
	centre := g.op("Where", in(hasFG, fg, g.op("Where", in(hasBox, boxCentre, point0))))

	// disc writes to out (r²−d²)/r² over the grid rows × cols for the centre
	// (cx, cy), each [1], and radii r [1,M,1,1]: [1,M,len(rows),len(cols)].
	disc := func(out, rows, cols, cx, cy, r string) {
		dy := g.op("Sub", in(rows, cy))
		dy2 := g.op("Unsqueeze", in(g.op("Mul", in(dy, dy)), unsqueeze1)) // [rows,1]
		dx := g.op("Sub", in(cols, cx))
		dx2 := g.op("Mul", in(dx, dx))  // [cols]
		d2 := g.op("Add", in(dy2, dx2)) // [rows,cols]
		r2 := g.op("Mul", in(r, r))     // [1,M,1,1]
		g.opTo(out, "Div", in(g.op("Sub", in(r2, d2)), r2))
	}

	// masks: the disc in original pixels.
	h := g.op("Gather", in("orig_im_size", idx0), attrInt("axis", 0)) // scalar
	w := g.op("Gather", in("orig_im_size", idx1), attrInt("axis", 0)) // scalar
	long := g.op("Max", in(h, w))
	scaled := g.op("Mul", in(centre, g.op("Div", in(long, side)))) // [1,2]
	cx := g.op("Gather", in(scaled, idx0), attrInt("axis", 1))     // [1]
	cy := g.op("Gather", in(scaled, idx1), attrInt("axis", 1))
	rows := g.op("Range", in(zero, h, one))
	cols := g.op("Range", in(zero, w, one))
	r := g.op("Mul", in(factors, g.op("Mul", in(long, frac))))
	disc("masks", rows, cols, cx, cy, r)

	// low_res_masks: the disc on the 256 grid of the 1024 frame, plus the
	// mask prompt.
	grid := g.op("Range", in(g.floats("cell_first", nil, 1.5), side, g.floats("cell_step", nil, Side/LowResSide)))
	lcx := g.op("Gather", in(centre, idx0), attrInt("axis", 1))
	lcy := g.op("Gather", in(centre, idx1), attrInt("axis", 1))
	lr := g.op("Mul", in(factors, g.op("Mul", in(side, frac))))
	low := "low_res_disc"
	disc(low, grid, grid, lcx, lcy, lr)
	prompt := g.op("Mul", in("has_mask_input", "mask_input"))
	g.opTo("low_res_masks", "Add", in(low, prompt))

	// iou_predictions: 0.5·sigmoid(mean(image_embeddings)) + offset.
	mean := g.op("ReduceMean", in("image_embeddings"), attrInt("keepdims", 0))
	score := g.op("Mul", in(g.op("Sigmoid", in(mean)), half))
	g.opTo("iou_predictions", "Add", in(score, iouOffsets))

	g.output("masks", dtFloat, fixed(1), fixed(m), symbolic("orig_height"), symbolic("orig_width"))
	g.output("iou_predictions", dtFloat, fixed(1), fixed(m))
	g.output("low_res_masks", dtFloat, fixed(1), fixed(m), fixed(LowResSide), fixed(LowResSide))
	return g.model()
}

// Build generates all four models, keyed by file name.
func Build() map[string][]byte {
	return map[string][]byte{
		EncoderHWCFile:    EncoderHWC(),
		EncoderNCHWFile:   EncoderNCHW(),
		DecoderSingleFile: DecoderSingle(),
		DecoderMultiFile:  DecoderMulti(),
	}
}

// Files lists the committed models by file name: encoder_hwc.onnx,
// encoder_nchw.onnx, decoder_single.onnx, decoder_multi.onnx. The slices are
// fresh copies.
func Files() map[string][]byte {
	out := make(map[string][]byte)
	for _, name := range []string{EncoderHWCFile, EncoderNCHWFile, DecoderSingleFile, DecoderMultiFile} {
		out[name] = mustRead(name)
	}
	return out
}

// Demo returns the bundled stand-in encoder (HWC) and single-mask decoder.
func Demo() (encoder, decoder []byte) {
	return mustRead(EncoderHWCFile), mustRead(DecoderSingleFile)
}

// mustRead returns a committed model. The files are embedded at build time,
// so a missing one is a packaging bug that the tests catch.
func mustRead(name string) []byte {
	b, err := committed.ReadFile("models/" + name)
	if err != nil {
		panic(fmt.Sprintf("standin: read embedded model: %v", err))
	}
	return b
}
