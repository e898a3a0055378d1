package predict_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/httpapi"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/predict"
	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
)

// fakeImages serves W×H images whose top-left pixel encodes the reference,
// so the fake segmenter can check it got the right image.
type fakeImages struct {
	w, h    int
	fetches atomic.Int64
	err     error
	gate    chan struct{}                  // if set, Fetch waits for it
	gateFor func(ref string) chan struct{} // if set, Fetch waits for the one it returns
	panics  bool                           // if set, Fetch panics
}

func (f *fakeImages) Key(ctx context.Context, ref string, taskID int64, project string) (string, error) {
	if strings.HasPrefix(ref, "bad:") {
		return "", &predict.Error{Status: 400, Msg: "unsupported image reference"}
	}
	return "key:" + ref, nil
}

func (f *fakeImages) Fetch(ctx context.Context, ref string, taskID int64, project string) (image.Image, error) {
	f.fetches.Add(1)
	if f.panics {
		panic("fetch exploded")
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.gateFor != nil {
		if g := f.gateFor(ref); g != nil {
			<-g
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	img := image.NewGray(image.Rect(0, 0, f.w, f.h))
	img.Pix[0] = byte(len(ref))
	return img, nil
}

// fakeSAM "encodes" an image into an embedding that remembers the image's
// marker, and "decodes" a mask with only the clicked pixels set.
type fakeSAM struct {
	encodes    atomic.Int64
	started    chan struct{} // if set, Encode signals here
	gate       chan struct{} // if set, Encode waits for it
	decodeGate chan struct{} // if set, Decode waits for it
}

func (f *fakeSAM) Encode(ctx context.Context, img image.Image) (*sam.Embedding, error) {
	f.encodes.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	g := img.(*image.Gray)
	b := img.Bounds()
	return &sam.Embedding{Data: []float32{float32(g.Pix[0])}, Width: b.Dx(), Height: b.Dy()}, nil
}

func (f *fakeSAM) Decode(ctx context.Context, e *sam.Embedding, p sam.Prompt) (*sam.Mask, error) {
	if f.decodeGate != nil {
		<-f.decodeGate
	}
	if len(p.Points) == 0 && p.Box == nil {
		return nil, sam.ErrEmptyPrompt
	}
	m := &sam.Mask{Width: e.Width, Height: e.Height, Pix: make([]byte, e.Width*e.Height), Score: 0.75}
	for _, pt := range p.Points {
		if pt.X < e.Width && pt.Y < e.Height {
			m.Pix[pt.Y*e.Width+pt.X] = 255
		}
	}
	if b := p.Box; b != nil {
		for y := b.Y0; y < b.Y1 && y < e.Height; y++ {
			for x := b.X0; x < b.X1 && x < e.Width; x++ {
				m.Pix[y*e.Width+x] = 255
			}
		}
	}
	return m, nil
}

func readRequest(t *testing.T, name string) *ls.PredictRequest {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var req ls.PredictRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

func TestNoContextGivesNoResults(t *testing.T) {
	imgs, seg := &fakeImages{w: 4, h: 4}, &fakeSAM{}
	s := predict.New(imgs, seg, predict.Options{})
	req := readRequest(t, "ml_predict_request_sam_keypoint.json")
	req.Params.Context = nil
	resp, err := s.Predict(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(resp)
	if string(b) != `{"results":[]}` {
		t.Errorf("got %s, want {\"results\":[]}", b)
	}
	if imgs.fetches.Load() != 0 || seg.encodes.Load() != 0 {
		t.Error("a request without context did work")
	}
}

func TestKeypointRegion(t *testing.T) {
	imgs, seg := &fakeImages{w: 1080, h: 1080}, &fakeSAM{}
	s := predict.New(imgs, seg, predict.Options{ModelVersion: "SamMLBackend-v0.0.1"})
	resp, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Result) != 1 {
		t.Fatalf("got %+v, want one prediction with one region", resp)
	}
	p := resp.Results[0]
	r := p.Result[0]
	if p.ModelVersion != "SamMLBackend-v0.0.1" || p.Score != 0.75 || r.Score != 0.75 {
		t.Errorf("prediction %+v", p)
	}
	if len(r.ID) != 4 || r.FromName != "tag" || r.ToName != "image" || r.Type != "brushlabels" || r.Readonly ||
		r.ImageRotation != 0 || r.OriginalWidth != 1080 || r.OriginalHeight != 1080 ||
		r.Value.Format != "rle" || len(r.Value.BrushLabels) != 1 || r.Value.BrushLabels[0] != "Banana" {
		t.Errorf("region fields %+v", r)
	}
	words, err := rle.Decode(r.Value.RLE, 1080*1080*4)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != 1080*1080*4 {
		t.Fatalf("rle has %d words, want %d", len(words), 1080*1080*4)
	}
	// The fixture's click is at (533, 647).
	for i, w := range words {
		want := byte(0)
		if i/4 == 647*1080+533 {
			want = 255
		}
		if w != want {
			t.Fatalf("word %d (pixel %d,%d) = %d, want %d", i, (i/4)%1080, (i/4)/1080, w, want)
		}
	}
	// The JSON has exactly the reference's region keys.
	b, _ := json.Marshal(r)
	var keys map[string]json.RawMessage
	json.Unmarshal(b, &keys)
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	if len(got) != 10 {
		t.Errorf("region keys %v, want the reference's 10", got)
	}
}

// TestEditorSizeDiffers: the editor saw 1080×1080 but the image is
// 540×270. The click lands at the same percentage of the image, and the RLE
// has the editor's size, so the editor can draw it.
func TestEditorSizeDiffers(t *testing.T) {
	imgs, seg := &fakeImages{w: 540, h: 270}, &fakeSAM{}
	s := predict.New(imgs, seg, predict.Options{})
	resp, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_rectangle.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0].Result[0]
	if r.OriginalWidth != 1080 || r.OriginalHeight != 1080 {
		t.Errorf("region size %dx%d, want the editor's 1080x1080", r.OriginalWidth, r.OriginalHeight)
	}
	words, err := rle.Decode(r.Value.RLE, 1080*1080*4)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != 1080*1080*4 {
		t.Fatalf("rle has %d words, want the editor's 1080x1080x4", len(words))
	}
	// The box is x,y 50%..60%: pixels 540..648 of the editor's image.
	at := func(x, y int) byte { return words[4*(y*1080+x)] }
	if at(594, 594) != 255 || at(530, 594) != 0 || at(594, 700) != 0 {
		t.Errorf("mask at the box centre %d, left of it %d, below it %d; want 255, 0, 0", at(594, 594), at(530, 594), at(594, 700))
	}
}

// TestEditorSizeIsBounded: the request states the editor's size, and the
// mask is drawn at it; a size far from the image's is refused before any
// mask is made (1048576×1048576 once asked for a terabyte).
func TestEditorSizeIsBounded(t *testing.T) {
	s := predict.New(&fakeImages{w: 64, h: 48}, &fakeSAM{}, predict.Options{MaxPixels: 256 * 256})
	for _, size := range []float64{1 << 20, 40000, 257} {
		req := readRequest(t, "ml_predict_request_sam_keypoint.json")
		req.Params.Context.Result[0].OriginalWidth = ptr(size)
		req.Params.Context.Result[0].OriginalHeight = ptr(size)
		_, err := s.Predict(context.Background(), req)
		var pe *predict.Error
		if !errors.As(err, &pe) || pe.Status != 400 || !strings.Contains(pe.Msg, "is over the limit of 65536 pixels (MAX_IMAGE_PIXELS), and not the image's 64x48") {
			t.Errorf("editor %vx%v for a 64x48 image: %v; want a 400", size, size, err)
		}
	}
	for _, size := range [][2]float64{{48, 64}, {256, 256}} { // width and height swapped; the largest allowed
		req := readRequest(t, "ml_predict_request_sam_keypoint.json")
		req.Params.Context.Result[0].OriginalWidth = ptr(size[0])
		req.Params.Context.Result[0].OriginalHeight = ptr(size[1])
		if _, err := s.Predict(context.Background(), req); err != nil {
			t.Errorf("editor %vx%v for a 64x48 image: %v", size[0], size[1], err)
		}
	}
}

func TestBoxAlone(t *testing.T) {
	imgs, seg := &fakeImages{w: 1080, h: 1080}, &fakeSAM{}
	s := predict.New(imgs, seg, predict.Options{})
	resp, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_rectangle.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0].Result[0]
	if r.Value.BrushLabels[0] != "Orange" {
		t.Errorf("label %v, want Orange", r.Value.BrushLabels)
	}
	words, err := rle.Decode(r.Value.RLE, 1080*1080*4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, w := range words {
		if w == 255 {
			n++
		}
	}
	if want := 108 * 108 * 4; n != want { // box [540,540,648,648]
		t.Errorf("%d foreground words, want %d", n, want)
	}
}

func TestSecondClickUsesTheCache(t *testing.T) {
	imgs, seg := &fakeImages{w: 64, h: 48}, &fakeSAM{}
	var encodes, predictions atomic.Int64
	s := predict.New(imgs, seg, predict.Options{
		ObserveEncode: func(time.Duration) { encodes.Add(1) },
		Observe:       func(predict.Timings) { predictions.Add(1) },
	})
	req := readRequest(t, "ml_predict_request_sam_keypoint.json")
	req.Params.Context.Result[0].OriginalWidth = ptr(64)
	req.Params.Context.Result[0].OriginalHeight = ptr(48)
	for range 3 {
		if _, err := s.Predict(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Fetches != 1 || st.Encodes != 1 || st.CacheHits != 2 || st.CacheMisses != 1 {
		t.Errorf("stats %+v, want 1 fetch, 1 encode, 2 cache hits, 1 miss", st)
	}
	if encodes.Load() != 1 || predictions.Load() != 3 {
		t.Errorf("observed %d encodes and %d predictions, want 1 and 3", encodes.Load(), predictions.Load())
	}
	if imgs.fetches.Load() != 1 || seg.encodes.Load() != 1 {
		t.Errorf("fetched %d times and encoded %d times, want 1 and 1", imgs.fetches.Load(), seg.encodes.Load())
	}
}

func ptr(v float64) *float64 { return &v }

func TestConcurrentFirstClicksEncodeOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		imgs, seg := &fakeImages{w: 64, h: 48, gate: make(chan struct{})}, &fakeSAM{}
		s := predict.New(imgs, seg, predict.Options{})
		errs := make(chan error, 16)
		for range 16 {
			go func() {
				_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
				errs <- err
			}()
		}
		synctest.Wait() // all 16 are waiting, and the one fetch is blocked
		if n := imgs.fetches.Load(); n != 1 {
			t.Fatalf("16 concurrent first clicks started %d fetches, want 1", n)
		}
		close(imgs.gate)
		for range 16 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if imgs.fetches.Load() != 1 || seg.encodes.Load() != 1 {
			t.Errorf("fetched %d times and encoded %d times, want 1 and 1", imgs.fetches.Load(), seg.encodes.Load())
		}
		if st := s.Stats(); st.CacheHits != 0 || st.CacheMisses != 16 {
			t.Errorf("%d requests were served from the cache; all 16 should have shared the flight", st.CacheHits)
		}
	})
}

// markerSAM checks that every decode gets the embedding of the image the
// request named.
type markerSAM struct{ fakeSAM }

func (m *markerSAM) Decode(ctx context.Context, e *sam.Embedding, p sam.Prompt) (*sam.Mask, error) {
	mask, err := m.fakeSAM.Decode(ctx, e, p)
	if err != nil {
		return nil, err
	}
	mask.Score = e.Data[0] // the image's marker: len(ref)
	return mask, nil
}

func TestDifferentImagesInParallel(t *testing.T) {
	imgs, seg := &fakeImages{w: 32, h: 32}, &markerSAM{}
	s := predict.New(imgs, seg, predict.Options{EncoderConcurrency: 2})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range 64 {
		wg.Go(func() {
			req := readRequest(t, "ml_predict_request_sam_keypoint.json")
			ref := "/data/upload/1/" + strings.Repeat("x", i%8) + ".jpg"
			req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf("%q", ref))
			req.Params.Context.Result[0].OriginalWidth = ptr(32)
			req.Params.Context.Result[0].OriginalHeight = ptr(32)
			resp, err := s.Predict(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			if got := resp.Results[0].Score; got != float64(len(ref)) {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d predictions used another image's embedding", bad.Load())
	}
	if n := seg.encodes.Load(); n != 8 {
		t.Errorf("encoded %d times for 8 images, want 8", n)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*ls.PredictRequest)
		detail string
	}{
		{"no brush control", func(r *ls.PredictRequest) { r.LabelConfig = `<View><Image name="image" value="$image"/></View>` }, "no BrushLabels"},
		{"no tasks", func(r *ls.PredictRequest) { r.Tasks = nil }, "tasks is empty"},
		{"no image in data", func(r *ls.PredictRequest) { r.Tasks[0].Data = map[string]json.RawMessage{"text": []byte(`"x"`)} }, "has no data.image"},
		{"only other regions", func(r *ls.PredictRequest) {
			r.Params.Context.Result[0].Type = "choices"
			r.Params.Context.Result[0].Value = json.RawMessage(`{"choices":["A"]}`)
		}, "no keypoint and no rectangle"},
		{"bad image reference", func(r *ls.PredictRequest) { r.Tasks[0].Data["image"] = []byte(`"bad:x"`) }, "unsupported image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := predict.New(&fakeImages{w: 4, h: 4}, &fakeSAM{}, predict.Options{})
			req := readRequest(t, "ml_predict_request_sam_keypoint.json")
			tt.edit(req)
			_, err := s.Predict(context.Background(), req)
			var pe *predict.Error
			if !errors.As(err, &pe) || pe.Status != 400 || !strings.Contains(pe.Msg, tt.detail) {
				t.Errorf("err = %v, want a 400 containing %q", err, tt.detail)
			}
		})
	}
}

func TestFetchErrorKeepsItsType(t *testing.T) {
	want := &predict.Error{Status: 404, Msg: "image not found at /data/upload/1/2bd44c48-banana.jpg (404)"}
	imgs := &fakeImages{w: 4, h: 4, err: want}
	s := predict.New(imgs, &fakeSAM{}, predict.Options{})
	_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
	var pe *predict.Error
	if !errors.As(err, &pe) || pe != want {
		t.Errorf("err = %v, want the fetch error in the chain", err)
	}
	// A failure is not cached: the next click tries again.
	s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
	if n := imgs.fetches.Load(); n != 2 {
		t.Errorf("fetched %d times, want 2", n)
	}
}

func TestCancelledWaiterLeavesSharedWorkRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := &fakeSAM{gate: make(chan struct{})}
		s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		first, second := make(chan error), make(chan error)
		go func() {
			_, err := s.Predict(ctx, readRequest(t, "ml_predict_request_sam_keypoint.json"))
			first <- err
		}()
		go func() {
			_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
			second <- err
		}()
		synctest.Wait() // both wait on one encoder run
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled request: err = %v, want context.Canceled", err)
		}
		close(seg.gate)
		if err := <-second; err != nil {
			t.Errorf("the other request failed: %v", err)
		}
		if st := s.Stats(); st.Encodes != 1 {
			t.Errorf("stats %+v, want one shared encode", st)
		}
	})
}

// ctxSAM blocks in Encode until its context ends, like an ONNX Runtime run
// that is terminated.
type ctxSAM struct {
	fakeSAM
	stopped chan error
}

func (c *ctxSAM) Encode(ctx context.Context, img image.Image) (*sam.Embedding, error) {
	c.encodes.Add(1)
	<-ctx.Done()
	c.stopped <- ctx.Err()
	return nil, ctx.Err()
}

func TestLastWaiterLeavingCancelsTheWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := &ctxSAM{stopped: make(chan error, 1)}
		s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := s.Predict(ctx, readRequest(t, "ml_predict_request_sam_keypoint.json"))
			done <- err
		}()
		synctest.Wait()
		cancel()
		<-done
		if err := <-seg.stopped; !errors.Is(err, context.Canceled) {
			t.Errorf("encoder context: %v, want it cancelled once nobody waits", err)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// panicSAM panics in Encode, like a decoder bug on a hostile image.
type panicSAM struct{ fakeSAM }

func (p *panicSAM) Encode(ctx context.Context, img image.Image) (*sam.Embedding, error) {
	p.encodes.Add(1)
	panic("index out of range")
}

func TestPanicInEncodeIsAnErrorAndFreesTheSlot(t *testing.T) {
	seg := &panicSAM{}
	s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{EncoderConcurrency: 1})
	for i := range 3 { // with the slot leaked, the second would block forever
		_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
		if err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("attempt %d: err = %v, want an internal error", i, err)
		}
	}
	if n := seg.encodes.Load(); n != 3 {
		t.Errorf("encoded %d times, want 3", n)
	}
}

func TestCacheBoundAndOff(t *testing.T) {
	click := func(s *predict.Service, ref string) {
		t.Helper()
		req := readRequest(t, "ml_predict_request_sam_keypoint.json")
		req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf("%q", ref))
		if _, err := s.Predict(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// The fake's embeddings hold one float: 4 bytes of data plus the
	// struct, as Bytes counts them.
	one := (&sam.Embedding{Data: make([]float32, 1)}).Bytes()
	s := predict.New(&fakeImages{w: 8, h: 8}, &fakeSAM{}, predict.Options{CacheBytes: 2 * one})
	for _, ref := range []string{"/a.jpg", "/b.jpg", "/c.jpg", "/c.jpg", "/a.jpg"} {
		click(s, ref)
	}
	st := s.Stats()
	if st.Encodes != 4 || st.CacheHits != 1 || st.Evictions != 2 || st.CachedBytes != 2*one {
		t.Errorf("two-entry cache: stats %+v, want 4 encodes (a evicted by c), 1 hit, 2 evictions, %d bytes", st, 2*one)
	}
	off := predict.New(&fakeImages{w: 8, h: 8}, &fakeSAM{}, predict.Options{CacheBytes: -1})
	click(off, "/a.jpg")
	click(off, "/a.jpg")
	if st := off.Stats(); st.Encodes != 2 || st.CacheHits != 0 || st.CachedBytes != 0 {
		t.Errorf("cache off: stats %+v, want every click to encode", st)
	}
}

func TestCloseWaitsForImageWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := &fakeSAM{gate: make(chan struct{})}
		s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{})
		go s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
		synctest.Wait()
		closed := make(chan error)
		go func() { closed <- s.Close(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while an encode was running", err)
		default:
		}
		close(seg.gate)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		req := readRequest(t, "ml_predict_request_sam_keypoint.json")
		req.Tasks[0].Data["image"] = json.RawMessage(`"/data/upload/1/other.jpg"`)
		_, err := s.Predict(context.Background(), req)
		var pe *predict.Error
		if !errors.As(err, &pe) || pe.Status != 503 {
			t.Errorf("new image after Close: err = %v, want 503", err)
		}
	})
}

// TestCloseWaitsForDecoderRuns: the decoder runs in the request's own
// goroutine; Close must wait for it too, or the model could be freed under
// a running session when the HTTP server gave up waiting for handlers.
func TestCloseWaitsForDecoderRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := &fakeSAM{decodeGate: make(chan struct{})}
		s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{})
		predicted := make(chan error)
		go func() {
			_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
			predicted <- err
		}()
		synctest.Wait() // encoded; the decoder is running
		closed := make(chan error)
		go func() { closed <- s.Close(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a decoder run was under way", err)
		default:
		}
		close(seg.decodeGate)
		if err := <-predicted; err != nil {
			t.Errorf("the prediction under way at Close: %v", err)
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
		var pe *predict.Error
		if !errors.As(err, &pe) || pe.Status != 503 {
			t.Errorf("a click on the cached image after Close: err = %v, want 503", err)
		}
	})
}

// TestHealthStaysFastDuringInference blocks four predictions inside the
// encoder and checks that /health still answers within Label Studio's 1 s
// health timeout.
func TestHealthStaysFastDuringInference(t *testing.T) {
	seg := &fakeSAM{gate: make(chan struct{}), started: make(chan struct{}, 4)}
	svc := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{EncoderConcurrency: 4})
	api, err := httpapi.New(httpapi.Config{ModelVersion: "v"}, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	defer ts.Close()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			req := readRequest(t, "ml_predict_request_sam_keypoint.json")
			req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf(`"/data/upload/1/%d.jpg"`, i))
			b, _ := json.Marshal(req)
			resp, err := http.Post(ts.URL+"/predict", "application/json", strings.NewReader(string(b)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	for range 4 {
		<-seg.started // four encoders are running and blocked
	}
	client := &http.Client{Timeout: time.Second} // Label Studio's ML_TIMEOUT_HEALTH
	for _, path := range []string{"/health", "/", "/setup"} {
		method := "GET"
		if path == "/setup" {
			method = "POST"
		}
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(`{}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s while 4 predictions run: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s status %d", path, resp.StatusCode)
		}
	}
	close(seg.gate)
	wg.Wait()
}

type binderFunc func(project string, taskID int64, key, ref string) error

func (f binderFunc) CheckTask(_ context.Context, project string, taskID int64, key, ref string) error {
	return f(project, taskID, key, ref)
}

func TestBinderRefusesBeforeFetching(t *testing.T) {
	var got []any
	refuse := binderFunc(func(project string, taskID int64, key, ref string) error {
		got = []any{project, taskID, key, ref}
		return &predict.Error{Status: 403, Msg: "task 1 does not belong to project 1"}
	})
	imgs := &fakeImages{w: 8, h: 8}
	s := predict.New(imgs, &fakeSAM{}, predict.Options{Binder: refuse})
	_, err := s.Predict(context.Background(), readRequest(t, "ml_predict_request_sam_keypoint.json"))
	var pe *predict.Error
	if !errors.As(err, &pe) || pe.Status != 403 {
		t.Errorf("err = %v, want the binder's 403", err)
	}
	if want := []any{"1.1700000000", int64(1), "image", "/data/upload/1/2bd44c48-banana.jpg"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("binder got %v, want %v", got, want)
	}
	if n := imgs.fetches.Load(); n != 0 {
		t.Errorf("fetched %d times after a refusal, want 0", n)
	}
}

// TestFullQueueIsA503WithRetryAfter: with one encoder slot and a queue of
// one, a third image arriving while two wait is refused at once.
func TestFullQueueIsA503WithRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seg := &fakeSAM{gate: make(chan struct{})}
		s := predict.New(&fakeImages{w: 8, h: 8}, seg, predict.Options{EncoderConcurrency: 1, MaxQueue: 1})
		click := func(ref string) error {
			req := readRequest(t, "ml_predict_request_sam_keypoint.json")
			req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf("%q", ref))
			_, err := s.Predict(context.Background(), req)
			return err
		}
		errs := make(chan error, 2)
		go func() { errs <- click("/a.jpg") }()
		go func() { errs <- click("/b.jpg") }()
		synctest.Wait()
		err := click("/c.jpg")
		var pe *predict.Error
		if !errors.As(err, &pe) || pe.Status != 503 || pe.RetryAfterSeconds() <= 0 {
			t.Errorf("third image: %v, want a 503 with Retry-After", err)
		}
		close(seg.gate)
		for range 2 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if err := click("/c.jpg"); err != nil {
			t.Errorf("after the queue drained: %v", err)
		}
	})
}

// TestOneTenantCannotTakeEverySlot: organization a's images hang on a slow
// server; it may fill only three quarters of the queue and one of the two
// download slots, so organization b's first click still gets its mask.
func TestOneTenantCannotTakeEverySlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gateA := make(chan struct{})
		imgs := &fakeImages{w: 8, h: 8, gateFor: func(ref string) chan struct{} {
			if strings.HasPrefix(ref, "/a/") {
				return gateA
			}
			return nil
		}}
		s := predict.New(imgs, &fakeSAM{}, predict.Options{EncoderConcurrency: 1, MaxQueue: 3,
			TenantOf: func(key string) string { return strings.Split(key, "/")[1] }})
		click := func(ref string) error {
			req := readRequest(t, "ml_predict_request_sam_keypoint.json")
			req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf("%q", ref))
			_, err := s.Predict(context.Background(), req)
			return err
		}
		errs := make(chan error, 3)
		for i := range 3 { // all but a quarter of the 4 slots
			go func() { errs <- click(fmt.Sprintf("/a/%d.jpg", i)) }()
		}
		synctest.Wait()
		err := click("/a/4.jpg")
		var pe *predict.Error
		if !errors.As(err, &pe) || pe.Status != 503 || !strings.Contains(pe.Msg, "this organization's images") {
			t.Errorf("a fourth image of a: %v; want a 503 for its share", err)
		}
		if err := click("/b/1.jpg"); err != nil {
			t.Errorf("b's image while a's hang: %v", err)
		}
		close(gateA)
		for range 3 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if err := click("/a/4.jpg"); err != nil {
			t.Errorf("a's fourth image once its others are done: %v", err)
		}
	})
}

// TestPanicInFetchFreesTheSlots: a panicking download is an error, and
// leaves the download slots free.
func TestPanicInFetchFreesTheSlots(t *testing.T) {
	imgs := &fakeImages{w: 8, h: 8, panics: true}
	s := predict.New(imgs, &fakeSAM{}, predict.Options{TenantOf: func(string) string { return "a" }})
	for i := range 4 { // more than the download slots
		req := readRequest(t, "ml_predict_request_sam_keypoint.json")
		req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf(`"/x/%d.jpg"`, i))
		if _, err := s.Predict(context.Background(), req); err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("click %d: %v; want the internal error", i, err)
		}
	}
}

// TestDecodedImagesDoNotPileUp: while the encoder is busy, only the images
// holding the two download slots are fetched and decoded; the others wait
// before downloading, so memory does not grow with the queue.
func TestDecodedImagesDoNotPileUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		imgs, seg := &fakeImages{w: 8, h: 8}, &fakeSAM{gate: make(chan struct{})}
		s := predict.New(imgs, seg, predict.Options{EncoderConcurrency: 1, MaxQueue: 8})
		errs := make(chan error, 6)
		for i := range 6 {
			go func() {
				req := readRequest(t, "ml_predict_request_sam_keypoint.json")
				req.Tasks[0].Data["image"] = json.RawMessage(fmt.Sprintf(`"/img/%d.jpg"`, i))
				_, err := s.Predict(context.Background(), req)
				errs <- err
			}()
		}
		synctest.Wait()
		if n := imgs.fetches.Load(); n != 3 {
			t.Errorf("%d images fetched while the encoder is busy; want 3 (one encoding, two holding the download slots)", n)
		}
		close(seg.gate)
		for range 6 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}
