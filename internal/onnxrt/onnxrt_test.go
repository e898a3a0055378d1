package onnxrt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

func libPath(tb testing.TB) string { return onnxrttest.LibPath(tb) }

func initORT(tb testing.TB) string { return onnxrttest.Init(tb) }

func newSession(tb testing.TB, model []byte, inputs, outputs []string) *onnxrt.Session {
	return onnxrttest.NewSession(tb, model, inputs, outputs)
}

// decoderInputs is a valid input set for the stand-in decoders: one click on
// an h×w image, in the model's input order.
func decoderInputs(h, w int) []onnxrt.Tensor {
	return []onnxrt.Tensor{
		onnxrt.NewFloat32(make([]float32, 256*64*64), 1, 256, 64, 64),
		onnxrt.NewFloat32([]float32{10, 20, 0, 0}, 1, 2, 2),
		onnxrt.NewFloat32([]float32{1, -1}, 1, 2),
		onnxrt.NewFloat32(make([]float32, 256*256), 1, 1, 256, 256),
		onnxrt.NewFloat32([]float32{0}, 1),
		onnxrt.NewFloat32([]float32{float32(h), float32(w)}, 2),
	}
}

func TestTensorLen(t *testing.T) {
	tests := []struct {
		name  string
		shape []int64
		want  int
	}{
		{"scalar", nil, 1},
		{"vector", []int64{7}, 7},
		{"image", []int64{1, 3, 4, 5}, 60},
		{"empty", []int64{2, 0, 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := onnxrt.NewFloat32(nil, tt.shape...).Len(); got != tt.want {
				t.Errorf("Len() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDataTypeString(t *testing.T) {
	tests := []struct {
		t    onnxrt.DataType
		want string
	}{
		{onnxrt.Float32, "float"},
		{onnxrt.Uint8, "uint8"},
		{onnxrt.Int32, "int32"},
		{onnxrt.Int64, "int64"},
		{onnxrt.Unsupported, "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInit(t *testing.T) {
	lib := libPath(t)
	v1 := initORT(t)
	if v1 == "" {
		t.Fatal("Init returned an empty version")
	}
	v2, err := onnxrt.Init(lib)
	if err != nil {
		t.Fatalf("second Init with the same path: %v", err)
	}
	if v2 != v1 {
		t.Errorf("second Init version %q, want %q", v2, v1)
	}
	if got := onnxrt.Version(); got != v1 {
		t.Errorf("Version() = %q, want %q", got, v1)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if _, err := onnxrt.Init(other); err == nil {
		t.Errorf("Init(%q) after Init(%q) succeeded, want an error", other, lib)
	}
	if got := onnxrt.Version(); got != v1 {
		t.Errorf("after a failed Init, Version() = %q, want %q", got, v1)
	}
}

func TestSignature(t *testing.T) {
	decoderIn := []onnxrt.Info{
		{Name: "image_embeddings", Shape: []int64{1, 256, 64, 64}, Type: onnxrt.Float32},
		{Name: "point_coords", Shape: []int64{1, -1, 2}, Type: onnxrt.Float32},
		{Name: "point_labels", Shape: []int64{1, -1}, Type: onnxrt.Float32},
		{Name: "mask_input", Shape: []int64{1, 1, 256, 256}, Type: onnxrt.Float32},
		{Name: "has_mask_input", Shape: []int64{1}, Type: onnxrt.Float32},
		{Name: "orig_im_size", Shape: []int64{2}, Type: onnxrt.Float32},
	}
	decoderOut := func(m int64) []onnxrt.Info {
		return []onnxrt.Info{
			{Name: "masks", Shape: []int64{1, m, -1, -1}, Type: onnxrt.Float32},
			{Name: "iou_predictions", Shape: []int64{1, m}, Type: onnxrt.Float32},
			{Name: "low_res_masks", Shape: []int64{1, m, 256, 256}, Type: onnxrt.Float32},
		}
	}
	embeddings := []onnxrt.Info{{Name: "image_embeddings", Shape: []int64{1, 256, 64, 64}, Type: onnxrt.Float32}}
	tests := []struct {
		name    string
		model   []byte
		inputs  []onnxrt.Info
		outputs []onnxrt.Info
	}{
		{"encoder_hwc", standin.EncoderHWC(),
			[]onnxrt.Info{{Name: "input_image", Shape: []int64{-1, -1, 3}, Type: onnxrt.Float32}}, embeddings},
		{"encoder_nchw", standin.EncoderNCHW(),
			[]onnxrt.Info{{Name: "input_image", Shape: []int64{1, 3, 1024, 1024}, Type: onnxrt.Float32}}, embeddings},
		{"decoder_single", standin.DecoderSingle(), decoderIn, decoderOut(1)},
		{"decoder_multi", standin.DecoderMulti(), decoderIn, decoderOut(4)},
	}
	names := func(infos []onnxrt.Info) []string {
		var out []string
		for _, i := range infos {
			out = append(out, i.Name)
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.model, nil, nil)
			if diff := cmp.Diff(s.Inputs(), tt.inputs); diff != "" {
				t.Errorf("Inputs() (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(s.Outputs(), tt.outputs); diff != "" {
				t.Errorf("Outputs() (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(s.InputNames(), names(tt.inputs)); diff != "" {
				t.Errorf("InputNames() (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(s.OutputNames(), names(tt.outputs)); diff != "" {
				t.Errorf("OutputNames() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNewSessionErrors(t *testing.T) {
	initORT(t)
	dec := standin.DecoderSingle()
	tests := []struct {
		name  string
		model []byte
	}{
		{"not a model", []byte("not an onnx model")},
		{"truncated model", dec[:len(dec)/2]},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := onnxrt.NewSession(tt.model, nil, nil, onnxrt.Options{})
			if err == nil {
				s.Close()
				t.Fatal("NewSession succeeded, want an error")
			}
		})
	}
}

// TestUnknownNames checks that names the model lacks fail no later than the
// first Run. (ONNX Runtime accepts them when the session is created.)
func TestUnknownNames(t *testing.T) {
	initORT(t)
	all := []string{"image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"}
	tests := []struct {
		name            string
		inputs, outputs []string
		want            string
	}{
		{"input", append([]string{"image"}, all[1:]...), nil, "image"},
		{"output", nil, []string{"scores"}, "scores"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := onnxrt.NewSession(standin.DecoderSingle(), tt.inputs, tt.outputs, onnxrt.Options{IntraOpThreads: 1})
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q, want it to name %q", err, tt.want)
				}
				return
			}
			defer s.Close()
			_, err = s.Run(context.Background(), decoderInputs(30, 40))
			if err == nil {
				t.Fatalf("run with the unknown name %q succeeded, want an error", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestNewSessionFile(t *testing.T) {
	initORT(t)
	path := filepath.Join(t.TempDir(), "decoder.onnx")
	if err := os.WriteFile(path, standin.DecoderSingle(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := onnxrt.NewSessionFile(path, nil, nil, onnxrt.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatalf("NewSessionFile: %v", err)
	}
	defer s.Close()
	out, err := s.Run(context.Background(), decoderInputs(30, 40))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if diff := cmp.Diff(out[0].Shape, []int64{1, 1, 30, 40}); diff != "" {
		t.Errorf("masks shape (-got +want):\n%s", diff)
	}
	if _, err := onnxrt.NewSessionFile(filepath.Join(t.TempDir(), "missing.onnx"), nil, nil, onnxrt.Options{}); err == nil {
		t.Error("NewSessionFile of a missing file succeeded, want an error")
	}
}

func TestRun(t *testing.T) {
	s := newSession(t, standin.DecoderMulti(), nil, nil)
	out, err := s.Run(context.Background(), decoderInputs(30, 40))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var shapes [][]int64
	for _, o := range out {
		if o.Type != onnxrt.Float32 || len(o.Float32) != o.Len() {
			t.Errorf("output type %v with %d floats for shape %v, want float with %d", o.Type, len(o.Float32), o.Shape, o.Len())
		}
		shapes = append(shapes, o.Shape)
	}
	if diff := cmp.Diff(shapes, [][]int64{{1, 4, 30, 40}, {1, 4}, {1, 4, 256, 256}}); diff != "" {
		t.Errorf("output shapes (-got +want):\n%s", diff)
	}
}

func TestRunSelectedOutputs(t *testing.T) {
	s := newSession(t, standin.DecoderMulti(), nil, []string{"iou_predictions"})
	out, err := s.Run(context.Background(), decoderInputs(30, 40))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	if diff := cmp.Diff(out[0].Shape, []int64{1, 4}); diff != "" {
		t.Errorf("iou_predictions shape (-got +want):\n%s", diff)
	}
}

func TestRunInputErrors(t *testing.T) {
	s := newSession(t, standin.DecoderSingle(), nil, nil)
	with := func(i int, t onnxrt.Tensor) []onnxrt.Tensor {
		in := decoderInputs(30, 40)
		in[i] = t
		return in
	}
	tests := []struct {
		name   string
		inputs []onnxrt.Tensor
		want   string // a fragment of the error
	}{
		{"no inputs", nil, "got 0 inputs, want 6"},
		{"one input too few", decoderInputs(30, 40)[:5], "got 5 inputs, want 6"},
		{"one input too many", append(decoderInputs(30, 40), onnxrt.NewFloat32([]float32{1}, 1)), "got 7 inputs, want 6"},
		{"data shorter than the shape", with(5, onnxrt.NewFloat32([]float32{30}, 2)), "needs 2 elements, have 1"},
		{"data longer than the shape", with(4, onnxrt.NewFloat32([]float32{0, 0}, 1)), "needs 1 elements, have 2"},
		{"negative dimension", with(4, onnxrt.NewFloat32(nil, -1)), "negative dimension"},
		{"type without its slice", with(4, onnxrt.Tensor{Shape: []int64{1}, Type: onnxrt.Float32, Int64: []int64{0}}), "needs 1 elements, have 0"},
		{"unsupported type", with(4, onnxrt.Tensor{Shape: []int64{1}}), "not supported"},
		{"wrong element type", with(5, onnxrt.NewInt64([]int64{30, 40}, 2)), "data type"},
		{"wrong rank", with(1, onnxrt.NewFloat32([]float32{10, 20, 0, 0}, 4)), "rank"},
		{"wrong fixed dimension", with(0, onnxrt.NewFloat32(make([]float32, 256*32*32), 1, 256, 32, 32)), "dimensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(context.Background(), tt.inputs)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := s.Run(context.Background(), decoderInputs(30, 40)); err != nil {
		t.Errorf("run after the failures: %v", err)
	}
}

func TestRunCancelled(t *testing.T) {
	s := newSession(t, standin.DecoderMulti(), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The run is terminated, or finishes before the termination lands;
	// either way it returns cleanly, and any error says why.
	const runs = 20
	failed := 0
	for range runs {
		out, err := s.Run(ctx, decoderInputs(300, 400))
		switch {
		case err == nil:
			if len(out) != 3 || len(out[0].Float32) != 4*300*400 {
				t.Fatalf("cancelled run returned %d outputs, want 3 complete ones", len(out))
			}
		case errors.Is(err, context.Canceled):
			failed++
		default:
			t.Fatalf("cancelled run: error %v, want one wrapping context.Canceled", err)
		}
	}
	t.Logf("%d of %d cancelled runs were terminated", failed, runs)
	if _, err := s.Run(context.Background(), decoderInputs(300, 400)); err != nil {
		t.Errorf("run after cancelled runs: %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	s := newSession(t, standin.DecoderSingle(), nil, nil)
	const goroutines, runs = 4, 10
	errs := make(chan error, goroutines*runs)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range runs {
				if _, err := s.Run(ctx, decoderInputs(120, 160)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent run: %v", err)
	}
}
