package sam

import (
	"context"
	"slices"
	"sync"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// fakeSession is a session whose Run returns what run computes and records
// the inputs it was given.
type fakeSession struct {
	inputs, outputs   []onnxrt.Info
	inNames, outNames []string
	run               func(in []onnxrt.Tensor) ([]onnxrt.Tensor, error)

	mu     sync.Mutex
	calls  [][]onnxrt.Tensor
	closed bool
}

func (s *fakeSession) Run(ctx context.Context, in []onnxrt.Tensor) ([]onnxrt.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.calls = append(s.calls, slices.Clone(in))
	s.mu.Unlock()
	return s.run(in)
}

func (s *fakeSession) Inputs() []onnxrt.Info  { return s.inputs }
func (s *fakeSession) Outputs() []onnxrt.Info { return s.outputs }
func (s *fakeSession) InputNames() []string   { return s.inNames }
func (s *fakeSession) OutputNames() []string  { return s.outNames }
func (s *fakeSession) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// lastCall returns the inputs of the last Run by name.
func (s *fakeSession) lastCall() map[string]onnxrt.Tensor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]onnxrt.Tensor)
	if len(s.calls) == 0 {
		return out
	}
	for i, t := range s.calls[len(s.calls)-1] {
		out[s.inNames[i]] = t
	}
	return out
}

// fakeEncoder returns an encoder with one input of the given shape and type
// whose embedding is constant v.
func fakeEncoder(shape []int64, typ onnxrt.DataType, v float32) *fakeSession {
	return &fakeSession{
		inputs:   []onnxrt.Info{{Name: "input_image", Shape: shape, Type: typ}},
		outputs:  []onnxrt.Info{{Name: inEmbeddings, Shape: []int64{1, 256, 64, 64}, Type: onnxrt.Float32}},
		inNames:  []string{"input_image"},
		outNames: []string{inEmbeddings},
		run: func([]onnxrt.Tensor) ([]onnxrt.Tensor, error) {
			data := make([]float32, embedLen)
			for i := range data {
				data[i] = v
			}
			return []onnxrt.Tensor{onnxrt.NewFloat32(data, 1, 256, 64, 64)}, nil
		},
	}
}

// officialInputs returns the official decoder's input descriptions.
func officialInputs(orig onnxrt.DataType) []onnxrt.Info {
	return []onnxrt.Info{
		{Name: inEmbeddings, Shape: []int64{1, 256, 64, 64}, Type: onnxrt.Float32},
		{Name: inCoords, Shape: []int64{1, -1, 2}, Type: onnxrt.Float32},
		{Name: inLabels, Shape: []int64{1, -1}, Type: onnxrt.Float32},
		{Name: inMask, Shape: []int64{1, 1, 256, 256}, Type: onnxrt.Float32},
		{Name: inHasMask, Shape: []int64{1}, Type: onnxrt.Float32},
		{Name: inOrigSize, Shape: []int64{2}, Type: orig},
	}
}

// officialOutputs returns the official decoder's output descriptions for m masks.
func officialOutputs(m int64) []onnxrt.Info {
	return []onnxrt.Info{
		{Name: outMasks, Shape: []int64{1, m, -1, -1}, Type: onnxrt.Float32},
		{Name: outIoU, Shape: []int64{1, m}, Type: onnxrt.Float32},
		{Name: outLowRes, Shape: []int64{1, m, 256, 256}, Type: onnxrt.Float32},
	}
}

// fakeDecoder returns an official decoder, opened as Load opens it, that
// returns fixed IoUs and low-res logits ([M, 256, 256] flattened).
func fakeDecoder(orig onnxrt.DataType, iou, low []float32) *fakeSession {
	m := int64(len(iou))
	return &fakeSession{
		inputs:   officialInputs(orig),
		outputs:  officialOutputs(m),
		inNames:  decoderInputs(),
		outNames: decoderOutputs(),
		run: func([]onnxrt.Tensor) ([]onnxrt.Tensor, error) {
			return []onnxrt.Tensor{
				onnxrt.NewFloat32(slices.Clone(iou), 1, m),
				onnxrt.NewFloat32(slices.Clone(low), 1, m, 256, 256),
			}, nil
		},
	}
}

// discLogits returns 256×256 low-res logits of a disc of radius r centred
// on (cx, cy) in the 1024 frame, sampled at cell centres 4k+2 as the
// stand-in decoder does: (r²-d²)/r².
func discLogits(cx, cy, r float64) []float32 {
	out := make([]float32, lowRes*lowRes)
	for y := range lowRes {
		for x := range lowRes {
			dx, dy := float64(4*x+2)-cx, float64(4*y+2)-cy
			out[y*lowRes+x] = float32((r*r - dx*dx - dy*dy) / (r * r))
		}
	}
	return out
}
