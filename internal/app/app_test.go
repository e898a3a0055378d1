package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/app"
	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

const legacyKey = "9f3c2a1b0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"

func ortLib(t *testing.T) string { return onnxrttest.LibPath(t) }

// fakeLS is a Label Studio that serves one uploaded photo to requests that
// authenticate the way Label Studio's DRF token authentication does.
type fakeLS struct {
	*httptest.Server
	photo     []byte
	downloads atomic.Int64
	mu        sync.Mutex
	auths     []string
}

func newFakeLS(t *testing.T) *fakeLS {
	t.Helper()
	photo, err := os.ReadFile("testdata/photo-orientation6.jpg")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLS{photo: photo}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		f.mu.Lock()
		f.auths = append(f.auths, auth)
		f.mu.Unlock()
		if auth != "Token "+legacyKey {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"detail":"Authentication credentials were not provided."}`)
			return
		}
		if r.URL.Path != "/data/upload/1/2bd44c48-photo.jpg" {
			http.NotFound(w, r)
			return
		}
		f.downloads.Add(1)
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(f.photo)
	}))
	t.Cleanup(f.Close)
	return f
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newApp(t *testing.T, env map[string]string, logs io.Writer) *app.App {
	t.Helper()
	env["ONNXRUNTIME_LIB"] = ortLib(t)
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, "test", app.NewLogger(logs, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return a
}

// clickRequest is the recorded interactive keypoint request, pointed at the
// photo and clicking at (x, y) of the displayed 360×280 image.
func clickRequest(t *testing.T, x, y int) []byte {
	t.Helper()
	b, err := os.ReadFile("../labelstudio/testdata/ml_predict_request_sam_keypoint.json")
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	task := req["tasks"].([]any)[0].(map[string]any)
	task["data"] = map[string]any{"image": "/data/upload/1/2bd44c48-photo.jpg"}
	region := req["params"].(map[string]any)["context"].(map[string]any)["result"].([]any)[0].(map[string]any)
	region["original_width"], region["original_height"] = 360, 280
	value := region["value"].(map[string]any)
	// Percentages that truncate back to exactly (x, y).
	value["x"] = (float64(x) + 0.5) * 100 / 360
	value["y"] = (float64(y) + 0.5) * 100 / 280
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func predict(t *testing.T, url string, body []byte) ls.Region {
	t.Helper()
	resp, err := http.Post(url+"/predict", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("predict: status %d: %s", resp.StatusCode, b)
	}
	var out ls.PredictResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || len(out.Results[0].Result) != 1 {
		t.Fatalf("predict: got %s, want one region", b)
	}
	return out.Results[0].Result[0]
}

// centroid decodes a brush RLE at w×h and returns the centre and area of its
// foreground.
func centroid(t *testing.T, r ls.RLE, w, h int) (cx, cy float64, area int) {
	t.Helper()
	words, err := rle.Decode(r, w*h*4)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != w*h*4 {
		t.Fatalf("rle decodes to %d words, want %d (the displayed %dx%d image)", len(words), w*h*4, w, h)
	}
	var sx, sy float64
	for i := 0; i < w*h; i++ {
		if words[4*i+3] != 0 {
			sx += float64(i % w)
			sy += float64(i / w)
			area++
		}
	}
	if area == 0 {
		t.Fatal("mask is empty")
	}
	return sx / float64(area), sy / float64(area), area
}

// TestClickOnRotatedPhoto is the main job end to end: Label Studio asks for a
// mask on an uploaded photo with EXIF orientation 6, the backend fetches it
// with the legacy token, runs the (stand-in) SAM and answers a brush mask at
// the displayed size, centred on the click. A second click on the same image
// downloads nothing and does not encode again.
func TestClickOnRotatedPhoto(t *testing.T) {
	lsrv := newFakeLS(t)
	logs := &syncBuffer{}
	a := newApp(t, map[string]string{
		"LABEL_STUDIO_URL":     lsrv.URL,
		"LABEL_STUDIO_API_KEY": legacyKey,
		"LOG_LEVEL":            "DEBUG",
	}, logs)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	for i, click := range [][2]int{{100, 200}, {250, 60}} {
		r := predict(t, srv.URL, clickRequest(t, click[0], click[1]))
		if r.OriginalWidth != 360 || r.OriginalHeight != 280 {
			t.Errorf("region size %dx%d, want 360x280", r.OriginalWidth, r.OriginalHeight)
		}
		cx, cy, area := centroid(t, r.Value.RLE, 360, 280)
		if math.Abs(cx-float64(click[0])) > 1 || math.Abs(cy-float64(click[1])) > 1 {
			t.Errorf("click %d at %v: mask centred at (%.2f, %.2f), want within 1 px", i, click, cx, cy)
		}
		// The stand-in's disc has a radius of 10% of the long side (36 px),
		// clipped by the image border.
		if full := math.Pi * 36 * 36; float64(area) > full*1.03 || float64(area) < full*0.5 {
			t.Errorf("click %d: mask area %d, want about %.0f", i, area, full)
		}
		if r.Score <= 0 || r.Score > 1.5 {
			t.Errorf("score %v", r.Score)
		}
	}
	if n := lsrv.downloads.Load(); n != 1 {
		t.Errorf("Label Studio served the photo %d times, want 1", n)
	}
	if st := a.Service.Stats(); st.Encodes != 1 || st.Fetches != 1 || st.CacheHits != 1 {
		t.Errorf("stats %+v, want 1 fetch, 1 encode, 1 cache hit", st)
	}
	for _, auth := range lsrv.auths {
		if auth != "Token "+legacyKey {
			t.Errorf("Label Studio got Authorization %q", auth)
		}
	}
	if strings.Contains(logs.String(), legacyKey) {
		t.Error("the log contains the API key")
	}
	if !strings.Contains(logs.String(), "DEMO MODE") {
		t.Error("the log does not say the demo models run")
	}
}

func TestHealthSaysDemo(t *testing.T) {
	a := newApp(t, map[string]string{}, io.Discard)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	if h["model"] != "demo" || h["model_version"] != app.DemoModelVersion || h["status"] != "UP" || h["model_class"] != "SamMLBackend" {
		t.Errorf("health %v", h)
	}
	resp, err = http.Post(srv.URL+"/setup", "application/json", strings.NewReader(`{"project":"1.1700000000"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`{"model_version":%q}`+"\n", app.DemoModelVersion); string(b) != want {
		t.Errorf("setup %s, want %s", b, want)
	}
}

func TestWrongTokenIsAClearError(t *testing.T) {
	lsrv := newFakeLS(t)
	logs := &syncBuffer{}
	a := newApp(t, map[string]string{"LABEL_STUDIO_URL": lsrv.URL, "LABEL_STUDIO_API_KEY": "wrong-key-123456"}, logs)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/predict", "application/json", bytes.NewReader(clickRequest(t, 10, 10)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "401") {
		t.Errorf("status %d body %s, want 502 naming Label Studio's 401", resp.StatusCode, b)
	}
	if strings.Contains(string(b)+logs.String(), "wrong-key-123456") {
		t.Error("the token appears in the response or the log")
	}
}

// TestRunServesAndStops starts the whole service as main does, on a free
// port, and stops it by cancelling its context.
func TestRunServesAndStops(t *testing.T) {
	lib := ortLib(t)
	env := map[string]string{"PORT": "0", "ONNXRUNTIME_LIB": lib}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan net.Addr, 1)
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, "test", func(k string) string { return env[k] }, logs, func(a net.Addr) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	}
	resp, err := http.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("log lacks the stop line:\n%s", logs)
	}
	if _, err := http.Get(url + "/health"); err == nil {
		t.Error("still serving after Run returned")
	}
}

func TestRunRefusesBadSettings(t *testing.T) {
	env := map[string]string{"PORT": "nine", "LABEL_STUDIO_API_KEY": "secret-token-value"}
	err := app.Run(context.Background(), "test", func(k string) string { return env[k] }, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), `PORT="nine"`) {
		t.Errorf("err = %v, want one naming PORT", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret-token-value") {
		t.Error("the error shows the token")
	}
}

// TestInternalAddressesAreRefused: a task whose image points at the cloud
// metadata address or at a loopback service gets a 403 and nothing is
// fetched; Label Studio's own origin, on loopback here, still works.
func TestInternalAddressesAreRefused(t *testing.T) {
	lsrv := newFakeLS(t)
	a := newApp(t, map[string]string{"LABEL_STUDIO_URL": lsrv.URL, "LABEL_STUDIO_API_KEY": legacyKey}, io.Discard)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a loopback service was fetched: %s", r.URL)
	}))
	defer other.Close()
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/iam", other.URL + "/admin?token=x"} {
		body := bytes.Replace(clickRequest(t, 10, 10), []byte(`"/data/upload/1/2bd44c48-photo.jpg"`), []byte(fmt.Sprintf("%q", target)), 1)
		resp, err := http.Post(srv.URL+"/predict", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "refusing to fetch") || strings.Contains(string(b), "token=x") {
			t.Errorf("%s: %d %s; want 403 naming the refusal, without the query", target, resp.StatusCode, b)
		}
	}
	predict(t, srv.URL, clickRequest(t, 100, 100)) // Label Studio itself, on 127.0.0.1
}
