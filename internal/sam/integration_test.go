package sam_test

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

// These tests run the pipeline through ONNX Runtime with the stand-in
// models of internal/standin, whose decoders paint a disc of radius
// 0.1·max(W, H) around the first positive click (or the box centre) and
// whose IoU is 0.5·sigmoid(mean(embedding)) plus a per-mask offset.

func initORT(tb testing.TB) { onnxrttest.Init(tb) }

func loadStandin(tb testing.TB, enc, dec string) *sam.Model {
	tb.Helper()
	files := standin.Files()
	m, err := sam.Load(files[enc], files[dec], sam.Options{IntraOpThreads: 1})
	if err != nil {
		tb.Fatalf("Load(%s, %s): %v", enc, dec, err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// testImage returns a w×h JPEG-like image whose content depends on seed.
func testImage(w, h, seed int) image.Image {
	m := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			m.Y[m.YOffset(x, y)] = uint8((x*(seed+1) + y*(seed+3)) / 7)
		}
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(i*seed), uint8(i/(seed+1))
	}
	return m
}

// maskStats returns the centroid, in pixel indices, and the area of a mask.
func maskStats(m *sam.Mask) (cx, cy, area float64) {
	for y := range m.Height {
		row := m.Pix[y*m.Width : (y+1)*m.Width]
		for x, v := range row {
			switch v {
			case 0:
			case 255:
				cx += float64(x)
				cy += float64(y)
				area++
			default:
				return math.NaN(), math.NaN(), math.NaN()
			}
		}
	}
	return cx / area, cy / area, area
}

func mean(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

func TestStandinDiscs(t *testing.T) {
	initORT(t)
	encoders := []struct{ file, layout string }{
		{standin.EncoderHWCFile, sam.LayoutHWC},
		{standin.EncoderNCHWFile, sam.LayoutNCHW},
	}
	decoders := []struct {
		file   string
		offset float32
	}{
		{standin.DecoderSingleFile, standin.SingleIoUOffset},
		{standin.DecoderMultiFile, standin.MultiIoUOffsets()[2]},
	}
	sizes := [][2]int{{1920, 1080}, {1080, 1920}, {640, 426}, {2048, 1024}}
	// Clicks as fractions of the image, each at least the disc radius from
	// the edges.
	clicks := [][2]float64{{0.5, 0.5}, {0.3, 0.4}, {0.75, 0.62}, {0.2, 0.8}}
	for _, enc := range encoders {
		for _, dec := range decoders {
			t.Run(enc.layout+"/"+dec.file, func(t *testing.T) {
				m := loadStandin(t, enc.file, dec.file)
				if got := m.Layout(); got != enc.layout {
					t.Errorf("Layout() = %q, want %q", got, enc.layout)
				}
				for i, s := range sizes {
					w, h := s[0], s[1]
					e, err := m.Encode(context.Background(), testImage(w, h, i))
					if err != nil {
						t.Fatalf("Encode %d×%d: %v", w, h, err)
					}
					if e.Width != w || e.Height != h || len(e.Data) != 256*64*64 {
						t.Fatalf("embedding %d×%d with %d values, want %d×%d with %d", e.Width, e.Height, len(e.Data), w, h, 256*64*64)
					}
					r := 0.1 * float64(max(w, h))
					wantScore := 0.5/(1+math.Exp(-mean(e.Data))) + float64(dec.offset)
					check := func(name string, p sam.Prompt, x, y int) {
						t.Helper()
						mask, err := m.Decode(context.Background(), e, p)
						if err != nil {
							t.Fatalf("%d×%d %s: Decode: %v", w, h, name, err)
						}
						if mask.Width != w || mask.Height != h || len(mask.Pix) != w*h {
							t.Fatalf("%d×%d %s: mask %d×%d with %d bytes", w, h, name, mask.Width, mask.Height, len(mask.Pix))
						}
						cx, cy, area := maskStats(mask)
						if math.Abs(cx-float64(x)) > 1 || math.Abs(cy-float64(y)) > 1 {
							t.Errorf("%d×%d %s: centroid (%.2f, %.2f), want (%d, %d) within 1 px", w, h, name, cx, cy, x, y)
						}
						if want := math.Pi * r * r; math.Abs(area-want)/want > 0.02 {
							t.Errorf("%d×%d %s: area %.0f, want %.0f within 2%%", w, h, name, area, want)
						}
						if math.Abs(float64(mask.Score)-wantScore) > 1e-4 {
							t.Errorf("%d×%d %s: score %v, want %.5f", w, h, name, mask.Score, wantScore)
						}
					}
					for _, c := range clicks {
						x, y := int(c[0]*float64(w)), int(c[1]*float64(h))
						check(fmt.Sprintf("click (%d, %d)", x, y), sam.Prompt{Points: []sam.Point{{X: x, Y: y, Positive: true}}}, x, y)
					}
					// The first positive point wins over a negative one before it.
					x, y := w/2, h/3+10
					check("negative then positive", sam.Prompt{Points: []sam.Point{{X: 10, Y: 10}, {X: x, Y: y, Positive: true}}}, x, y)
					// A box alone: disc at its centre.
					x0, y0, x1, y1 := w/3, h/3, w/3+200, h/3+100
					check("box", sam.Prompt{Box: &sam.Box{X0: x0, Y0: y0, X1: x1, Y1: y1}}, (x0+x1)/2, (y0+y1)/2)
				}
			})
		}
	}
}

func TestStandinScoreDependsOnImage(t *testing.T) {
	initORT(t)
	m := loadStandin(t, standin.EncoderHWCFile, standin.DecoderSingleFile)
	ctx := context.Background()
	score := func(img image.Image) float32 {
		t.Helper()
		e, err := m.Encode(ctx, img)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		mask, err := m.Decode(ctx, e, sam.Prompt{Points: []sam.Point{{X: 50, Y: 40, Positive: true}}})
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		return mask.Score
	}
	dark, light := score(grayImage(100, 80, 10)), score(grayImage(100, 80, 240))
	if dark == light {
		t.Errorf("dark and light images both score %v, want different scores", dark)
	}
}

func grayImage(w, h int, v uint8) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = v
	}
	return m
}

// TestStandinConcurrent encodes and decodes from 8 goroutines at once and
// checks every result against a sequential run.
func TestStandinConcurrent(t *testing.T) {
	initORT(t)
	m := loadStandin(t, standin.EncoderHWCFile, standin.DecoderMultiFile)
	ctx := context.Background()
	type result struct {
		score      float32
		cx, cy, ar float64
	}
	sizes := [][2]int{{640, 426}, {1080, 1920}, {800, 600}, {1920, 1080}}
	run := func(i int) (result, error) {
		s := sizes[i%len(sizes)]
		e, err := m.Encode(ctx, testImage(s[0], s[1], i))
		if err != nil {
			return result{}, err
		}
		p := sam.Prompt{Points: []sam.Point{{X: s[0]/2 + i, Y: s[1] / 2, Positive: true}}}
		mask, err := m.Decode(ctx, e, p)
		if err != nil {
			return result{}, err
		}
		cx, cy, ar := maskStats(mask)
		return result{mask.Score, cx, cy, ar}, nil
	}
	const workers, rounds = 8, 3
	want := make([]result, workers)
	for i := range workers {
		r, err := run(i)
		if err != nil {
			t.Fatalf("sequential run %d: %v", i, err)
		}
		want[i] = r
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for i := range workers {
		wg.Go(func() {
			for range rounds {
				got, err := run(i)
				if err != nil {
					errs <- fmt.Errorf("run %d: %w", i, err)
					return
				}
				if got != want[i] {
					errs <- fmt.Errorf("run %d: got %+v, want %+v", i, got, want[i])
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

func TestStandinLoadErrors(t *testing.T) {
	initORT(t)
	files := standin.Files()
	tests := []struct {
		name     string
		enc, dec []byte
		wantErr  string
	}{
		{
			name: "decoder as encoder", enc: files[standin.DecoderSingleFile], dec: files[standin.DecoderSingleFile],
			wantErr: "load encoder: encoder has 6 inputs",
		},
		{
			name: "encoder as decoder", enc: files[standin.EncoderHWCFile], dec: files[standin.EncoderNCHWFile],
			wantErr: "decoder lacks input image_embeddings, input point_coords, input point_labels, input mask_input, input has_mask_input, input orig_im_size, output iou_predictions, output low_res_masks",
		},
		{
			name: "not onnx", enc: []byte("not a model"), dec: files[standin.DecoderSingleFile],
			wantErr: "load encoder:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := sam.Load(tt.enc, tt.dec, sam.Options{})
			if err == nil {
				m.Close()
				t.Fatalf("got no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestStandinLoadFiles(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	files := standin.Files()
	for _, name := range []string{standin.EncoderNCHWFile, standin.DecoderMultiFile} {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := sam.LoadFiles(filepath.Join(dir, standin.EncoderNCHWFile), filepath.Join(dir, standin.DecoderMultiFile), sam.Options{})
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	defer m.Close()
	if got := m.Layout(); got != sam.LayoutNCHW {
		t.Errorf("Layout() = %q, want %q", got, sam.LayoutNCHW)
	}
}

func TestLoadFilesMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := sam.LoadFiles(filepath.Join(dir, "enc.onnx"), filepath.Join(dir, "dec.onnx"), sam.Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "open encoder") {
		t.Errorf("got %v, want an open encoder error wrapping os.ErrNotExist", err)
	}
}

func TestStandinCancel(t *testing.T) {
	initORT(t)
	m := loadStandin(t, standin.EncoderHWCFile, standin.DecoderSingleFile)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Encode(ctx, testImage(64, 48, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Encode: got %v, want context.Canceled", err)
	}
}

func BenchmarkEncodeStandin(b *testing.B) {
	initORT(b)
	for _, bm := range []struct{ name, enc string }{
		{"hwc", standin.EncoderHWCFile},
		{"nchw", standin.EncoderNCHWFile},
	} {
		b.Run(bm.name, func(b *testing.B) {
			m := loadStandin(b, bm.enc, standin.DecoderSingleFile)
			img := testImage(1920, 1080, 1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Encode(context.Background(), img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode1920x1080 is a whole Decode through ONNX Runtime with the
// stand-in decoders; BenchmarkPostprocess1920x1080 is its Go part alone.
func BenchmarkDecode1920x1080(b *testing.B) {
	initORT(b)
	for _, bm := range []struct{ name, dec string }{
		{"single", standin.DecoderSingleFile},
		{"multi", standin.DecoderMultiFile},
	} {
		b.Run(bm.name, func(b *testing.B) {
			m := loadStandin(b, standin.EncoderHWCFile, bm.dec)
			e, err := m.Encode(context.Background(), testImage(1920, 1080, 1))
			if err != nil {
				b.Fatal(err)
			}
			p := sam.Prompt{Points: []sam.Point{{X: 900, Y: 500, Positive: true}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Decode(context.Background(), e, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
