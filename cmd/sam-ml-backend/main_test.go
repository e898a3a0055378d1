//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/app"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt/onnxrttest"
	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// legacyKey is the static Label Studio credential the backend is given; it
// must never show up in the backend's logs.
const legacyKey = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"

// deadline bounds each process's run, from start to exit. It is not a
// timing assertion, only a bound so that a hung shutdown fails the test
// instead of the whole run.
const deadline = 60 * time.Second

// Log lines the shutdown test follows; app.Run writes them.
const (
	shuttingDownLine = "shutting down: finishing in-flight requests"
	stoppedLine      = "msg=stopped"
	deadlineLine     = "requests still running at the shutdown deadline"
	leftOpenLine     = "stopped with image work still running"
)

// imagePath is where the fake Label Studio serves the task's upload.
const imagePath = "/data/upload/1/x.png"

// The image, and the click on it, of the prediction.
const imgW, imgH, clickX, clickY = 64, 48, 40, 20

var listeningRE = regexp.MustCompile(`msg=listening addr="?([^"\s]+)"?`)

// TestGracefulShutdown builds the real binary and stops it with SIGTERM, as
// a container runtime does: once with a prediction provably in flight, and
// once with nothing to finish.
func TestGracefulShutdown(t *testing.T) {
	lib := onnxrttest.LibPath(t)
	onnxrttest.Init(t) // skips (or fails) when this build cannot load it either
	bin := buildBackend(t)

	t.Run("in-flight prediction finishes", func(t *testing.T) {
		lsrv := newBlockingLS(t, pngImage(t))
		p := startBackend(t, bin, []string{
			"ONNXRUNTIME_LIB=" + lib,
			"PORT=0",
			"LOG_LEVEL=DEBUG",
			"SAM_THREADS=1",
			"FETCH_TIMEOUT=2m", // the held image must not time out
			"LABEL_STUDIO_URL=" + lsrv.URL,
			"LABEL_STUDIO_API_KEY=" + legacyKey,
		})
		addr := p.listening(t)

		type answer struct {
			status int
			body   []byte
			err    error
		}
		body := clickRequest(t)
		answered := make(chan answer, 1)
		go func() {
			var a answer
			a.status, a.body, a.err = post(p.ctx, "http://"+addr+"/predict", body)
			answered <- a
		}()
		select {
		case <-lsrv.requested:
		case a := <-answered:
			t.Fatalf("predict answered before fetching the image: %d %s %v\n%s", a.status, a.body, a.err, p.log)
		case <-p.ctx.Done():
			t.Fatalf("the image was never requested\n%s", p.log)
		}

		// The prediction now waits on the image, which the fake Label
		// Studio holds: it is in flight when the signal arrives.
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.await(t, regexp.MustCompile(regexp.QuoteMeta(shuttingDownLine)))
		if err := refused(p.ctx, addr); err != nil {
			t.Fatalf("new connections after SIGTERM: %v\n%s", err, p.log)
		}
		if resp, err := noKeepAlive().Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			t.Fatalf("GET /health after SIGTERM: status %d, want a refused connection", resp.StatusCode)
		}
		select {
		case <-p.exited:
			t.Fatalf("exited while a prediction was in flight: %v\n%s", p.err, p.log)
		case a := <-answered:
			t.Fatalf("predict answered while its image was held: %d %s %v", a.status, a.body, a.err)
		default:
		}

		lsrv.release()
		var a answer
		select {
		case a = <-answered:
		case <-p.ctx.Done():
			t.Fatalf("the in-flight prediction never answered\n%s", p.log)
		}
		if a.err != nil {
			t.Fatalf("in-flight predict: %v\n%s", a.err, p.log)
		}
		if a.status != http.StatusOK {
			t.Fatalf("in-flight predict: status %d: %s\n%s", a.status, a.body, p.log)
		}
		checkBrush(t, a.body)

		p.wait(t)
		checkStopLog(t, p.log.String())
		if n := lsrv.fetches(); n != 1 {
			t.Errorf("Label Studio served the image %d times, want 1", n)
		}
	})

	t.Run("idle exits", func(t *testing.T) {
		p := startBackend(t, bin, []string{
			"ONNXRUNTIME_LIB=" + lib,
			"PORT=0",
			"LOG_LEVEL=DEBUG",
			"SAM_THREADS=1",
		})
		addr := p.listening(t)
		// A kept-alive idle connection must not hold up the stop.
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		resp, err := client.Get("http://" + addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /health: status %d", resp.StatusCode)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.wait(t)
		checkStopLog(t, p.log.String())
	})
}

// buildBackend builds the command into a temporary directory, with the race
// detector when the test has it, so that races in the shutdown path of the
// real process fail the test too (its exit status becomes 66).
func buildBackend(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sam-ml-backend")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	// go test puts its own GOROOT/bin first in PATH.
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// backend is a running sam-ml-backend process.
type backend struct {
	cmd    *exec.Cmd
	log    *logTail
	ctx    context.Context // ends at the deadline
	exited chan struct{}   // closed when the process has exited and its log is complete
	err    error           // cmd.Wait's result, set before exited is closed
}

// startBackend starts bin with env alone, so that the test's own
// environment cannot change its settings, and kills it at the end of the
// test if it is still running.
func startBackend(t *testing.T, bin string, env []string) *backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	t.Cleanup(cancel)
	p := &backend{log: newLogTail(), ctx: ctx, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// listening returns host:port of the process's listener, on loopback.
func (p *backend) listening(t *testing.T) string {
	t.Helper()
	m := p.await(t, listeningRE)
	_, port, err := net.SplitHostPort(m[1])
	if err != nil {
		t.Fatalf("listening line: %v\n%s", err, p.log)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// await waits for re to match the process's log and returns the match. It
// fails the test if the process exits without writing it, or at the
// deadline.
func (p *backend) await(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	for {
		s, grew := p.log.snapshot()
		if m := re.FindStringSubmatch(s); m != nil {
			return m
		}
		select {
		case <-grew:
		case <-p.exited:
			if m := re.FindStringSubmatch(p.log.String()); m != nil {
				return m
			}
			t.Fatalf("exited (%v) without logging %q:\n%s", p.err, re, p.log)
		case <-p.ctx.Done():
			t.Fatalf("no %q in the log by the deadline:\n%s", re, p.log)
		}
	}
}

// wait waits for the process to exit and checks that it exited with status 0.
func (p *backend) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-p.ctx.Done():
		t.Fatalf("still running at the deadline after SIGTERM:\n%s", p.log)
	}
	if p.err != nil {
		t.Fatalf("exit: %v, want status 0:\n%s", p.err, p.log)
	}
}

// checkStopLog checks that the log tells the stop in order, that the stop
// drained rather than cut anything off, and that it holds no credential.
func checkStopLog(t *testing.T, log string) {
	t.Helper()
	down := strings.Index(log, shuttingDownLine)
	stopped := strings.LastIndex(log, stoppedLine)
	if down < 0 || stopped < down {
		t.Errorf("log lacks %q followed by %q:\n%s", shuttingDownLine, stoppedLine, log)
	}
	for _, bad := range []string{deadlineLine, leftOpenLine, "DATA RACE"} {
		if strings.Contains(log, bad) {
			t.Errorf("log has %q:\n%s", bad, log)
		}
	}
	if strings.Contains(log, legacyKey) {
		t.Error("the log shows the Label Studio API key")
	}
}

// refused dials addr until the connection is refused: the server closes its
// listener just after logging that it is shutting down, and nothing is
// logged once it has, so a short poll is the only way to see it. A dial
// that lands in the moment between is closed at once and tried again.
func refused(ctx context.Context, addr string) error {
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		if err != nil {
			return err
		}
		c.Close()
		select {
		case <-ctx.Done():
			return errors.New("connections were still accepted at the deadline")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func noKeepAlive() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := noKeepAlive().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// checkBrush checks that body is one brush region at the image's size that
// covers the click (the demo models answer a disc around it).
func checkBrush(t *testing.T, body []byte) {
	t.Helper()
	var out ls.PredictResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decode predict response: %v: %s", err, body)
	}
	if len(out.Results) != 1 || len(out.Results[0].Result) != 1 {
		t.Fatalf("predict: got %s, want one region", body)
	}
	if got, want := out.Results[0].ModelVersion, app.DemoModelVersion; got != want {
		t.Errorf("model_version = %q, want %q", got, want)
	}
	r := out.Results[0].Result[0]
	if r.Type != "brushlabels" || r.Value.Format != "rle" || r.OriginalWidth != imgW || r.OriginalHeight != imgH {
		t.Fatalf("region: type %q format %q %dx%d; want brushlabels, rle, %dx%d", r.Type, r.Value.Format, r.OriginalWidth, r.OriginalHeight, imgW, imgH)
	}
	words, err := rle.Decode(r.Value.RLE, imgW*imgH*4)
	if err != nil {
		t.Fatalf("decode rle: %v", err)
	}
	if len(words) != imgW*imgH*4 {
		t.Fatalf("rle decodes to %d words, want %d", len(words), imgW*imgH*4)
	}
	if words[4*(clickY*imgW+clickX)+3] == 0 {
		t.Error("the mask does not cover the click")
	}
}

// clickRequest is the recorded interactive keypoint request, pointed at the
// fake Label Studio's upload and clicking at (clickX, clickY).
func clickRequest(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../internal/labelstudio/testdata/ml_predict_request_sam_keypoint.json")
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	task := req["tasks"].([]any)[0].(map[string]any)
	task["data"] = map[string]any{"image": imagePath}
	region := req["params"].(map[string]any)["context"].(map[string]any)["result"].([]any)[0].(map[string]any)
	region["original_width"], region["original_height"] = imgW, imgH
	value := region["value"].(map[string]any)
	// Percentages that truncate back to exactly the click.
	value["x"] = (float64(clickX) + 0.5) * 100 / imgW
	value["y"] = (float64(clickY) + 0.5) * 100 / imgH
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pngImage(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, imgW, imgH))
	for y := range imgH {
		for x := range imgW {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// blockingLS is a Label Studio whose upload answers only once the test
// releases it, to requests that authenticate as Label Studio's DRF token
// authentication wants.
type blockingLS struct {
	*httptest.Server
	requested chan struct{} // closed at the first image request
	release   func()        // lets image requests answer

	mu    sync.Mutex
	count int
}

func newBlockingLS(t *testing.T, img []byte) *blockingLS {
	t.Helper()
	released := make(chan struct{})
	var once sync.Once
	f := &blockingLS{
		requested: make(chan struct{}),
		release:   sync.OnceFunc(func() { close(released) }),
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token "+legacyKey {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"detail":"Authentication credentials were not provided."}`)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != imagePath {
			http.NotFound(w, r)
			return
		}
		once.Do(func() { close(f.requested) })
		select {
		case <-released:
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		f.count++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "image/png")
		w.Write(img)
	}))
	t.Cleanup(f.Close)
	t.Cleanup(f.release) // runs first, so that Close does not wait on a held request
	return f
}

// fetches returns how many times the image was served.
func (f *blockingLS) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// logTail collects a process's output and lets the test wait for it to
// grow.
type logTail struct {
	mu   sync.Mutex
	b    bytes.Buffer
	grew chan struct{} // closed, and replaced, at each write
}

func newLogTail() *logTail { return &logTail{grew: make(chan struct{})} }

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.grew)
	l.grew = make(chan struct{})
	return len(p), nil
}

// snapshot returns the output so far and a channel closed when it grows.
func (l *logTail) snapshot() (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.grew
}

func (l *logTail) String() string {
	s, _ := l.snapshot()
	return s
}
