package imagefetch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsauth"
)

// lsauth.Static is what main passes as the static credential.
var _ Credentials = (*lsauth.Static)(nil)

const legacyKey = "0123456789abcdef0123456789abcdef01234567"

// fetchErr fetches ref and returns the *Error, failing when there is none.
func fetchErr(t *testing.T, f *Fetcher, ref string) *Error {
	t.Helper()
	loc, err := f.Resolve(ref, 1)
	if err == nil {
		var img image.Image
		img, err = f.Fetch(t.Context(), loc, "1.1700000000")
		if err == nil {
			t.Fatalf("Fetch(%q): got a %v image, want an error", ref, img.Bounds())
		}
	}
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("Fetch(%q): got %T %v, want *Error", ref, err, err)
	}
	return fe
}

func fetchOK(t *testing.T, f *Fetcher, ref string) image.Image {
	t.Helper()
	loc, err := f.Resolve(ref, 1)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	img, err := f.Fetch(t.Context(), loc, "1.1700000000")
	if err != nil {
		t.Fatalf("Fetch(%q): %v", ref, err)
	}
	return img
}

func TestFetchSendsTheRightAuthorization(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	tests := []struct {
		name   string
		accept string // what Label Studio accepts
		creds  Credentials
		want   int // backend status, 0 for success
	}{
		{"legacy key", "Token " + legacyKey, &fakeCreds{headers: []string{"Token " + legacyKey}}, 0},
		{"lowercase keyword", "Token " + legacyKey, &fakeCreds{headers: []string{"token " + legacyKey}}, 0},
		{"bearer", "Bearer a.b.c", &fakeCreds{headers: []string{"Bearer a.b.c"}}, 0},
		{"no credentials", "Token " + legacyKey, nil, http.StatusBadGateway},
		{"empty header", "Token " + legacyKey, &fakeCreds{headers: []string{""}}, http.StatusBadGateway},
		{"wrong token", "Token " + legacyKey, &fakeCreds{headers: []string{"Token nope"}}, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := newFakeLS(t, "", tt.accept)
			ls.serveBytes("/data/upload/1/photo.jpg", "image/jpeg", jpg)
			f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: tt.creds})
			if tt.want == 0 {
				img := fetchOK(t, f, "/data/upload/1/photo.jpg")
				if got := img.Bounds().Size(); got != image.Pt(48, 32) {
					t.Errorf("size: got %v, want 48x32", got)
				}
				return
			}
			if fe := fetchErr(t, f, "/data/upload/1/photo.jpg"); fe.Status != tt.want {
				t.Errorf("status: got %d, want %d (%v)", fe.Status, tt.want, fe)
			}
		})
	}
}

func TestFetchLSErrorMessages(t *testing.T) {
	tests := []struct {
		name       string
		creds      *fakeCreds
		ref        string
		route      http.HandlerFunc
		wantStatus int
		wantMsg    []string
	}{
		{
			name:       "401 with a legacy token",
			creds:      &fakeCreds{headers: []string{"Token old"}},
			ref:        "/data/upload/1/a.jpg",
			wantStatus: http.StatusBadGateway,
			wantMsg:    []string{"Label Studio refused the API token (401 Unauthorized) for /data/upload/1/a.jpg", "legacy tokens may be disabled", "personal access token in LABEL_STUDIO_API_KEY"},
		},
		{
			name:       "401 without a token",
			creds:      &fakeCreds{headers: []string{""}},
			ref:        "/data/upload/1/a.jpg",
			wantStatus: http.StatusBadGateway,
			wantMsg:    []string{"Label Studio asked for an API token (401 Unauthorized)", "LABEL_STUDIO_API_KEY"},
		},
		{
			name:  "403",
			creds: &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:   "/data/local-files/?d=a.jpg",
			route: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte("Serving local files can be dangerous, so it's disabled by default."))
			},
			wantStatus: http.StatusBadGateway,
			wantMsg:    []string{"Label Studio refused access (403 Forbidden) to /data/local-files/?d=a.jpg", "LOCAL_FILES_SERVING_ENABLED"},
		},
		{
			name:       "404",
			creds:      &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:        "/data/local-files/?d=missing.jpg",
			wantStatus: http.StatusNotFound,
			wantMsg:    []string{"image not found at /data/local-files/?d=missing.jpg (404)"},
		},
		{
			name:       "unknown upload: Label Studio's 500",
			creds:      &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:        "/data/upload/1/missing.jpg",
			wantStatus: http.StatusBadGateway,
			wantMsg:    []string{"Label Studio answered 500 Internal Server Error for /data/upload/1/missing.jpg", "upload it does not know"},
		},
		{
			name:  "503",
			creds: &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:   "/data/upload/1/busy.jpg",
			route: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			wantStatus: http.StatusBadGateway,
			wantMsg:    []string{"Label Studio answered 503 Service Unavailable for /data/upload/1/busy.jpg"},
		},
		{
			name:  "HTML page",
			creds: &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:   "/data/upload/1/login.jpg",
			route: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write([]byte("\n<!DOCTYPE html><html><head><title>Label Studio</title></head><body>Sign in</body></html>"))
			},
			wantStatus: http.StatusUnprocessableEntity,
			wantMsg:    []string{"/data/upload/1/login.jpg is not a supported image", `Content-Type "text/html; charset=utf-8"`, "an HTML page"},
		},
		{
			name:  "JSON body",
			creds: &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:   "/data/upload/1/json.jpg",
			route: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"detail":"nope"}`))
			},
			wantStatus: http.StatusUnprocessableEntity,
			wantMsg:    []string{"JSON"},
		},
		{
			name:  "truncated JPEG",
			creds: &fakeCreds{headers: []string{"Token " + legacyKey}},
			ref:   "/data/upload/1/cut.jpg",
			route: func(w http.ResponseWriter, r *http.Request) {
				full := encodeJPEG(t, markedImage(64, 64), 90)
				w.Write(full[:len(full)*2/3])
			},
			wantStatus: http.StatusUnprocessableEntity,
			wantMsg:    []string{"/data/upload/1/cut.jpg: ", "JPEG", "unexpected EOF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := newFakeLS(t, "", "Token "+legacyKey)
			if tt.route != nil {
				u, _ := url.Parse(tt.ref)
				ls.handle(u.Path, tt.route)
			}
			f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: tt.creds})
			fe := fetchErr(t, f, tt.ref)
			if fe.HTTPStatus() != tt.wantStatus {
				t.Errorf("status: got %d, want %d", fe.HTTPStatus(), tt.wantStatus)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(fe.Error(), m) {
					t.Errorf("message: got %q, want it to contain %q", fe.Error(), m)
				}
			}
			if strings.Contains(fe.Error(), legacyKey) || strings.Contains(fe.Error(), "Token old") {
				t.Errorf("message %q contains the token", fe.Error())
			}
		})
	}
}

func TestFetchRetriesOnceWithAFreshToken(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	tests := []struct {
		name         string
		headers      []string
		wantErr      bool
		wantRequests int
		wantRejected []string
	}{
		{"rotated token", []string{"Token old", "Token " + legacyKey}, false, 2, []string{"Token old"}},
		{"still refused", []string{"Token old", "Token older"}, true, 2, []string{"Token old"}},
		{"no fresh token", []string{"Token old"}, true, 1, []string{"Token old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := newFakeLS(t, "", "Token "+legacyKey)
			ls.serveBytes("/data/upload/1/a.jpg", "image/jpeg", jpg)
			creds := &fakeCreds{headers: tt.headers}
			f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: creds})
			loc, err := f.Resolve("/data/upload/1/a.jpg", 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Fetch(t.Context(), loc, "5.1700000000")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Fetch: got error %v, want error %v", err, tt.wantErr)
			}
			if got := len(ls.rec.all()); got != tt.wantRequests {
				t.Errorf("requests to Label Studio: got %d, want %d", got, tt.wantRequests)
			}
			_, rejected := creds.snapshot()
			if fmt.Sprint(rejected) != fmt.Sprint(tt.wantRejected) {
				t.Errorf("Rejected: got %q, want %q", rejected, tt.wantRejected)
			}
			if creds.projects[0] != "5.1700000000" {
				t.Errorf("project passed to Credentials: got %q, want %q", creds.projects[0], "5.1700000000")
			}
		})
	}
}

func TestFetchWithPATThroughLsauth(t *testing.T) {
	// Label Studio with PATs: /api/token/refresh/ issues access tokens,
	// media accepts only the newest one.
	ls := newFakeLS(t, "/ls")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	jwt := func(claims string) string {
		return hdr + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2lnbmF0dXJl"
	}
	pat := jwt(fmt.Sprintf(`{"token_type":"refresh","exp":%d,"jti":"p"}`, time.Now().AddDate(200, 0, 0).Unix()))
	var mu sync.Mutex
	issued := 0
	exchanges := func() int { mu.Lock(); defer mu.Unlock(); return issued }
	var current string
	revoke := func() { mu.Lock(); defer mu.Unlock(); ls.setAccept(current, false) }
	ls.handleOpen("/api/token/refresh/", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil || body["refresh"] != pat {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		issued++
		ls.setAccept(current, false)
		access := jwt(fmt.Sprintf(`{"token_type":"access","exp":%d,"jti":"a%d"}`, time.Now().Add(5*time.Minute).Unix(), issued))
		current = "Bearer " + access
		ls.setAccept(current, true)
		json.NewEncoder(w).Encode(map[string]string{"access": access})
	})
	ls.serveBytes("/data/upload/1/a.jpg", "image/jpeg", encodeJPEG(t, markedImage(48, 32), 95))

	ex := lsauth.NewExchanger(ls.base(t), nil, nil)
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: lsauth.NewStatic(pat, ex)})
	fetchOK(t, f, "/data/upload/1/a.jpg")
	fetchOK(t, f, "/ls/data/upload/1/a.jpg")
	if got := exchanges(); got != 1 {
		t.Errorf("exchanges: got %d, want 1", got)
	}
	// Label Studio revokes the access token: the fetch forgets it,
	// exchanges the PAT again and retries.
	revoke()
	fetchOK(t, f, "/data/upload/1/a.jpg")
	if got := exchanges(); got != 2 {
		t.Errorf("exchanges after a 401: got %d, want 2", got)
	}
	for _, r := range ls.rec.all() {
		if r.Path == "/ls/api/token/refresh/" {
			continue
		}
		if !strings.HasPrefix(r.Auth, "Bearer ") || r.Auth == "Bearer "+pat {
			t.Errorf("request %s: Authorization %q, want a Bearer access token", r.Path, r.Auth)
		}
	}
}

func TestRedirectsDropAuthorizationOffOrigin(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	ls := newFakeLS(t, "", "Token "+legacyKey)
	st := newStorage(t)
	st.put("/bucket/dir/img.jpg", jpg)
	stURL := mustURL(t, st.URL)
	_, stPort, _ := strings.Cut(stURL.Host, ":")

	// /tasks/<id>/resolve/ answers 303 with a presigned URL, as Label
	// Studio does for a storage with presign on.
	ls.handle("/tasks/9/resolve/", func(w http.ResponseWriter, r *http.Request) {
		uri, err := base64.URLEncoding.DecodeString(r.URL.Query().Get("fileuri"))
		if err != nil || string(uri) != "s3://bucket/dir/img.jpg" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		http.Redirect(w, r, st.URL+"/bucket/dir/img.jpg?X-Amz-Signature=secret", http.StatusSeeOther)
	})
	// Same host, other port: Go's own rule would keep Authorization.
	ls.handle("/data/upload/1/moved.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, st.URL+"/bucket/dir/img.jpg?X-Amz-Signature=secret", http.StatusFound)
	})
	// Other host name for the same server.
	ls.handle("/data/upload/1/elsewhere.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+stPort+"/bucket/dir/img.jpg?X-Amz-Signature=secret", http.StatusFound)
	})
	// A redirect inside Label Studio keeps the credential.
	ls.handle("/data/upload/1/old.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/data/upload/1/new.jpg", http.StatusMovedPermanently)
	})
	ls.serveBytes("/data/upload/1/new.jpg", "image/jpeg", jpg)
	// An expired presigned URL.
	ls.handle("/data/upload/1/expired.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, st.URL+"/bucket/dir/img.jpg?X-Amz-Signature=expired", http.StatusFound)
	})
	ls.handle("/data/upload/1/loop.jpg", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/data/upload/1/loop.jpg", http.StatusFound)
	})

	// The storage listens on loopback, like MinIO next to Label Studio.
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}, AllowedHosts: []string{stURL.Host, "localhost:" + stPort}})

	for _, ref := range []string{"s3://bucket/dir/img.jpg", "/data/upload/1/moved.jpg", "/data/upload/1/elsewhere.jpg", "/data/upload/1/old.jpg"} {
		t.Run(ref, func(t *testing.T) {
			loc, err := f.Resolve(ref, 9)
			if err != nil {
				t.Fatal(err)
			}
			img, err := f.Fetch(t.Context(), loc, "1.1")
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got := redCorner(img); got != "TL" {
				t.Errorf("red corner: got %q, want TL", got)
			}
		})
	}
	for _, r := range st.rec.all() {
		if r.Auth != "" {
			t.Errorf("storage request %s: got Authorization %q, want none", r.Path, r.Auth)
		}
	}
	if n := len(st.rec.all()); n != 3 {
		t.Errorf("storage requests: got %d, want 3", n)
	}

	t.Run("expired presigned URL", func(t *testing.T) {
		fe := fetchErr(t, f, "/data/upload/1/expired.jpg")
		if fe.Status != http.StatusBadGateway {
			t.Errorf("status: got %d, want 502", fe.Status)
		}
		for _, want := range []string{"refused access (403 Forbidden)", "redirected to " + st.URL + "/bucket/dir/img.jpg", "presigned URL may have expired"} {
			if !strings.Contains(fe.Error(), want) {
				t.Errorf("message: got %q, want it to contain %q", fe.Error(), want)
			}
		}
		if strings.Contains(fe.Error(), "Signature") {
			t.Errorf("message %q carries the presigned query", fe.Error())
		}
	})
	t.Run("redirect loop", func(t *testing.T) {
		fe := fetchErr(t, f, "/data/upload/1/loop.jpg")
		if fe.Status != http.StatusBadGateway || !strings.Contains(fe.Error(), "stopped after 10 redirects") {
			t.Errorf("got %d %q, want 502 and \"stopped after 10 redirects\"", fe.Status, fe.Error())
		}
	})
}

func TestNoCredentialsOffOrigin(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	ls := newFakeLS(t, "", "Token "+legacyKey)
	st := newStorage(t)
	st.put("/public/a.jpg", jpg)
	creds := &fakeCreds{headers: []string{"Token " + legacyKey}}
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: creds, AllowedHosts: []string{mustURL(t, st.URL).Host}})
	fetchOK(t, f, st.URL+"/public/a.jpg?X-Amz-Signature=secret")
	if calls, _ := creds.snapshot(); calls != 0 {
		t.Errorf("Credentials.Authorization calls for another origin: got %d, want 0", calls)
	}
	if r := st.rec.all(); len(r) != 1 || r[0].Auth != "" {
		t.Errorf("storage requests: got %+v, want one without Authorization", r)
	}
	// An absolute URL on Label Studio's origin is a Label Studio URL.
	ls.serveBytes("/data/upload/2/b.jpg", "image/jpeg", jpg)
	fetchOK(t, f, ls.URL+"/data/upload/2/b.jpg")
	if calls, _ := creds.snapshot(); calls != 1 {
		t.Errorf("Credentials.Authorization calls for Label Studio's origin: got %d, want 1", calls)
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"http://h/x", "http://h:80/y", true},
		{"https://h/x", "https://H:443/", true},
		{"http://h:8080/", "http://h:8081/", false},
		{"http://h/", "https://h/", false},
		{"http://h:443/", "https://h/", false},
		{"http://h.example/", "http://h.example.evil/", false},
		{"http://[::1]:80/", "http://[::1]/", true},
	}
	for _, tt := range tests {
		if got := sameOrigin(mustURL(t, tt.a), mustURL(t, tt.b)); got != tt.want {
			t.Errorf("sameOrigin(%s, %s): got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFetchSubPathLabelStudio(t *testing.T) {
	jpg := encodeJPEG(t, markedImage(48, 32), 95)
	ls := newFakeLS(t, "/ls", "Token "+legacyKey)
	ls.serveBytes("/data/upload/3/a.jpg", "image/jpeg", jpg)
	f := newFetcher(t, Config{LabelStudio: mustURL(t, ls.URL+"/ls/"), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
	for _, ref := range []string{"/data/upload/3/a.jpg", "upload/3/a.jpg", "/ls/data/upload/3/a.jpg", ls.URL + "/ls/data/upload/3/a.jpg"} {
		t.Run(ref, func(t *testing.T) {
			fetchOK(t, f, ref)
		})
	}
	for _, r := range ls.rec.all() {
		if r.Path != "/ls/data/upload/3/a.jpg" {
			t.Errorf("request path: got %q, want /ls/data/upload/3/a.jpg", r.Path)
		}
	}
}

func TestFetchLocalFiles(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	outside := filepath.Join(dir, "outside")
	for _, d := range []string{filepath.Join(root, "set"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inside := encodePNG(t, markedImage(40, 20))
	secret := encodePNG(t, markedImage(20, 40))
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "set", "a b.png"), inside)
	write(filepath.Join(outside, "secret.png"), secret)
	if err := os.Symlink(filepath.Join(outside, "secret.png"), filepath.Join(root, "set", "link.png")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "set", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a b.png", filepath.Join(root, "set", "inner.png")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "set", "fifo.png"), 0o644); err != nil {
		t.Fatal(err)
	}

	ls := newFakeLS(t, "", "Token "+legacyKey)
	// Label Studio serves a third image for anything it is asked, so the
	// test sees which side answered.
	fromLS := encodePNG(t, markedImage(30, 30))
	ls.serveBytes("/data/local-files/", "image/png", fromLS)
	creds := &fakeCreds{headers: []string{"Token " + legacyKey}}
	f := newFetcher(t, Config{LabelStudio: ls.base(t), LocalFilesRoot: root, Credentials: creds})

	tests := []struct {
		name     string
		ref      string
		wantSize image.Point // 40x20 inside, 30x30 from Label Studio
		wantLS   bool
	}{
		{"inside the root", "/data/local-files/?d=set%2Fa%20b.png", image.Pt(40, 20), false},
		{"absolute LS URL, inside the root", ls.URL + "/data/local-files/?d=set/a%20b.png", image.Pt(40, 20), false},
		{"symlink inside the root", "/data/local-files/?d=set/inner.png", image.Pt(40, 20), false},
		{"missing: Label Studio answers", "/data/local-files/?d=set/none.png", image.Pt(30, 30), true},
		{"symlink out of the root: Label Studio decides", "/data/local-files/?d=set/link.png", image.Pt(30, 30), true},
		{"directory symlink out of the root", "/data/local-files/?d=set/dirlink/secret.png", image.Pt(30, 30), true},
		{"absolute d maps under the root", "/data/local-files/?d=" + url.QueryEscape(filepath.Join(outside, "secret.png")), image.Pt(30, 30), true},
		{"a directory", "/data/local-files/?d=set", image.Pt(30, 30), true},
		{"a FIFO is not opened for reading (it would block)", "/data/local-files/?d=set/fifo.png", image.Pt(30, 30), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ls.rec.all())
			img := fetchOK(t, f, tt.ref)
			if got := img.Bounds().Size(); got != tt.wantSize {
				t.Errorf("size: got %v, want %v", got, tt.wantSize)
			}
			if got := len(ls.rec.all()) > before; got != tt.wantLS {
				t.Errorf("asked Label Studio: got %v, want %v", got, tt.wantLS)
			}
		})
	}

	t.Run("traversal", func(t *testing.T) {
		for _, ref := range []string{"/data/local-files/?d=../outside/secret.png", "/data/local-files/?d=set/../../outside/secret.png", "/data/local-files/?d=%2E%2E%2Foutside%2Fsecret.png"} {
			if fe := fetchErr(t, f, ref); fe.Status != http.StatusBadRequest {
				t.Errorf("%s: status got %d, want 400 (%v)", ref, fe.Status, fe)
			}
		}
	})

	t.Run("no Label Studio", func(t *testing.T) {
		f := newFetcher(t, Config{LocalFilesRoot: root})
		if got := fetchOK(t, f, "/data/local-files/?d=set/a%20b.png").Bounds().Size(); got != image.Pt(40, 20) {
			t.Errorf("size: got %v, want 40x20", got)
		}
		fe := fetchErr(t, f, "/data/local-files/?d=set/link.png")
		if fe.Status != http.StatusNotFound || !strings.Contains(fe.Error(), "LABEL_STUDIO_URL is not set") {
			t.Errorf("symlink out: got %d %q, want 404 naming LABEL_STUDIO_URL", fe.Status, fe)
		}
	})

	t.Run("root not mounted", func(t *testing.T) {
		f := newFetcher(t, Config{LabelStudio: ls.base(t), LocalFilesRoot: filepath.Join(dir, "absent"), Credentials: creds})
		if got := fetchOK(t, f, "/data/local-files/?d=set/a%20b.png").Bounds().Size(); got != image.Pt(30, 30) {
			t.Errorf("size: got %v, want 30x30 from Label Studio", got)
		}
	})

	t.Run("size cap", func(t *testing.T) {
		f := newFetcher(t, Config{LocalFilesRoot: root, MaxBytes: 100})
		if fe := fetchErr(t, f, "/data/local-files/?d=set/a%20b.png"); fe.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("status: got %d, want 413", fe.Status)
		}
	})
}

func TestFetchFormats(t *testing.T) {
	src := markedImage(48, 32)
	enc := func(fn func(*bytes.Buffer) error) []byte {
		var buf bytes.Buffer
		if err := fn(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	webpPlain, err := os.ReadFile("testdata/plain.webp")
	if err != nil {
		t.Fatal(err)
	}
	webp6, err := os.ReadFile("testdata/exif6.webp")
	if err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(src.Rect)
	for i := range gray.Pix {
		x, y := i%48, i/48
		if x < 16 && y < 16 {
			gray.Pix[i] = 230
		} else {
			gray.Pix[i] = 30
		}
	}
	// A GIF whose only frame covers part of the logical screen.
	pal := image.NewPaletted(image.Rect(8, 4, 40, 28), color.Palette{color.Black, red})
	small := enc(func(b *bytes.Buffer) error {
		return gif.EncodeAll(b, &gif.GIF{Image: []*image.Paletted{pal}, Delay: []int{0}, Config: image.Config{ColorModel: pal.Palette, Width: 48, Height: 32}})
	})

	tests := []struct {
		name       string
		ct         string
		body       []byte
		wantSize   image.Point
		wantCorner string // "" to skip
		gray       bool   // the mark is bright gray, not red
	}{
		{"JPEG", "image/jpeg", encodeJPEG(t, src, 95), image.Pt(48, 32), "TL", false},
		{"PNG", "image/png", encodePNG(t, src), image.Pt(48, 32), "TL", false},
		{"PNG eXIf 6", "image/png", withPNGExif(encodePNG(t, src), exifTIFF(6, binary.BigEndian)), image.Pt(32, 48), "TR", false},
		{"GIF", "image/gif", enc(func(b *bytes.Buffer) error { return gif.Encode(b, src, &gif.Options{NumColors: 256, Drawer: draw.Src}) }), image.Pt(48, 32), "TL", false},
		{"GIF frame smaller than the screen", "image/gif", small, image.Pt(48, 32), "", false},
		{"BMP", "image/bmp", enc(func(b *bytes.Buffer) error { return bmp.Encode(b, src) }), image.Pt(48, 32), "TL", false},
		{"TIFF (x/image encoder)", "image/tiff", enc(func(b *bytes.Buffer) error { return tiff.Encode(b, src, &tiff.Options{Compression: tiff.Deflate}) }), image.Pt(48, 32), "TL", false},
		{"TIFF orientation 8", "image/tiff", grayTIFF(gray, 8, binary.LittleEndian), image.Pt(32, 48), "BL", true},
		{"WebP lossless", "image/webp", webpPlain, image.Pt(48, 32), "TL", false},
		{"WebP EXIF 6", "image/webp", webp6, image.Pt(32, 48), "TR", false},
		{"wrong Content-Type is ignored", "application/octet-stream", encodePNG(t, src), image.Pt(48, 32), "TL", false},
	}
	ls := newFakeLS(t, "", "Token "+legacyKey)
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fmt.Sprintf("/data/upload/1/f%d", i)
			ls.serveBytes(p, tt.ct, tt.body)
			img := fetchOK(t, f, p)
			if got := img.Bounds(); got != (image.Rectangle{Max: tt.wantSize}) {
				t.Errorf("bounds: got %v, want (0,0)-%v", got, tt.wantSize)
			}
			corner := redCorner
			if tt.gray {
				corner = func(img image.Image) string {
					return cornerWhere(img, func(c color.Color) bool { y := color.GrayModel.Convert(c).(color.Gray).Y; return y > 200 })
				}
			}
			if tt.wantCorner != "" {
				if got := corner(img); got != tt.wantCorner {
					t.Errorf("red corner: got %q, want %q", got, tt.wantCorner)
				}
			}
		})
	}
	t.Run("GIF frame position", func(t *testing.T) {
		ls.serveBytes("/data/upload/1/gifpos", "image/gif", small)
		img := fetchOK(t, f, "/data/upload/1/gifpos")
		if _, _, _, a := img.At(2, 2).RGBA(); a != 0 {
			t.Errorf("outside the frame: got alpha %d, want transparent", a)
		}
		if c := img.At(8, 4); !isNear(c, color.RGBA{0, 0, 0, 255}, 0) {
			t.Errorf("frame origin: got %v, want the frame's black", c)
		}
	})
}

func TestFetchEXIFOrientations(t *testing.T) {
	// 64×32 JPEG, red block at the stored top-left. Where does it show?
	want := map[int]string{1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}
	jpg := encodeJPEG(t, markedImage(64, 32), 95)
	dir := t.TempDir()
	f := newFetcher(t, Config{LocalFilesRoot: dir})
	for o := 1; o <= 8; o++ {
		t.Run(fmt.Sprintf("orientation %d", o), func(t *testing.T) {
			var bo order = binary.LittleEndian
			if o%2 == 0 {
				bo = binary.BigEndian
			}
			name := fmt.Sprintf("o%d.jpg", o)
			if err := os.WriteFile(filepath.Join(dir, name), withJPEGExif(jpg, exifTIFF(o, bo)), 0o644); err != nil {
				t.Fatal(err)
			}
			img := fetchOK(t, f, "/data/local-files/?d="+name)
			wantSize := image.Pt(64, 32)
			if o >= 5 {
				wantSize = image.Pt(32, 64)
			}
			if got := img.Bounds(); got != (image.Rectangle{Max: wantSize}) {
				t.Errorf("bounds: got %v, want (0,0)-%v", got, wantSize)
			}
			if got := redCorner(img); got != want[o] {
				t.Errorf("red corner: got %q, want %q", got, want[o])
			}
			if _, ok := img.(*image.YCbCr); !ok {
				t.Errorf("type: got %T, want *image.YCbCr (even sides keep the planes)", img)
			}
		})
	}
}

// pngHeaderBomb is a valid PNG signature and IHDR that claims w×h pixels,
// followed by a tiny IDAT and IEND.
func pngHeaderBomb(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		c = append(c, typ...)
		c = append(c, data...)
		return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(out, chunk("IEND", nil)...)
}

func TestPixelBombIsRefusedBeforeDecoding(t *testing.T) {
	ls := newFakeLS(t, "", "Token "+legacyKey)
	ls.serveBytes("/data/upload/1/bomb.png", "image/png", pngHeaderBomb(100000, 100000))
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fe := fetchErr(t, f, "/data/upload/1/bomb.png")
	runtime.ReadMemStats(&after)

	if fe.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("status: got %d, want 413", fe.Status)
	}
	if want := "image is 100000×100000 = 10000000000 pixels, over the limit of 100000000 (MAX_IMAGE_PIXELS)"; !strings.Contains(fe.Error(), want) {
		t.Errorf("message: got %q, want it to contain %q", fe.Error(), want)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("allocated: got %d bytes, want under 16 MiB", got)
	}
}

func TestSizeCap(t *testing.T) {
	big := encodePNG(t, markedImage(200, 200))
	ls := newFakeLS(t, "", "Token "+legacyKey)
	ls.serveBytes("/data/upload/1/len.png", "image/png", big)
	ls.handle("/data/upload/1/chunked.png", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 100 {
			w.Write(big[i:min(i+100, len(big))])
			w.(http.Flusher).Flush()
		}
	})
	f := newFetcher(t, Config{LabelStudio: ls.base(t), MaxBytes: int64(len(big) - 1), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
	for _, p := range []string{"/data/upload/1/len.png", "/data/upload/1/chunked.png"} {
		fe := fetchErr(t, f, p)
		if fe.Status != http.StatusRequestEntityTooLarge || !strings.Contains(fe.Error(), fmt.Sprintf("larger than the limit of %d bytes", len(big)-1)) {
			t.Errorf("%s: got %d %q, want 413 naming the limit", p, fe.Status, fe)
		}
	}
	f = newFetcher(t, Config{LabelStudio: ls.base(t), MaxBytes: int64(len(big)), Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
	fetchOK(t, f, "/data/upload/1/chunked.png")
}

func TestTimeouts(t *testing.T) {
	ls := newFakeLS(t, "", "Token "+legacyKey)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ls.handle("/data/upload/1/stall-headers.png", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ls.handle("/data/upload/1/stall-body.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write(encodePNG(t, markedImage(8, 8))[:20])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	f := newFetcher(t, Config{LabelStudio: ls.base(t), Timeout: 50 * time.Millisecond, Credentials: &fakeCreds{headers: []string{"Token " + legacyKey}}})
	for _, p := range []string{"/data/upload/1/stall-headers.png", "/data/upload/1/stall-body.png"} {
		t.Run(p, func(t *testing.T) {
			fe := fetchErr(t, f, p)
			if fe.Status != http.StatusGatewayTimeout || !strings.Contains(fe.Error(), "timed out") {
				t.Errorf("got %d %q, want 504 timed out", fe.Status, fe)
			}
		})
	}
	t.Run("caller canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		loc, _ := f.Resolve("/data/upload/1/stall-headers.png", 0)
		_, err := f.Fetch(ctx, loc, "1")
		var fe *Error
		if !errors.As(err, &fe) || fe.Status != StatusClientClosedRequest {
			t.Errorf("got %v, want an *Error with status 499", err)
		}
	})
}

func TestTransportErrors(t *testing.T) {
	ls := newFakeLS(t, "")
	addr := ls.URL
	ls.Close() // nothing listens there now
	f := newFetcher(t, Config{AllowedHosts: []string{mustURL(t, addr).Host}})
	fe := fetchErr(t, f, addr+"/img.png?X-Amz-Signature=topsecret")
	if fe.Status != http.StatusBadGateway {
		t.Errorf("status: got %d, want 502", fe.Status)
	}
	if strings.Contains(fe.Error(), "topsecret") {
		t.Errorf("message %q carries the query string", fe.Error())
	}
	if !strings.Contains(fe.Error(), "connection refused") {
		t.Errorf("message %q: want the cause", fe.Error())
	}
}
