package imagefetch

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

var (
	red  = color.RGBA{230, 20, 20, 255}
	blue = color.RGBA{30, 60, 200, 255}
)

// markedImage is a w×h blue image whose top-left 16×16 block is red, so
// that any flip or rotation moves the red block to a known corner.
func markedImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := blue
			if x < 16 && y < 16 {
				c = red
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// isNear reports whether c is within tol of want on every channel.
func isNear(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(a uint32, w uint8) bool {
		v := int(a>>8) - int(w)
		return v >= -tol && v <= tol
	}
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

// redCorner returns which corner of img holds the red block: "TL", "TR",
// "BR", "BL", or "" when none or several do.
func redCorner(img image.Image) string {
	return cornerWhere(img, func(c color.Color) bool { return isNear(c, red, 40) })
}

// cornerWhere returns the one corner of img whose pixel 5 px in from both
// edges satisfies mark, or "".
func cornerWhere(img image.Image, mark func(color.Color) bool) string {
	b := img.Bounds()
	probes := map[string]image.Point{
		"TL": {b.Min.X + 5, b.Min.Y + 5},
		"TR": {b.Max.X - 6, b.Min.Y + 5},
		"BR": {b.Max.X - 6, b.Max.Y - 6},
		"BL": {b.Min.X + 5, b.Max.Y - 6},
	}
	found := ""
	for name, p := range probes {
		if mark(img.At(p.X, p.Y)) {
			if found != "" {
				return ""
			}
			found = name
		}
	}
	return found
}

func encodeJPEG(tb testing.TB, img image.Image, quality int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// order is a byte order that can also append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// exifTIFF builds the TIFF structure of an Exif block: IFD0 with a Make
// entry (ASCII, stored at an offset) before Orientation, as cameras write.
func exifTIFF(o int, bo order) []byte {
	var t []byte
	if bo.String() == "BigEndian" {
		t = []byte("MM\x00\x2a")
	} else {
		t = []byte("II\x2a\x00")
	}
	t = bo.AppendUint32(t, 8)
	t = bo.AppendUint16(t, 2)
	make_ := "Camera\x00"
	makeOff := uint32(8 + 2 + 2*12 + 4)
	t = bo.AppendUint16(t, 0x010F) // Make
	t = bo.AppendUint16(t, 2)      // ASCII
	t = bo.AppendUint32(t, uint32(len(make_)))
	t = bo.AppendUint32(t, makeOff)
	t = bo.AppendUint16(t, 0x0112) // Orientation
	t = bo.AppendUint16(t, 3)      // SHORT
	t = bo.AppendUint32(t, 1)
	t = bo.AppendUint16(t, uint16(o))
	t = append(t, 0, 0)
	t = bo.AppendUint32(t, 0) // no next IFD
	return append(t, make_...)
}

// withJPEGExif inserts an APP1 Exif segment holding tiff right after SOI.
func withJPEGExif(jpg, tiff []byte) []byte {
	seg := append([]byte("Exif\x00\x00"), tiff...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xFF, 0xE1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// withPNGExif inserts an eXIf chunk holding tiff right after IHDR.
func withPNGExif(p, tiff []byte) []byte {
	const ihdrEnd = 8 + 8 + 13 + 4
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(tiff)))
	chunk = append(chunk, "eXIf"...)
	chunk = append(chunk, tiff...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, p[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, p[ihdrEnd:]...)
}

// grayTIFF builds an uncompressed 8-bit grayscale TIFF with an Orientation
// tag (0 leaves it out).
func grayTIFF(img *image.Gray, o int, bo order) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	type ent struct {
		tag, typ uint16
		val      uint32
	}
	ents := []ent{
		{256, 4, uint32(w)}, {257, 4, uint32(h)}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
		{273, 4, 0}, {274, 3, uint32(o)}, {277, 3, 1}, {278, 4, uint32(h)}, {279, 4, uint32(w * h)},
	}
	if o == 0 {
		ents = append(ents[:6], ents[7:]...)
	}
	var t []byte
	if bo.String() == "BigEndian" {
		t = []byte("MM\x00\x2a")
	} else {
		t = []byte("II\x2a\x00")
	}
	t = bo.AppendUint32(t, 8)
	dataOff := uint32(8 + 2 + 12*len(ents) + 4)
	t = bo.AppendUint16(t, uint16(len(ents)))
	for _, e := range ents {
		if e.tag == 273 {
			e.val = dataOff
		}
		t = bo.AppendUint16(t, e.tag)
		t = bo.AppendUint16(t, e.typ)
		t = bo.AppendUint32(t, 1)
		if e.typ == 3 {
			t = bo.AppendUint16(t, uint16(e.val))
			t = append(t, 0, 0)
		} else {
			t = bo.AppendUint32(t, e.val)
		}
	}
	t = bo.AppendUint32(t, 0)
	for y := range h {
		t = append(t, img.Pix[y*img.Stride:y*img.Stride+w]...)
	}
	return t
}

// photoJPEG makes a w×h JPEG that compresses like a photograph: smooth
// gradients, soft shapes and sensor-like noise, at quality 90 (4:2:0).
func photoJPEG(tb testing.TB, w, h int) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(2463534242)
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			seed ^= seed << 13
			seed ^= seed >> 17
			seed ^= seed << 5
			n := int(seed%25) - 12
			dx, dy := x-w/3, y-h/2
			disc := 0
			if dx*dx+dy*dy < (h/4)*(h/4) {
				disc = 60
			}
			r := 40 + 150*x/w + disc + n
			g := 70 + 120*y/h + n
			b := 160 - 100*x/w + 50*((x/97+y/89)%2) + n
			i := 4 * x
			row[i+0] = clamp8(r)
			row[i+1] = clamp8(g)
			row[i+2] = clamp8(b)
			row[i+3] = 255
		}
	}
	return encodeJPEG(tb, img, 90)
}

func clamp8(v int) uint8 {
	return uint8(max(0, min(255, v)))
}

// fakeCreds is a Credentials that hands out headers in order (the last one
// repeats) and records what it is told.
type fakeCreds struct {
	mu       sync.Mutex
	headers  []string
	calls    int
	projects []string
	rejected []string
}

func (c *fakeCreds) Authorization(ctx context.Context, project string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.projects = append(c.projects, project)
	h := c.headers[min(c.calls, len(c.headers)-1)]
	c.calls++
	return h, nil
}

func (c *fakeCreds) Rejected(project, header string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejected = append(c.rejected, header)
}

func (c *fakeCreds) snapshot() (calls int, rejected []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, append([]string(nil), c.rejected...)
}

// seen is one request a fake server received.
type seen struct {
	Path, Query, Auth string
}

// recorder logs requests for a fake server.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (r *recorder) add(req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, seen{req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization")})
	r.mu.Unlock()
}

func (r *recorder) all() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// fakeLS is a Label Studio that authenticates like DRF (Token or Bearer
// keyword, case-insensitive; 401 without credentials) in front of routes
// registered by the test.
type fakeLS struct {
	*httptest.Server
	prefix string
	mu     sync.Mutex
	accept map[string]bool // "Token <key>" or "Bearer <jwt>"
	routes map[string]http.HandlerFunc
	open   map[string]http.HandlerFunc // routes that need no credentials
	rec    recorder
}

func newFakeLS(t testing.TB, prefix string, accept ...string) *fakeLS {
	t.Helper()
	ls := &fakeLS{prefix: prefix, accept: map[string]bool{}, routes: map[string]http.HandlerFunc{}, open: map[string]http.HandlerFunc{}}
	for _, a := range accept {
		ls.accept[a] = true
	}
	ls.Server = httptest.NewServer(http.HandlerFunc(ls.serve))
	t.Cleanup(ls.Close)
	return ls
}

// base is Label Studio's URL, with the sub-path.
func (ls *fakeLS) base(t testing.TB) *url.URL {
	t.Helper()
	u, err := url.Parse(ls.URL + ls.prefix)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (ls *fakeLS) handle(path string, h http.HandlerFunc) {
	ls.mu.Lock()
	ls.routes[path] = h
	ls.mu.Unlock()
}

// handleOpen registers a route that needs no credentials.
func (ls *fakeLS) handleOpen(path string, h http.HandlerFunc) {
	ls.mu.Lock()
	ls.open[path] = h
	ls.mu.Unlock()
}

func (ls *fakeLS) setAccept(header string, ok bool) {
	ls.mu.Lock()
	ls.accept[header] = ok
	ls.mu.Unlock()
}

// serveBytes registers a route that serves body with content type ct.
func (ls *fakeLS) serveBytes(path, ct string, body []byte) {
	ls.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Write(body)
	})
}

func (ls *fakeLS) serve(w http.ResponseWriter, r *http.Request) {
	ls.rec.add(r)
	p, ok := strings.CutPrefix(r.URL.Path, ls.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	ls.mu.Lock()
	open := ls.open[p]
	ls.mu.Unlock()
	if open != nil {
		open(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	auth := r.Header.Get("Authorization")
	if auth == "" {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"detail":"Authentication credentials were not provided."}`))
		return
	}
	kw, val, _ := strings.Cut(auth, " ")
	switch strings.ToLower(kw) {
	case "token":
		kw = "Token"
	case "bearer":
		kw = "Bearer"
	}
	ls.mu.Lock()
	accepted := ls.accept[kw+" "+val]
	h := ls.routes[p]
	ls.mu.Unlock()
	if !accepted {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"detail":"Invalid token."}`))
		return
	}
	if h == nil {
		if strings.HasPrefix(p, "/data/upload/") {
			// Label Studio dereferences a missing FileUpload: 500.
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"detail":"internal error"}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"detail":"Not found."}`))
		return
	}
	w.Header().Del("Content-Type")
	h(w, r)
}

// storage is an object store on another port: it serves presigned URLs
// (X-Amz-Signature=secret) and, like S3, refuses a request that carries a
// second auth mechanism.
type storage struct {
	*httptest.Server
	rec   recorder
	mu    sync.Mutex
	files map[string][]byte
}

func newStorage(t *testing.T) *storage {
	t.Helper()
	s := &storage{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.rec.add(r)
		if r.Header.Get("Authorization") != "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"))
			return
		}
		if r.URL.Query().Get("X-Amz-Signature") != "secret" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("<Error><Code>AccessDenied</Code></Error>"))
			return
		}
		s.mu.Lock()
		body, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *storage) put(path string, body []byte) {
	s.mu.Lock()
	s.files[path] = body
	s.mu.Unlock()
}

// newFetcher builds a Fetcher or fails the test.
func newFetcher(t testing.TB, cfg Config) *Fetcher {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
