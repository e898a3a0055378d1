package app

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/credentials"
	"github.com/sam-ml-backend/sam-ml-backend/internal/httpapi"
	"github.com/sam-ml-backend/sam-ml-backend/internal/imagefetch"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsauth"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
	"github.com/sam-ml-backend/sam-ml-backend/internal/predict"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

func benchORT(b *testing.B) { onnxrttest.Init(b) }

// photoJPEG makes a photo-like w×h JPEG: smooth gradients plus noise, so the
// encoder and decoder work as they do on a camera picture.
func photoJPEG(b *testing.B, w, h int) []byte {
	b.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.Y[y*img.YStride+x] = uint8((x*255/w+y*255/h)/2) + uint8(r.IntN(24))
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			img.Cb[y*img.CStride+x] = uint8(96 + x*64/w)
			img.Cr[y*img.CStride+x] = uint8(160 - y*64/h)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// stageTotals sums the stage timings predict observes.
type stageTotals struct {
	n                       int
	decode, decoderRun, rle time.Duration
}

func (s *stageTotals) observe(t predict.Timings) {
	s.n++
	s.decode += t.Decode
	s.decoderRun += t.DecoderRun
	s.rle += t.RLE
}

// BenchmarkSecondClick1920x1080 is a click on an image whose embedding is
// cached, through the HTTP handler, with the stand-in single-mask decoder.
// It reports the time per stage; "outside-ort-ms" is everything but the
// decoder's ONNX Runtime run: JSON in and out, prompt assembly, the mask
// post-processing and the RLE.
func BenchmarkSecondClick1920x1080(b *testing.B) {
	benchORT(b)
	photo := photoJPEG(b, 1920, 1080)
	ls := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(photo)
	}))
	defer ls.Close()
	base, _ := url.Parse(ls.URL)
	fetcher, err := imagefetch.New(imagefetch.Config{LabelStudio: base})
	if err != nil {
		b.Fatal(err)
	}
	enc, dec := standin.Demo()
	model, err := sam.Load(enc, dec, sam.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer model.Close()
	var totals stageTotals
	svc := predict.New(images{f: fetcher}, model, predict.Options{Observe: totals.observe, Logger: slog.New(slog.DiscardHandler)})
	h, err := httpapi.New(httpapi.Config{ModelVersion: DemoModelVersion}, svc, nil)
	if err != nil {
		b.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join("..", "labelstudio", "testdata", "ml_predict_request_sam_keypoint.json"))
	if err != nil {
		b.Fatal(err)
	}
	var req map[string]any
	json.Unmarshal(fixture, &req)
	req["tasks"].([]any)[0].(map[string]any)["data"] = map[string]any{"image": "/data/upload/1/photo.jpg"}
	region := req["params"].(map[string]any)["context"].(map[string]any)["result"].([]any)[0].(map[string]any)
	region["original_width"], region["original_height"] = 1920, 1080
	body, _ := json.Marshal(req)

	click := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/predict", bytes.NewReader(body)))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		return rec.Body.Len()
	}
	click() // the first click fetches and encodes
	totals = stageTotals{}
	b.ReportAllocs()
	var respBytes int
	start := time.Now()
	for b.Loop() {
		respBytes = click()
	}
	elapsed := time.Since(start)
	if st := svc.Stats(); st.Encodes != 1 || st.Fetches != 1 {
		b.Fatalf("stats %+v: the benchmark must not fetch or encode again", st)
	}
	n := float64(totals.n)
	perMS := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(perMS(totals.decoderRun), "ort-run-ms")
	b.ReportMetric(perMS(totals.decode-totals.decoderRun), "postprocess-ms")
	b.ReportMetric(perMS(totals.rle), "rle-ms")
	b.ReportMetric(float64(elapsed.Microseconds())/1000/n-perMS(totals.decode)-perMS(totals.rle), "http-json-ms")
	b.ReportMetric(float64(elapsed.Microseconds())/1000/n-perMS(totals.decoderRun), "outside-ort-ms")
	b.ReportMetric(float64(respBytes), "resp-bytes")
}

// BenchmarkResolutionReal2025 resolves the credential of project 1 of the
// real 2025 Label Studio database, from the raw project string, through
// the resolver and lsdb: uncached (the cache is emptied each time) and
// cached.
func BenchmarkResolutionReal2025(b *testing.B) {
	store, err := lsdb.OpenSQLite("../lsdb/testdata/label_studio_2025_prejwt_uploads.sqlite3", lsdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	clock := lru.NewCoarseClock(250 * time.Millisecond)
	defer clock.Stop()
	r := credentials.New(dbStore{store}, lsauth.NewExchanger(nil, nil, nil), credentials.Options{Now: clock.Now})
	ctx := context.Background()
	if _, err := r.Authorization(ctx, "1"); err != nil {
		b.Fatal(err)
	}
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Invalidate(0, 0)
			if _, err := r.Authorization(ctx, "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authorization(ctx, "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
