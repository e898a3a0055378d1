package standin

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
)

func TestCommittedModelsMatchGenerator(t *testing.T) {
	built := Build()
	files := Files()
	if len(files) != 4 {
		t.Errorf("Files() has %d models, want 4", len(files))
	}
	for name, want := range built {
		got, ok := files[name]
		if !ok {
			t.Errorf("committed model %s is missing; run `go run ./cmd/gen-standins`", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("committed %s (%d bytes) differs from the generator (%d bytes); run `go run ./cmd/gen-standins`",
				name, len(got), len(want))
		}
	}
	enc, dec := Demo()
	if !bytes.Equal(enc, built[EncoderHWCFile]) {
		t.Errorf("Demo encoder is not %s", EncoderHWCFile)
	}
	if !bytes.Equal(dec, built[DecoderSingleFile]) {
		t.Errorf("Demo decoder is not %s", DecoderSingleFile)
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	a, b := Build(), Build()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two builds differ (-first +second):\n%s", diff)
	}
}

func TestFilesReturnsCopies(t *testing.T) {
	f := Files()
	f[DecoderSingleFile][0] ^= 0xff
	if bytes.Equal(f[DecoderSingleFile], Files()[DecoderSingleFile]) {
		t.Error("changing a slice from Files changed the next call's result")
	}
}

// signature is what a model declares, decoded from its protobuf bytes by a
// reader independent of the writer.
type signature struct {
	IRVersion int64
	Opsets    map[string]int64
	Inputs    []declared
	Outputs   []declared
}

type declared struct {
	Name string
	Elem int64
	Dims []string // a number, or a symbolic name
}

func TestSignature(t *testing.T) {
	f := func(n int) string { return fmt.Sprint(n) }
	decoderInputs := []declared{
		{"image_embeddings", dtFloat, []string{"1", "256", "64", "64"}},
		{"point_coords", dtFloat, []string{"1", "num_points", "2"}},
		{"point_labels", dtFloat, []string{"1", "num_points"}},
		{"mask_input", dtFloat, []string{"1", "1", "256", "256"}},
		{"has_mask_input", dtFloat, []string{"1"}},
		{"orig_im_size", dtFloat, []string{"2"}},
	}
	decoderOutputs := func(m int) []declared {
		return []declared{
			{"masks", dtFloat, []string{"1", f(m), "orig_height", "orig_width"}},
			{"iou_predictions", dtFloat, []string{"1", f(m)}},
			{"low_res_masks", dtFloat, []string{"1", f(m), "256", "256"}},
		}
	}
	embeddings := []declared{{"image_embeddings", dtFloat, []string{"1", "256", "64", "64"}}}
	tests := []struct {
		name  string
		model []byte
		want  signature
	}{
		{"encoder_hwc", EncoderHWC(), signature{
			Inputs:  []declared{{"input_image", dtFloat, []string{"image_height", "image_width", "3"}}},
			Outputs: embeddings,
		}},
		{"encoder_nchw", EncoderNCHW(), signature{
			Inputs:  []declared{{"input_image", dtFloat, []string{"1", "3", "1024", "1024"}}},
			Outputs: embeddings,
		}},
		{"decoder_single", DecoderSingle(), signature{Inputs: decoderInputs, Outputs: decoderOutputs(1)}},
		{"decoder_multi", DecoderMulti(), signature{Inputs: decoderInputs, Outputs: decoderOutputs(4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.IRVersion = 8
			tt.want.Opsets = map[string]int64{"": 17}
			got, err := readSignature(tt.model)
			if err != nil {
				t.Fatalf("read model: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("signature (-got +want):\n%s", diff)
			}
		})
	}
}

func readSignature(b []byte) (signature, error) {
	s := signature{Opsets: map[string]int64{}}
	err := eachField(b, func(num protowire.Number, v uint64, sub []byte) error {
		switch num {
		case modelIRVersion:
			s.IRVersion = int64(v)
		case modelOpsetImport:
			var domain string
			var version int64
			if err := eachField(sub, func(num protowire.Number, v uint64, sub []byte) error {
				switch num {
				case opsetDomain:
					domain = string(sub)
				case opsetVersion:
					version = int64(v)
				}
				return nil
			}); err != nil {
				return err
			}
			s.Opsets[domain] = version
		case modelGraph:
			return eachField(sub, func(num protowire.Number, _ uint64, sub []byte) error {
				if num != graphInput && num != graphOutput {
					return nil
				}
				vi, err := readDeclared(sub)
				if num == graphInput {
					s.Inputs = append(s.Inputs, vi)
				} else {
					s.Outputs = append(s.Outputs, vi)
				}
				return err
			})
		}
		return nil
	})
	return s, err
}

func readDeclared(b []byte) (declared, error) {
	var vi declared
	err := eachField(b, func(num protowire.Number, _ uint64, sub []byte) error {
		switch num {
		case valueInfoName:
			vi.Name = string(sub)
		case valueInfoType: // TypeProto
			return eachField(sub, func(num protowire.Number, _ uint64, sub []byte) error {
				if num != typeTensorType {
					return fmt.Errorf("type field %d is not a tensor type", num)
				}
				return eachField(sub, func(num protowire.Number, v uint64, sub []byte) error {
					switch num {
					case tensorTypeElemType:
						vi.Elem = int64(v)
					case tensorTypeShape:
						return eachField(sub, func(_ protowire.Number, _ uint64, sub []byte) error {
							return eachField(sub, func(num protowire.Number, v uint64, sub []byte) error {
								switch num {
								case dimValue:
									vi.Dims = append(vi.Dims, fmt.Sprint(int64(v)))
								case dimParam:
									vi.Dims = append(vi.Dims, string(sub))
								}
								return nil
							})
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	return vi, err
}

// eachField calls fn for every field of the message b, with the varint value
// or the bytes of a length-delimited field.
func eachField(b []byte, fn func(num protowire.Number, v uint64, sub []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("read tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var sub []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			sub, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("read field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, v, sub); err != nil {
			return err
		}
	}
	return nil
}

// --- Through ONNX Runtime ---

var decoderInputNames = []string{"image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"}

func newSession(tb testing.TB, model []byte, inputs []string) *onnxrt.Session {
	return onnxrttest.NewSession(tb, model, inputs, nil)
}

// toFrame maps a point of an h×w image to the 1024-long-side frame, as
// ResizeLongestSide.apply_coords does.
func toFrame(x, y float64, h, w int) (float32, float32) {
	long := float64(max(h, w))
	newW := math.Floor(float64(w)*Side/long + 0.5)
	newH := math.Floor(float64(h)*Side/long + 0.5)
	return float32(x * newW / float64(w)), float32(y * newH / float64(h))
}

// prompt is a decoder prompt: (x, y) pairs in the 1024 frame and labels.
type prompt struct {
	coords []float32
	labels []float32
}

// click is a positive click at (x, y) of an h×w image, plus the padding
// point.
func click(x, y float64, h, w int) prompt {
	fx, fy := toFrame(x, y, h, w)
	return prompt{coords: []float32{fx, fy, 0, 0}, labels: []float32{1, -1}}
}

type decoderRun struct {
	embeddings []float32 // nil: zeros
	prompt     prompt
	mask       []float32 // nil: zeros
	hasMask    float32
	h, w       int
}

func (r decoderRun) inputs() []onnxrt.Tensor {
	emb := r.embeddings
	if emb == nil {
		emb = make([]float32, EmbedDim*EmbedSide*EmbedSide)
	}
	mask := r.mask
	if mask == nil {
		mask = make([]float32, LowResSide*LowResSide)
	}
	n := int64(len(r.prompt.labels))
	return []onnxrt.Tensor{
		onnxrt.NewFloat32(emb, 1, EmbedDim, EmbedSide, EmbedSide),
		onnxrt.NewFloat32(r.prompt.coords, 1, n, 2),
		onnxrt.NewFloat32(r.prompt.labels, 1, n),
		onnxrt.NewFloat32(mask, 1, 1, LowResSide, LowResSide),
		onnxrt.NewFloat32([]float32{r.hasMask}, 1),
		onnxrt.NewFloat32([]float32{float32(r.h), float32(r.w)}, 2),
	}
}

// decoderOut holds the three decoder outputs.
type decoderOut struct {
	masks, iou, lowRes onnxrt.Tensor
}

func runDecoder(tb testing.TB, s *onnxrt.Session, r decoderRun) decoderOut {
	tb.Helper()
	out, err := s.Run(context.Background(), r.inputs())
	if err != nil {
		tb.Fatalf("run decoder: %v", err)
	}
	if len(out) != 3 {
		tb.Fatalf("decoder returned %d outputs, want 3", len(out))
	}
	return decoderOut{masks: out[0], iou: out[1], lowRes: out[2]}
}

// disc is the reference logit (r²−d²)/r².
func disc(x, y, cx, cy, r float64) float64 {
	d2 := (x-cx)*(x-cx) + (y-cy)*(y-cy)
	return (r*r - d2) / (r * r)
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-4*math.Max(1, math.Abs(want))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func mean(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func TestDecoder1080p(t *testing.T) {
	const h, w = 1080, 1920
	radii := MultiRadii()
	offsets := MultiIoUOffsets()
	tests := []struct {
		name    string
		model   []byte
		radii   []float32
		offsets []float32
		best    int
	}{
		{"single", DecoderSingle(), []float32{1}, []float32{SingleIoUOffset}, 0},
		{"multi", DecoderMulti(), radii[:], offsets[:], 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.model, decoderInputNames)
			p := click(960, 540, h, w)
			if p.coords[0] != 512 || p.coords[1] != 288 {
				t.Fatalf("click maps to (%v, %v), want (512, 288)", p.coords[0], p.coords[1])
			}
			out := runDecoder(t, s, decoderRun{prompt: p, h: h, w: w})
			m := len(tt.radii)

			shapes := [][]int64{out.masks.Shape, out.iou.Shape, out.lowRes.Shape}
			want := [][]int64{{1, int64(m), h, w}, {1, int64(m)}, {1, int64(m), LowResSide, LowResSide}}
			if diff := cmp.Diff(shapes, want); diff != "" {
				t.Fatalf("output shapes (-got +want):\n%s", diff)
			}

			for k, f := range tt.radii {
				mask := out.masks.Float32[k*h*w : (k+1)*h*w]
				r := float64(f) * RadiusFraction * w
				at := func(y, x int) float32 { return mask[y*w+x] }
				if got := at(540, 960); got != 1 {
					t.Errorf("mask %d: centre logit %v, want 1", k, got)
				}
				if got := at(0, 0); got >= 0 {
					t.Errorf("mask %d: corner logit %v, want < 0", k, got)
				}
				just := int(math.Floor(r))
				if got := at(540, 960+just+1); got >= 0 {
					t.Errorf("mask %d: logit %v at %d px right of the centre (r=%v), want < 0", k, got, just+1, r)
				}
				if got := at(540, 960+just-1); got <= 0 {
					t.Errorf("mask %d: logit %v at %d px right of the centre (r=%v), want > 0", k, got, just-1, r)
				}
				for _, p := range [][2]int{{17, 33}, {600, 1000}, {1079, 1919}, {300, 1500}} {
					y, x := p[0], p[1]
					if got, want := float64(at(y, x)), disc(float64(x), float64(y), 960, 540, r); !near(got, want) {
						t.Errorf("mask %d: logit at (y=%d, x=%d) %v, want %v", k, y, x, got, want)
					}
				}
				positive := 0
				for _, v := range mask {
					if v > 0 {
						positive++
					}
				}
				if area := math.Pi * r * r; math.Abs(float64(positive)-area) > 0.01*area {
					t.Errorf("mask %d: %d positive pixels, want πr² = %.0f ± 1%%", k, positive, area)
				}

				low := out.lowRes.Float32[k*LowResSide*LowResSide : (k+1)*LowResSide*LowResSide]
				lr := float64(f) * RadiusFraction * Side
				bad := 0
				for i := range LowResSide {
					for j := range LowResSide {
						want := disc(4*float64(j)+1.5, 4*float64(i)+1.5, 512, 288, lr)
						if got := float64(low[i*LowResSide+j]); !near(got, want) {
							if bad++; bad <= 3 {
								t.Errorf("mask %d: low-res cell (%d, %d) = %v, want %v", k, i, j, got, want)
							}
						}
					}
				}
				// The cell holding the centre (512, 288) of the 1024 frame is
				// (288/4, 512/4) and is inside; a cell past the radius is out.
				if got := low[72*LowResSide+128]; got <= 0 {
					t.Errorf("mask %d: low-res centre cell %v, want > 0", k, got)
				}
				if past := int(math.Floor((lr+512-1.5)/4)) + 1; past < LowResSide {
					if got := low[72*LowResSide+past]; got >= 0 {
						t.Errorf("mask %d: low-res cell (72, %d) %v, want < 0", k, past, got)
					}
				}
			}

			for k, off := range tt.offsets {
				if got, want := float64(out.iou.Float32[k]), 0.5*sigmoid(0)+float64(off); !near(got, want) {
					t.Errorf("iou[%d] = %v, want %v", k, got, want)
				}
			}
			if got := argmax(out.iou.Float32); got != tt.best {
				t.Errorf("best mask by IoU = %d, want %d", got, tt.best)
			}
		})
	}
}

func TestDecoderCentre(t *testing.T) {
	// With a 1024×1024 image, original pixels and the 1024 frame coincide,
	// and the centre is where the logit is largest (exactly 1).
	tests := []struct {
		name   string
		prompt prompt
		x, y   int
	}{
		{"click and padding", prompt{[]float32{300, 200, 0, 0}, []float32{1, -1}}, 300, 200},
		{"negative then positive", prompt{[]float32{10, 20, 700, 600, 0, 0}, []float32{0, 1, -1}}, 700, 600},
		{"first of two positives", prompt{[]float32{100, 900, 800, 50, 0, 0}, []float32{1, 1, -1}}, 100, 900},
		{"box only", prompt{[]float32{400, 200, 624, 376}, []float32{2, 3}}, 512, 288},
		{"box corners swapped in order", prompt{[]float32{624, 376, 400, 200}, []float32{3, 2}}, 512, 288},
		{"positive wins over box", prompt{[]float32{400, 200, 624, 376, 90, 80}, []float32{2, 3, 1}}, 90, 80},
		{"no positive and no box: point 0", prompt{[]float32{250, 750, 0, 0}, []float32{0, -1}}, 250, 750},
		{"half a box: point 0", prompt{[]float32{333, 444, 600, 600}, []float32{2, 0}}, 333, 444},
	}
	s := newSession(t, DecoderSingle(), decoderInputNames)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runDecoder(t, s, decoderRun{prompt: tt.prompt, h: Side, w: Side})
			mask := out.masks.Float32
			best := argmax(mask)
			if gx, gy := best%Side, best/Side; gx != tt.x || gy != tt.y {
				t.Errorf("mask peak at (%d, %d), want (%d, %d)", gx, gy, tt.x, tt.y)
			}
			if got := mask[tt.y*Side+tt.x]; got != 1 {
				t.Errorf("logit at the centre %v, want 1", got)
			}
		})
	}
}

func TestDecoderBoxOnly1080p(t *testing.T) {
	const h, w = 1080, 1920
	s := newSession(t, DecoderMulti(), decoderInputNames)
	x0, y0 := toFrame(760, 390, h, w)
	x1, y1 := toFrame(1160, 690, h, w)
	out := runDecoder(t, s, decoderRun{prompt: prompt{[]float32{x0, y0, x1, y1}, []float32{2, 3}}, h: h, w: w})
	for k := range 4 {
		mask := out.masks.Float32[k*h*w : (k+1)*h*w]
		best := argmax(mask)
		if gx, gy := best%w, best/w; gx != 960 || gy != 540 {
			t.Errorf("mask %d: peak at (%d, %d), want the box centre (960, 540)", k, gx, gy)
		}
	}
}

func TestMaskInput(t *testing.T) {
	const h, w = 480, 640
	s := newSession(t, DecoderSingle(), decoderInputNames)
	maskIn := make([]float32, LowResSide*LowResSide)
	for i := range maskIn {
		maskIn[i] = float32(i%97) - 48
	}
	p := click(320, 240, h, w)
	base := runDecoder(t, s, decoderRun{prompt: p, h: h, w: w})
	tests := []struct {
		name    string
		hasMask float32
		scale   float32 // the low-res masks should move by scale·mask_input
	}{
		{"ignored without has_mask_input", 0, 0},
		{"added with has_mask_input", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := runDecoder(t, s, decoderRun{prompt: p, mask: maskIn, hasMask: tt.hasMask, h: h, w: w})
			for i, v := range out.lowRes.Float32 {
				got := float64(v - base.lowRes.Float32[i])
				if want := float64(tt.scale * maskIn[i]); !near(got, want) {
					t.Fatalf("low-res cell %d moved by %v, want %v", i, got, want)
				}
			}
			if diff := cmp.Diff(out.masks.Float32, base.masks.Float32); diff != "" {
				t.Errorf("masks changed with the mask prompt (-got +want):\n%s", diff)
			}
		})
	}
}

// testImage returns an h×w RGB image, HWC, with values 0..255.
func testImage(h, w int, pixel func(y, x, c int) float32) []float32 {
	img := make([]float32, h*w*3)
	for y := range h {
		for x := range w {
			for c := range 3 {
				img[(y*w+x)*3+c] = pixel(y, x, c)
			}
		}
	}
	return img
}

// preprocess is the reference for the HWC encoder's in-graph preprocessing:
// normalize, CHW, zero-pad to 1024×1024.
func preprocess(img []float32, h, w int) []float32 {
	pm, ps := pixelMean(), pixelStd()
	out := make([]float32, 3*Side*Side)
	for c := range 3 {
		for y := range h {
			for x := range w {
				out[(c*Side+y)*Side+x] = (img[(y*w+x)*3+c] - pm[c]) / ps[c]
			}
		}
	}
	return out
}

// embedRef is the reference for the encoders' pool and projection.
func embedRef(chw []float32) []float64 {
	const k = Side / EmbedSide
	pooled := make([]float64, 3*EmbedSide*EmbedSide)
	for c := range 3 {
		for y := range Side {
			for x := range Side {
				pooled[(c*EmbedSide+y/k)*EmbedSide+x/k] += float64(chw[(c*Side+y)*Side+x]) / (k * k)
			}
		}
	}
	wt, b := EmbedWeights()
	out := make([]float64, EmbedDim*EmbedSide*EmbedSide)
	for o := range EmbedDim {
		for i := range EmbedSide * EmbedSide {
			v := float64(b[o])
			for c := range 3 {
				v += float64(wt[o*3+c]) * pooled[c*EmbedSide*EmbedSide+i]
			}
			out[o*EmbedSide*EmbedSide+i] = v
		}
	}
	return out
}

func runEncoder(tb testing.TB, s *onnxrt.Session, in onnxrt.Tensor) onnxrt.Tensor {
	tb.Helper()
	out, err := s.Run(context.Background(), []onnxrt.Tensor{in})
	if err != nil {
		tb.Fatalf("run encoder: %v", err)
	}
	want := []int64{1, EmbedDim, EmbedSide, EmbedSide}
	if diff := cmp.Diff(out[0].Shape, want); diff != "" {
		tb.Fatalf("image_embeddings shape (-got +want):\n%s", diff)
	}
	return out[0]
}

func TestEncoders(t *testing.T) {
	pattern := func(y, x, c int) float32 { return float32((x*3 + y*5 + c*101) % 256) }
	hwc := newSession(t, EncoderHWC(), nil)
	nchw := newSession(t, EncoderNCHW(), nil)
	tests := []struct {
		name string
		h, w int
	}{
		{"landscape 1024x576", 576, 1024},
		{"portrait 700x1024", 1024, 700},
		{"square 1024", 1024, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := testImage(tt.h, tt.w, pattern)
			chw := preprocess(img, tt.h, tt.w)
			want := embedRef(chw)
			got := runEncoder(t, hwc, onnxrt.NewFloat32(img, int64(tt.h), int64(tt.w), 3))
			gotNCHW := runEncoder(t, nchw, onnxrt.NewFloat32(chw, 1, 3, Side, Side))
			bad := 0
			for i, w := range want {
				if !near(float64(got.Float32[i]), w) || !near(float64(gotNCHW.Float32[i]), w) {
					if bad++; bad <= 3 {
						t.Errorf("embedding %d: hwc %v, nchw %v, want %v", i, got.Float32[i], gotNCHW.Float32[i], w)
					}
				}
			}
		})
	}
}

func TestIoUFollowsEncoder(t *testing.T) {
	const h, w = 576, 1024
	enc := newSession(t, EncoderHWC(), nil)
	dec := newSession(t, DecoderSingle(), decoderInputNames)
	iou := map[string]float32{}
	for _, tt := range []struct {
		name  string
		value float32
	}{{"black", 0}, {"white", 255}} {
		t.Run(tt.name, func(t *testing.T) {
			img := testImage(h, w, func(int, int, int) float32 { return tt.value })
			emb := runEncoder(t, enc, onnxrt.NewFloat32(img, h, w, 3))
			out := runDecoder(t, dec, decoderRun{embeddings: emb.Float32, prompt: click(512, 288, h, w), h: h, w: w})
			got := out.iou.Float32[0]
			if want := 0.5*sigmoid(mean(emb.Float32)) + SingleIoUOffset; !near(float64(got), want) {
				t.Errorf("iou %v, want 0.5·sigmoid(mean embedding)+%v = %v", got, SingleIoUOffset, want)
			}
			iou[tt.name] = got
		})
	}
	if iou["black"] == iou["white"] {
		t.Errorf("black and white images give the same IoU %v, want different", iou["black"])
	}
}

func TestWrongShapeIsAnError(t *testing.T) {
	dec := newSession(t, DecoderSingle(), decoderInputNames)
	good := decoderRun{prompt: click(10, 10, 100, 100), h: 100, w: 100}
	tests := []struct {
		name    string
		session *onnxrt.Session
		inputs  []onnxrt.Tensor
	}{
		{"nchw encoder at 512", newSession(t, EncoderNCHW(), nil),
			[]onnxrt.Tensor{onnxrt.NewFloat32(make([]float32, 3*512*512), 1, 3, 512, 512)}},
		{"hwc encoder with 4 channels", newSession(t, EncoderHWC(), nil),
			[]onnxrt.Tensor{onnxrt.NewFloat32(make([]float32, 64*64*4), 64, 64, 4)}},
		{"decoder with 32x32 embeddings", dec, func() []onnxrt.Tensor {
			in := good.inputs()
			in[0] = onnxrt.NewFloat32(make([]float32, 256*32*32), 1, 256, 32, 32)
			return in
		}()},
		{"decoder with int64 orig_im_size", dec, func() []onnxrt.Tensor {
			in := good.inputs()
			in[5] = onnxrt.NewInt64([]int64{100, 100}, 2)
			return in
		}()},
		{"decoder with flat point_coords", dec, func() []onnxrt.Tensor {
			in := good.inputs()
			in[1] = onnxrt.NewFloat32([]float32{10, 10, 0, 0}, 4)
			return in
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.session.Run(context.Background(), tt.inputs)
			if err == nil {
				t.Fatalf("run succeeded with outputs %v, want an error", out)
			}
			t.Logf("error: %v", err)
		})
	}
	// The session still works afterwards.
	runDecoder(t, dec, good)
}

func TestConcurrentDecoderRuns(t *testing.T) {
	const h, w = 1080, 1920
	const goroutines, runs = 8, 10
	s := newSession(t, DecoderSingle(), decoderInputNames)
	errs := make(chan error, goroutines*runs)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range runs {
				x := float64(100 + 200*g + i)
				out, err := s.Run(context.Background(), decoderRun{prompt: click(x, 540, h, w), h: h, w: w}.inputs())
				if err != nil {
					errs <- fmt.Errorf("goroutine %d run %d: %w", g, i, err)
					continue
				}
				if got := out[0].Float32[540*w+int(x)]; got != 1 {
					errs <- fmt.Errorf("goroutine %d run %d: logit at the click %v, want 1", g, i, got)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func benchmarkDecoder(b *testing.B, model []byte) {
	const h, w = 1080, 1920
	s := newSession(b, model, decoderInputNames)
	in := decoderRun{prompt: click(960, 540, h, w), h: h, w: w}.inputs()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoderSingle1080p(b *testing.B) { benchmarkDecoder(b, DecoderSingle()) }

func BenchmarkDecoderMulti1080p(b *testing.B) { benchmarkDecoder(b, DecoderMulti()) }

func BenchmarkEncoderHWC1024x576(b *testing.B) {
	const h, w = 576, 1024
	s := newSession(b, EncoderHWC(), nil)
	in := []onnxrt.Tensor{onnxrt.NewFloat32(testImage(h, w, func(y, x, c int) float32 { return float32((x + y + c) % 256) }), h, w, 3)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
