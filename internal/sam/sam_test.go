package sam

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
)

func TestResizedSize(t *testing.T) {
	tests := []struct {
		w, h, wantW, wantH int
	}{
		{1920, 1080, 1024, 576},
		{1080, 1920, 576, 1024},
		{640, 426, 1024, 682}, // 681.6 rounds up
		{2048, 1024, 1024, 512},
		{1080, 1080, 1024, 1024},
		{4000, 3000, 1024, 768},
		{3000, 2001, 1024, 683}, // 683.0 + tiny
		{1000, 999, 1024, 1023}, // 1022.976
		{2000, 1, 1024, 1},      // 0.512 rounds up
		{1, 3000, 1, 1024},      // 0.34 would round to 0
		{1, 1, 1024, 1024},
	}
	for _, tt := range tests {
		gotW, gotH := resizedSize(tt.w, tt.h)
		if gotW != tt.wantW || gotH != tt.wantH {
			t.Errorf("resizedSize(%d, %d) = %d×%d, want %d×%d", tt.w, tt.h, gotW, gotH, tt.wantW, tt.wantH)
		}
	}
}

func TestPromptTensors(t *testing.T) {
	tests := []struct {
		name       string
		w, h       int
		prompt     Prompt
		wantCoords []float32
		wantLabels []float32
	}{
		{
			// SAM/test_predict.py: keypoint on 1080×1080 → [533, 647].
			name: "point square", w: 1080, h: 1080,
			prompt:     Prompt{Points: []Point{{X: 533, Y: 647, Positive: true}}},
			wantCoords: []float32{505.362963, 613.451852, 0, 0},
			wantLabels: []float32{1, -1},
		},
		{
			name: "negative point wide", w: 1920, h: 1080,
			prompt:     Prompt{Points: []Point{{X: 960, Y: 540}}},
			wantCoords: []float32{512, 288, 0, 0},
			wantLabels: []float32{0, -1},
		},
		{
			name: "point rounded height", w: 640, h: 426,
			prompt:     Prompt{Points: []Point{{X: 320, Y: 213, Positive: true}}},
			wantCoords: []float32{512, 341, 0, 0},
			wantLabels: []float32{1, -1},
		},
		{
			// SAM/test_predict.py: rectangle on 1080×1080 → [540, 540, 648, 648].
			name: "box alone", w: 1080, h: 1080,
			prompt:     Prompt{Box: &Box{X0: 540, Y0: 540, X1: 648, Y1: 648}},
			wantCoords: []float32{512, 512, 614.4, 614.4},
			wantLabels: []float32{2, 3},
		},
		{
			name: "box reversed corners", w: 1080, h: 1080,
			prompt:     Prompt{Box: &Box{X0: 648, Y0: 648, X1: 540, Y1: 540}},
			wantCoords: []float32{512, 512, 614.4, 614.4},
			wantLabels: []float32{2, 3},
		},
		{
			name: "points and box", w: 1080, h: 1920,
			prompt: Prompt{
				Points: []Point{{X: 100, Y: 200, Positive: true}, {X: 300, Y: 400}},
				Box:    &Box{X0: 10, Y0: 20, X1: 1000, Y1: 1800},
			},
			wantCoords: []float32{53.333333, 106.666667, 160, 213.333333, 5.333333, 10.666667, 533.333333, 960},
			wantLabels: []float32{1, 0, 2, 3},
		},
		{
			name: "many points", w: 2048, h: 1024,
			prompt: Prompt{Points: []Point{
				{X: 0, Y: 0, Positive: true}, {X: 2, Y: 2}, {X: 2047, Y: 1023, Positive: true},
				{X: 1024, Y: 512, Positive: true}, {X: 7, Y: 9},
			}},
			wantCoords: []float32{0, 0, 1, 1, 1023.5, 511.5, 512, 256, 3.5, 4.5, 0, 0},
			wantLabels: []float32{1, 0, 1, 1, 0, -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			coords, labels, err := promptTensors(tt.prompt, tt.w, tt.h)
			if err != nil {
				t.Fatalf("promptTensors: %v", err)
			}
			if diff := cmp.Diff(coords, tt.wantCoords, cmpopts.EquateApprox(0, 1e-4)); diff != "" {
				t.Errorf("coords (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(labels, tt.wantLabels); diff != "" {
				t.Errorf("labels (-got +want):\n%s", diff)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		if _, _, err := promptTensors(Prompt{}, 10, 10); !errors.Is(err, ErrEmptyPrompt) {
			t.Errorf("got %v, want ErrEmptyPrompt", err)
		}
	})
}

// TestCoordsMatchPython pins the float arithmetic to apply_coords:
// coords * (new_w / old_w) in float64, then float32.
func TestCoordsMatchPython(t *testing.T) {
	coords, _, err := promptTensors(Prompt{Points: []Point{{X: 533, Y: 647, Positive: true}}}, 1080, 1080)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{float32(533 * (1024.0 / 1080)), float32(647 * (1024.0 / 1080))}
	if coords[0] != want[0] || coords[1] != want[1] {
		t.Errorf("got (%v, %v), want (%v, %v)", coords[0], coords[1], want[0], want[1])
	}
}

func newFakeModel(t testing.TB, enc, dec *fakeSession) *Model {
	t.Helper()
	m, err := newModel(enc, dec)
	if err != nil {
		t.Fatalf("newModel: %v", err)
	}
	return m
}

func testEmbedding(w, h int) *Embedding {
	return &Embedding{Data: make([]float32, embedLen), Width: w, Height: h}
}

func TestDecodeInputs(t *testing.T) {
	tests := []struct {
		name     string
		orig     onnxrt.DataType
		wantOrig onnxrt.Tensor
	}{
		{"float32", onnxrt.Float32, onnxrt.NewFloat32([]float32{426, 640}, 2)},
		{"int32", onnxrt.Int32, onnxrt.NewInt32([]int32{426, 640}, 2)},
		{"int64", onnxrt.Int64, onnxrt.NewInt64([]int64{426, 640}, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := fakeDecoder(tt.orig, []float32{0.5}, discLogits(512, 341, 100))
			m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), dec)
			e := testEmbedding(640, 426)
			e.Data[7] = 42
			if _, err := m.Decode(context.Background(), e, Prompt{Points: []Point{{X: 320, Y: 213, Positive: true}}}); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := dec.lastCall()
			if diff := cmp.Diff(got[inOrigSize], tt.wantOrig); diff != "" {
				t.Errorf("orig_im_size (-got +want):\n%s", diff)
			}
			want := map[string]onnxrt.Tensor{
				inCoords:  onnxrt.NewFloat32([]float32{512, 341, 0, 0}, 1, 2, 2),
				inLabels:  onnxrt.NewFloat32([]float32{1, -1}, 1, 2),
				inHasMask: onnxrt.NewFloat32([]float32{0}, 1),
			}
			for name, w := range want {
				if diff := cmp.Diff(got[name], w, cmpopts.EquateApprox(0, 1e-4)); diff != "" {
					t.Errorf("%s (-got +want):\n%s", name, diff)
				}
			}
			mask := got[inMask]
			if diff := cmp.Diff(mask.Shape, []int64{1, 1, 256, 256}); diff != "" {
				t.Errorf("mask_input shape (-got +want):\n%s", diff)
			}
			for i, v := range mask.Float32 {
				if v != 0 {
					t.Fatalf("mask_input[%d] = %v, want 0", i, v)
				}
			}
			emb := got[inEmbeddings]
			if diff := cmp.Diff(emb.Shape, []int64{1, 256, 64, 64}); diff != "" {
				t.Errorf("image_embeddings shape (-got +want):\n%s", diff)
			}
			if emb.Float32[7] != 42 {
				t.Errorf("image_embeddings[7] = %v, want 42 (the embedding's own data)", emb.Float32[7])
			}
		})
	}
}

// TestDecodeInputOrder checks that inputs follow the session's own order.
func TestDecodeInputOrder(t *testing.T) {
	dec := fakeDecoder(onnxrt.Float32, []float32{0.5}, discLogits(512, 512, 100))
	dec.inNames = []string{inOrigSize, inMask, inLabels, inHasMask, inCoords, inEmbeddings}
	m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), dec)
	if _, err := m.Decode(context.Background(), testEmbedding(100, 100), Prompt{Points: []Point{{X: 50, Y: 50, Positive: true}}}); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got := dec.lastCall()
	if diff := cmp.Diff(got[inOrigSize].Float32, []float32{100, 100}); diff != "" {
		t.Errorf("orig_im_size (-got +want):\n%s", diff)
	}
	if n := len(got[inEmbeddings].Float32); n != embedLen {
		t.Errorf("image_embeddings has %d values, want %d", n, embedLen)
	}
}

func TestDecodeMultiMask(t *testing.T) {
	// Four masks: discs at different places; mask 2 has the best IoU.
	var low []float32
	centres := [][2]float64{{100, 100}, {300, 100}, {500, 300}, {100, 500}}
	for _, c := range centres {
		low = append(low, discLogits(c[0], c[1], 80)...)
	}
	tests := []struct {
		name      string
		iou       []float32
		wantIndex int
	}{
		{"best third", []float32{0.1, 0.3, 0.9, 0.2}, 2},
		{"best first", []float32{0.95, 0.3, 0.9, 0.2}, 0},
		{"best last", []float32{0.1, 0.3, 0.2, 0.4}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, tt.iou, low))
			mask, err := m.Decode(context.Background(), testEmbedding(1024, 1024), Prompt{Box: &Box{X0: 1, Y0: 1, X1: 5, Y1: 5}})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if mask.Score != tt.iou[tt.wantIndex] {
				t.Errorf("score = %v, want %v", mask.Score, tt.iou[tt.wantIndex])
			}
			c := centres[tt.wantIndex]
			cx, cy, area := centroid(mask)
			if math.Abs(cx-c[0]) > 1 || math.Abs(cy-c[1]) > 1 {
				t.Errorf("mask centroid (%.1f, %.1f), want (%v, %v)", cx, cy, c[0], c[1])
			}
			if want := math.Pi * 80 * 80; math.Abs(area-want)/want > 0.02 {
				t.Errorf("mask area %v, want ≈ %.0f", area, want)
			}
		})
	}
}

// centroid returns the centre of mass and the area of a mask, with pixel
// (x, y) at (x+0.5, y+0.5).
func centroid(m *Mask) (cx, cy, area float64) {
	for y := range m.Height {
		for x := range m.Width {
			if m.Pix[y*m.Width+x] != 0 {
				cx += float64(x) + 0.5
				cy += float64(y) + 0.5
				area++
			}
		}
	}
	if area == 0 {
		return math.NaN(), math.NaN(), 0
	}
	return cx / area, cy / area, area
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		emb     *Embedding
		prompt  Prompt
		iou     []float32
		low     []float32
		wantErr string
		wantIs  error
	}{
		{name: "empty prompt", emb: testEmbedding(10, 10), iou: []float32{1}, low: make([]float32, 65536), wantIs: ErrEmptyPrompt},
		{name: "nil embedding", prompt: Prompt{Points: []Point{{}}}, iou: []float32{1}, low: make([]float32, 65536), wantErr: "invalid embedding"},
		{name: "short embedding", emb: &Embedding{Data: make([]float32, 10), Width: 10, Height: 10}, prompt: Prompt{Points: []Point{{}}}, iou: []float32{1}, low: make([]float32, 65536), wantErr: "invalid embedding"},
		{name: "iou count", emb: testEmbedding(10, 10), prompt: Prompt{Points: []Point{{}}}, iou: []float32{1, 2}, low: make([]float32, 65536), wantErr: "iou_predictions has 2 values for 1 masks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := fakeDecoder(onnxrt.Float32, tt.iou, tt.low)
			if len(tt.iou)*65536 != len(tt.low) {
				// Make the fake's shape disagree with its IoU count.
				dec.run = func([]onnxrt.Tensor) ([]onnxrt.Tensor, error) {
					return []onnxrt.Tensor{onnxrt.NewFloat32(tt.iou, 1, int64(len(tt.iou))), onnxrt.NewFloat32(tt.low, 1, 1, 256, 256)}, nil
				}
			}
			m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), dec)
			_, err := m.Decode(context.Background(), tt.emb, tt.prompt)
			switch {
			case err == nil:
				t.Fatalf("got no error, want one")
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("got %v, want %v", err, tt.wantIs)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("got %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, make([]float32, 65536)))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := m.Decode(ctx, testEmbedding(10, 10), Prompt{Points: []Point{{}}}); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestLayoutDetection(t *testing.T) {
	tests := []struct {
		name       string
		shape      []int64
		typ        onnxrt.DataType
		wantLayout string
		wantErr    string
	}{
		{name: "hwc float", shape: []int64{-1, -1, 3}, typ: onnxrt.Float32, wantLayout: LayoutHWC},
		{name: "hwc uint8", shape: []int64{-1, -1, 3}, typ: onnxrt.Uint8, wantLayout: LayoutHWC},
		{name: "nchw", shape: []int64{1, 3, 1024, 1024}, typ: onnxrt.Float32, wantLayout: LayoutNCHW},
		{name: "nchw dynamic batch", shape: []int64{-1, 3, 1024, 1024}, typ: onnxrt.Float32, wantLayout: LayoutNCHW},
		{name: "hwc fixed size", shape: []int64{684, 1024, 3}, typ: onnxrt.Float32, wantErr: "want dynamic height and width"},
		{name: "hwc int64", shape: []int64{-1, -1, 3}, typ: onnxrt.Int64, wantErr: "want float or uint8"},
		{name: "nchw uint8", shape: []int64{1, 3, 1024, 1024}, typ: onnxrt.Uint8, wantErr: "want float"},
		{name: "nchw 512", shape: []int64{1, 3, 512, 512}, typ: onnxrt.Float32, wantErr: "want [h, w, 3] or [1, 3, 1024, 1024]"},
		{name: "chw", shape: []int64{3, -1, -1}, typ: onnxrt.Float32, wantErr: "want [h, w, 3] or [1, 3, 1024, 1024]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newModel(fakeEncoder(tt.shape, tt.typ, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newModel: %v", err)
			}
			if got := m.Layout(); got != tt.wantLayout {
				t.Errorf("Layout() = %q, want %q", got, tt.wantLayout)
			}
		})
	}
	t.Run("two inputs", func(t *testing.T) {
		enc := fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0)
		enc.inputs = append(enc.inputs, onnxrt.Info{Name: "extra", Shape: []int64{1}, Type: onnxrt.Float32})
		_, err := newModel(enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		if err == nil || !strings.Contains(err.Error(), "encoder has 2 inputs (input_image, extra)") {
			t.Errorf("got %v, want an error naming both inputs", err)
		}
	})
	t.Run("sam2 encoder", func(t *testing.T) {
		enc := fakeEncoder([]int64{1, 3, 1024, 1024}, onnxrt.Float32, 0)
		enc.outNames = []string{"high_res_feats_0", "high_res_feats_1", "image_embed"}
		_, err := newModel(enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		if err == nil || !strings.Contains(err.Error(), "no output image_embeddings") {
			t.Errorf("got %v, want an error about image_embeddings", err)
		}
	})
	t.Run("one output of another name", func(t *testing.T) {
		enc := fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0)
		enc.outNames = []string{"embeddings"}
		enc.outputs[0].Name = "embeddings"
		if _, err := newModel(enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil)); err != nil {
			t.Errorf("newModel: %v", err)
		}
	})
	t.Run("wrong embedding shape", func(t *testing.T) {
		enc := fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0)
		enc.outputs[0].Shape = []int64{1, 256, 32, 32}
		_, err := newModel(enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		if err == nil || !strings.Contains(err.Error(), "want float [1, 256, 64, 64]") {
			t.Errorf("got %v, want an error about the embedding shape", err)
		}
	})
}

func TestCheckDecoder(t *testing.T) {
	without := func(infos []onnxrt.Info, names ...string) []onnxrt.Info {
		var out []onnxrt.Info
		for _, in := range infos {
			if !strings.Contains(strings.Join(names, ","), in.Name) {
				out = append(out, in)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		inputs   []onnxrt.Info
		outputs  []onnxrt.Info
		wantErr  string
		wantOrig onnxrt.DataType
	}{
		{name: "official", inputs: officialInputs(onnxrt.Float32), outputs: officialOutputs(1), wantOrig: onnxrt.Float32},
		{name: "orig int64", inputs: officialInputs(onnxrt.Int64), outputs: officialOutputs(4), wantOrig: onnxrt.Int64},
		{name: "orig int32", inputs: officialInputs(onnxrt.Int32), outputs: officialOutputs(4), wantOrig: onnxrt.Int32},
		{name: "no masks output", inputs: officialInputs(onnxrt.Float32), outputs: without(officialOutputs(1), outMasks), wantOrig: onnxrt.Float32},
		{
			name: "missing inputs", inputs: without(officialInputs(onnxrt.Float32), inMask, inOrigSize), outputs: officialOutputs(1),
			wantErr: "decoder lacks input mask_input, input orig_im_size",
		},
		{
			name: "missing output", inputs: officialInputs(onnxrt.Float32), outputs: without(officialOutputs(1), outLowRes),
			wantErr: "decoder lacks output low_res_masks",
		},
		{
			name: "sam2 decoder", outputs: []onnxrt.Info{{Name: "masks"}, {Name: "iou_predictions", Type: onnxrt.Float32}},
			inputs: []onnxrt.Info{
				{Name: "image_embed"}, {Name: "high_res_feats_0"}, {Name: "high_res_feats_1"},
				{Name: inCoords, Type: onnxrt.Float32}, {Name: inLabels, Type: onnxrt.Float32},
				{Name: inMask, Type: onnxrt.Float32}, {Name: inHasMask, Type: onnxrt.Float32},
			},
			wantErr: "decoder lacks input image_embeddings, input orig_im_size, output low_res_masks",
		},
		{
			name:    "sam-hq extra input",
			inputs:  append(officialInputs(onnxrt.Float32), onnxrt.Info{Name: "interm_embeddings", Type: onnxrt.Float32}),
			outputs: officialOutputs(1),
			wantErr: "decoder has unsupported inputs interm_embeddings",
		},
		{
			name: "labels int64", outputs: officialOutputs(1),
			inputs: func() []onnxrt.Info {
				in := officialInputs(onnxrt.Float32)
				in[2].Type = onnxrt.Int64
				return in
			}(),
			wantErr: "input point_labels has type int64, want float",
		},
		{
			name: "orig uint8", inputs: officialInputs(onnxrt.Uint8), outputs: officialOutputs(1),
			wantErr: "input orig_im_size has type uint8, want float, int32 or int64",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &fakeSession{inputs: tt.inputs, outputs: tt.outputs, inNames: decoderInputs(), outNames: decoderOutputs()}
			orig, _, _, err := checkDecoder(s)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("checkDecoder: %v", err)
			}
			if orig != tt.wantOrig {
				t.Errorf("orig_im_size type = %v, want %v", orig, tt.wantOrig)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name      string
		shape     []int64
		typ       onnxrt.DataType
		w, h      int
		wantShape []int64
		wantType  onnxrt.DataType
	}{
		{"hwc float", []int64{-1, -1, 3}, onnxrt.Float32, 640, 426, []int64{682, 1024, 3}, onnxrt.Float32},
		{"hwc uint8", []int64{-1, -1, 3}, onnxrt.Uint8, 1080, 1920, []int64{1024, 576, 3}, onnxrt.Uint8},
		{"nchw", []int64{1, 3, 1024, 1024}, onnxrt.Float32, 2048, 1024, []int64{1, 3, 1024, 1024}, onnxrt.Float32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := fakeEncoder(tt.shape, tt.typ, 0.25)
			m := newFakeModel(t, enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil))
			e, err := m.Encode(context.Background(), solidNRGBA(tt.w, tt.h, 10, 20, 30))
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if e.Width != tt.w || e.Height != tt.h {
				t.Errorf("embedding size %d×%d, want %d×%d", e.Width, e.Height, tt.w, tt.h)
			}
			if len(e.Data) != embedLen || e.Data[0] != 0.25 {
				t.Errorf("embedding has %d values starting %v, want %d of 0.25", len(e.Data), e.Data[0], embedLen)
			}
			if got, want := e.Bytes(), int64(4*embedLen); got < want || got > want+100 {
				t.Errorf("Bytes() = %d, want about %d", got, want)
			}
			in := enc.lastCall()["input_image"]
			if diff := cmp.Diff(in.Shape, tt.wantShape); diff != "" {
				t.Errorf("encoder input shape (-got +want):\n%s", diff)
			}
			if in.Type != tt.wantType {
				t.Errorf("encoder input type %v, want %v", in.Type, tt.wantType)
			}
		})
	}
	t.Run("empty image", func(t *testing.T) {
		m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		if _, err := m.Encode(context.Background(), solidNRGBA(0, 5, 0, 0, 0)); err == nil {
			t.Error("got no error for an empty image, want one")
		}
	})
	t.Run("unbounded image", func(t *testing.T) {
		m := newFakeModel(t, fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0), fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		_, err := m.Encode(context.Background(), image.NewUniform(color.White))
		if err == nil || !strings.Contains(err.Error(), "larger than 65535 pixels a side") {
			t.Errorf("got %v, want an error about the size", err)
		}
	})
	t.Run("encoder error", func(t *testing.T) {
		enc := fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0)
		enc.run = func([]onnxrt.Tensor) ([]onnxrt.Tensor, error) { return nil, errors.New("boom") }
		m := newFakeModel(t, enc, fakeDecoder(onnxrt.Float32, []float32{1}, nil))
		if _, err := m.Encode(context.Background(), solidNRGBA(5, 5, 0, 0, 0)); err == nil || !strings.Contains(err.Error(), "run encoder: boom") {
			t.Errorf("got %v, want run encoder: boom", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		enc := fakeEncoder([]int64{-1, -1, 3}, onnxrt.Float32, 0)
		dec := fakeDecoder(onnxrt.Float32, []float32{1}, nil)
		m := newFakeModel(t, enc, dec)
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !enc.closed || !dec.closed {
			t.Errorf("closed encoder %v, decoder %v; want both", enc.closed, dec.closed)
		}
	})
}
