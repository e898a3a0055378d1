// Package sam runs Segment Anything through two ONNX Runtime sessions: an
// image encoder and the official prompt decoder.
//
// Everything around the two model calls is plain Go: the resize and
// normalization that build the encoder input, the transform of prompts into
// the encoder's 1024-pixel frame, and the upsampling and threshold that turn
// the decoder's low-resolution logits into a mask at the image's own size.
// Encoder layouts are detected from the model (see Load); the decoder must
// have the official SamOnnxModel signature, with one mask or four.
//
// A Model is safe for concurrent use by multiple goroutines.
package sam

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

// Sizes fixed by every SAM1-family model.
const (
	// InputSize is the long side of the encoder's frame, in pixels.
	InputSize = 1024
	// lowRes is the side of the decoder's low_res_masks and mask_input.
	lowRes = 256
	// embedDim, embedSide give the embedding shape [1, embedDim, embedSide, embedSide].
	embedDim  = 256
	embedSide = 64
	embedLen  = embedDim * embedSide * embedSide
)

// Encoder input layouts, as Layout reports them.
const (
	// LayoutHWC is the samexporter --use-preprocess encoder: raw RGB 0..255,
	// [height, width, 3], resized so the long side is 1024; normalization and
	// padding happen inside the graph.
	LayoutHWC = "hwc"
	// LayoutNCHW is an encoder that takes [1, 3, 1024, 1024], normalized with
	// the SAM mean and standard deviation and zero-padded right and bottom.
	LayoutNCHW = "nchw"
)

// Names of the official decoder's tensors (segment_anything/utils/onnx.py).
const (
	inEmbeddings = "image_embeddings"
	inCoords     = "point_coords"
	inLabels     = "point_labels"
	inMask       = "mask_input"
	inHasMask    = "has_mask_input"
	inOrigSize   = "orig_im_size"
	outIoU       = "iou_predictions"
	outLowRes    = "low_res_masks"
	outMasks     = "masks"
)

// decoderInputs lists the decoder inputs in the official export order.
func decoderInputs() []string {
	return []string{inEmbeddings, inCoords, inLabels, inMask, inHasMask, inOrigSize}
}

// decoderOutputs lists the outputs Decode asks for. The official decoder's
// third output, masks, is never requested: some exports bake one aspect
// ratio into its upscaling, and it is the costliest tensor of the run.
func decoderOutputs() []string { return []string{outIoU, outLowRes} }

// ErrEmptyPrompt is returned by Decode for a prompt with no points and no box.
var ErrEmptyPrompt = errors.New("prompt has no points and no box")

// session is what the pipeline needs from a loaded model;
// *onnxrt.Session implements it.
type session interface {
	// Run feeds inputs in InputNames order and returns OutputNames order.
	Run(ctx context.Context, inputs []onnxrt.Tensor) ([]onnxrt.Tensor, error)
	// Inputs and Outputs describe the whole model's signature.
	Inputs() []onnxrt.Info
	Outputs() []onnxrt.Info
	// InputNames and OutputNames are what Run takes and returns, in order.
	InputNames() []string
	OutputNames() []string
	Close() error
}

// Options configure Load.
type Options struct {
	// IntraOpThreads is the number of threads one operator may use, passed
	// to ONNX Runtime; 0 lets it choose.
	IntraOpThreads int
}

// Model is a loaded encoder and decoder pair. Its methods are safe for
// concurrent use; Close must not race with them.
type Model struct {
	enc, dec session

	layout  string
	encType onnxrt.DataType // element type of the encoder input
	encOut  int             // index of image_embeddings in the encoder's outputs

	decIn       []string        // the decoder's input names, in Run order
	origType    onnxrt.DataType // element type of orig_im_size
	iouOut      int             // index of iou_predictions in the decoder's outputs
	lowResOut   int             // index of low_res_masks in the decoder's outputs
	zeroMask    []float32       // mask_input, all zeros; read-only, shared by runs
	zeroHasMask []float32       // has_mask_input = 0

	ups     atomic.Pointer[upsampler] // for the last image size decoded
	scratch sync.Pool                 // of *[]float32, for upsampler.mask
}

// Load creates the encoder and decoder sessions from ONNX model bytes and
// checks their signatures. The encoder must take one input, either HWC
// ([h, w, 3], dynamic h and w, float32 or uint8) or NCHW ([1, 3, 1024, 1024]
// float32), and produce image_embeddings [1, 256, 64, 64]. The decoder must
// have the official inputs (image_embeddings, point_coords, point_labels,
// mask_input, has_mask_input, orig_im_size, the last float32, int32 or int64)
// and the outputs iou_predictions and low_res_masks. ONNX Runtime must have
// been initialized with onnxrt.Init.
func Load(encoder, decoder []byte, opts Options) (*Model, error) {
	return load(source{data: encoder}, source{data: decoder}, opts)
}

// LoadFiles is Load for models in files. A model whose weights sit in an
// external-data file beside it (as SAM ViT-H's do) loads too.
func LoadFiles(encoderPath, decoderPath string, opts Options) (*Model, error) {
	if _, err := os.Stat(encoderPath); err != nil {
		return nil, fmt.Errorf("open encoder: %w", err)
	}
	if _, err := os.Stat(decoderPath); err != nil {
		return nil, fmt.Errorf("open decoder: %w", err)
	}
	return load(source{path: encoderPath}, source{path: decoderPath}, opts)
}

// source is an ONNX model in memory or in a file.
type source struct {
	data []byte
	path string
}

func (s source) open(inputs, outputs []string, opts onnxrt.Options) (*onnxrt.Session, error) {
	if s.path != "" {
		return onnxrt.NewSessionFile(s.path, inputs, outputs, opts)
	}
	return onnxrt.NewSession(s.data, inputs, outputs, opts)
}

func load(encoder, decoder source, opts Options) (*Model, error) {
	ortOpts := onnxrt.Options{IntraOpThreads: opts.IntraOpThreads}
	enc, err := encoder.open(nil, nil, ortOpts)
	if err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	dec, err := decoder.open(decoderInputs(), decoderOutputs(), ortOpts)
	if err != nil {
		// Creating the session with the official names failed. Open it with
		// the model's own names to say which ones are missing.
		if probe, perr := decoder.open(nil, nil, ortOpts); perr == nil {
			_, _, _, verr := checkDecoder(probe)
			probe.Close()
			if verr != nil {
				err = verr
			}
		}
		enc.Close()
		return nil, fmt.Errorf("load decoder: %w", err)
	}
	m, err := newModel(enc, dec)
	if err != nil {
		enc.Close()
		dec.Close()
		return nil, err
	}
	return m, nil
}

// newModel checks the two sessions' signatures and builds a Model over them.
func newModel(enc, dec session) (*Model, error) {
	m := &Model{
		enc:         enc,
		dec:         dec,
		zeroMask:    make([]float32, lowRes*lowRes),
		zeroHasMask: []float32{0},
	}
	var err error
	if m.layout, m.encType, m.encOut, err = checkEncoder(enc); err != nil {
		return nil, fmt.Errorf("load encoder: %w", err)
	}
	if m.origType, m.iouOut, m.lowResOut, err = checkDecoder(dec); err != nil {
		return nil, fmt.Errorf("load decoder: %w", err)
	}
	m.decIn = dec.InputNames()
	return m, nil
}

// checkEncoder detects the encoder's layout from its only input and finds the
// embedding among its outputs.
func checkEncoder(s session) (layout string, typ onnxrt.DataType, out int, err error) {
	ins := s.Inputs()
	if len(ins) != 1 {
		return "", 0, 0, fmt.Errorf("encoder has %d inputs (%s), want 1", len(ins), strings.Join(onnxrt.Names(ins), ", "))
	}
	in := ins[0]
	switch {
	case len(in.Shape) == 3 && in.Shape[2] == 3:
		if in.Shape[0] >= 0 || in.Shape[1] >= 0 {
			return "", 0, 0, fmt.Errorf("encoder input %s has shape %v, want dynamic height and width [h, w, 3]", in.Name, in.Shape)
		}
		if in.Type != onnxrt.Float32 && in.Type != onnxrt.Uint8 {
			return "", 0, 0, fmt.Errorf("encoder input %s has type %v, want float or uint8", in.Name, in.Type)
		}
		layout = LayoutHWC
	case len(in.Shape) == 4 && in.Shape[0] <= 1 && in.Shape[1] == 3 && in.Shape[2] == InputSize && in.Shape[3] == InputSize:
		if in.Type != onnxrt.Float32 {
			return "", 0, 0, fmt.Errorf("encoder input %s has type %v, want float", in.Name, in.Type)
		}
		layout = LayoutNCHW
	default:
		return "", 0, 0, fmt.Errorf("encoder input %s has shape %v, want [h, w, 3] or [1, 3, 1024, 1024]", in.Name, in.Shape)
	}
	names := s.OutputNames()
	out = slices.Index(names, inEmbeddings)
	if out < 0 {
		if len(names) != 1 {
			return "", 0, 0, fmt.Errorf("encoder has no output %s (has %s)", inEmbeddings, strings.Join(names, ", "))
		}
		out = 0
	}
	for _, o := range s.Outputs() {
		if o.Name != names[out] {
			continue
		}
		if o.Type != onnxrt.Float32 || !shapeFits(o.Shape, []int64{1, embedDim, embedSide, embedSide}) {
			return "", 0, 0, fmt.Errorf("encoder output %s is %v %v, want float [1, 256, 64, 64]", o.Name, o.Type, o.Shape)
		}
	}
	return layout, in.Type, out, nil
}

// checkDecoder checks the official decoder signature and returns the type of
// orig_im_size and where Run returns the two outputs Decode reads.
func checkDecoder(s session) (origType onnxrt.DataType, iou, lowRes int, err error) {
	ins := make(map[string]onnxrt.Info)
	for _, in := range s.Inputs() {
		ins[in.Name] = in
	}
	var missing, problems []string
	for _, name := range decoderInputs() {
		in, ok := ins[name]
		if !ok {
			missing = append(missing, "input "+name)
			continue
		}
		delete(ins, name)
		switch {
		case name == inOrigSize:
			if in.Type != onnxrt.Float32 && in.Type != onnxrt.Int32 && in.Type != onnxrt.Int64 {
				problems = append(problems, fmt.Sprintf("input %s has type %v, want float, int32 or int64", name, in.Type))
			}
			origType = in.Type
		case in.Type != onnxrt.Float32:
			problems = append(problems, fmt.Sprintf("input %s has type %v, want float", name, in.Type))
		}
	}
	outs := make(map[string]onnxrt.Info)
	for _, o := range s.Outputs() {
		outs[o.Name] = o
	}
	for _, name := range decoderOutputs() {
		o, ok := outs[name]
		if !ok {
			missing = append(missing, "output "+name)
		} else if o.Type != onnxrt.Float32 {
			problems = append(problems, fmt.Sprintf("output %s has type %v, want float", name, o.Type))
		}
	}
	if len(missing) > 0 {
		return 0, 0, 0, fmt.Errorf("decoder lacks %s; want the official SAM decoder", strings.Join(missing, ", "))
	}
	if len(ins) > 0 {
		extra := slices.Sorted(func(yield func(string) bool) {
			for name := range ins {
				if !yield(name) {
					return
				}
			}
		})
		return 0, 0, 0, fmt.Errorf("decoder has unsupported inputs %s; want the official SAM decoder", strings.Join(extra, ", "))
	}
	if len(problems) > 0 {
		return 0, 0, 0, fmt.Errorf("decoder signature: %s", strings.Join(problems, "; "))
	}
	names := s.OutputNames()
	iou, lowRes = slices.Index(names, outIoU), slices.Index(names, outLowRes)
	if iou < 0 || lowRes < 0 {
		return 0, 0, 0, fmt.Errorf("decoder session does not return %s and %s (returns %s)", outIoU, outLowRes, strings.Join(names, ", "))
	}
	for _, name := range s.InputNames() {
		if !slices.Contains(decoderInputs(), name) {
			return 0, 0, 0, fmt.Errorf("decoder session takes unknown input %s", name)
		}
	}
	if n := len(s.InputNames()); n != len(decoderInputs()) {
		return 0, 0, 0, fmt.Errorf("decoder session takes %d inputs, want %d", n, len(decoderInputs()))
	}
	return origType, iou, lowRes, nil
}

// shapeFits reports whether a declared shape, where -1 is dynamic, admits want.
func shapeFits(declared, want []int64) bool {
	if len(declared) != len(want) {
		return false
	}
	for i, d := range declared {
		if d >= 0 && d != want[i] {
			return false
		}
	}
	return true
}

// Layout returns the encoder's input layout, LayoutHWC or LayoutNCHW.
func (m *Model) Layout() string { return m.layout }

// Close releases both sessions.
func (m *Model) Close() error {
	return errors.Join(m.enc.Close(), m.dec.Close())
}
