package sam

import (
	"fmt"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// Point is a click in original image pixels, as Label Studio's int()
// truncation of its percentages gives them.
type Point struct {
	X, Y int
	// Positive marks a foreground click; false marks background.
	Positive bool
}

// Box is a rectangle in original image pixels, corners (X0, Y0) and (X1, Y1).
type Box struct {
	X0, Y0, X1, Y1 int
}

// Prompt is what the user drew: clicks, a box, or both.
type Prompt struct {
	Points []Point
	// Box is nil when no box was drawn.
	Box *Box
}

// Point labels of the official decoder.
const (
	labelPad      = -1 // padding point, added when there is no box
	labelNegative = 0
	labelPositive = 1
	labelBoxStart = 2 // box top-left corner
	labelBoxEnd   = 3 // box bottom-right corner
)

// resizedSize returns the size of a w×h image resized so its long side is
// InputSize, rounding half up as segment_anything's ResizeLongestSide does
// (int(old·scale + 0.5) with scale = 1024/max(w, h) in float64). A side that
// would round to 0, for an image more than 2048 times longer than wide, is 1.
func resizedSize(w, h int) (nw, nh int) {
	scale := float64(InputSize) / float64(max(w, h))
	return max(1, int(float64(w)*scale+0.5)), max(1, int(float64(h)*scale+0.5))
}

// coordScale returns the factors that map original pixels into the 1024
// frame, newW/W and newH/H, as ResizeLongestSide.apply_coords computes them.
func coordScale(w, h int) (sx, sy float64) {
	nw, nh := resizedSize(w, h)
	return float64(nw) / float64(w), float64(nh) / float64(h)
}

// promptTensors builds point_coords [1, N, 2] and point_labels [1, N] for a
// w×h image: the points, then the box as two corners labelled 2 and 3, or,
// without a box, the padding point (0, 0) labelled -1.
func promptTensors(p Prompt, w, h int) (coords, labels []float32, err error) {
	if len(p.Points) == 0 && p.Box == nil {
		return nil, nil, ErrEmptyPrompt
	}
	sx, sy := coordScale(w, h)
	n := len(p.Points) + 1
	if p.Box != nil {
		n++
	}
	coords = make([]float32, 0, 2*n)
	labels = make([]float32, 0, n)
	add := func(x, y float64, label float32) {
		coords = append(coords, float32(x*sx), float32(y*sy))
		labels = append(labels, label)
	}
	for _, pt := range p.Points {
		label := float32(labelNegative)
		if pt.Positive {
			label = labelPositive
		}
		add(float64(pt.X), float64(pt.Y), label)
	}
	if b := p.Box; b != nil {
		// The decoder embeds the corners as top-left and bottom-right, so
		// order them whichever way the box was given.
		add(float64(min(b.X0, b.X1)), float64(min(b.Y0, b.Y1)), labelBoxStart)
		add(float64(max(b.X0, b.X1)), float64(max(b.Y0, b.Y1)), labelBoxEnd)
	} else {
		coords = append(coords, 0, 0)
		labels = append(labels, labelPad)
	}
	return coords, labels, nil
}

// origSizeTensor returns orig_im_size = (h, w) in the decoder's element type.
func origSizeTensor(t onnxrt.DataType, w, h int) (onnxrt.Tensor, error) {
	switch t {
	case onnxrt.Float32:
		return onnxrt.NewFloat32([]float32{float32(h), float32(w)}, 2), nil
	case onnxrt.Int32:
		return onnxrt.NewInt32([]int32{int32(h), int32(w)}, 2), nil
	case onnxrt.Int64:
		return onnxrt.NewInt64([]int64{int64(h), int64(w)}, 2), nil
	}
	return onnxrt.Tensor{}, fmt.Errorf("orig_im_size of type %v is not supported", t)
}
