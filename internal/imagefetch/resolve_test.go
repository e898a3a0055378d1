package imagefetch

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
)

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestResolve(t *testing.T) {
	s3 := "s3://my-bucket/dir/image 1.jpg"
	s3b64 := base64.URLEncoding.EncodeToString([]byte(s3))
	tests := []struct {
		name     string
		ls       string
		root     string
		ref      string
		task     int64
		wantURL  string
		wantPath string
	}{
		{"upload", "http://ls:8080", "", "/data/upload/1/abc-photo.jpg", 0, "http://ls:8080/data/upload/1/abc-photo.jpg", ""},
		{"upload without /data", "http://ls:8080", "", "upload/1/abc-photo.jpg", 0, "http://ls:8080/data/upload/1/abc-photo.jpg", ""},
		{"/upload", "http://ls:8080", "", "/upload/1/abc-photo.jpg", 0, "http://ls:8080/data/upload/1/abc-photo.jpg", ""},
		{"upload, sub-path", "http://h/ls/", "", "/data/upload/1/a.png", 0, "http://h/ls/data/upload/1/a.png", ""},
		{"upload already under the sub-path", "http://h/ls", "", "/ls/data/upload/1/a.png", 0, "http://h/ls/data/upload/1/a.png", ""},
		{"relative upload, sub-path", "http://h/ls", "", "upload/1/a.png", 0, "http://h/ls/data/upload/1/a.png", ""},
		{"sub-path named /data", "http://h/data", "", "/data/upload/1/a.png", 0, "http://h/data/data/upload/1/a.png", ""},
		{"sub-path named /data, prefixed", "http://h/data", "", "/data/data/upload/1/a.png", 0, "http://h/data/data/upload/1/a.png", ""},
		{"escaped path", "http://ls", "", "/data/upload/1/my%20photo.jpg", 0, "http://ls/data/upload/1/my%20photo.jpg", ""},
		{"space in path", "http://ls", "", "/data/upload/1/my photo.jpg", 0, "http://ls/data/upload/1/my%20photo.jpg", ""},
		{"storage-data", "http://ls", "", "/storage-data/uploaded/?filepath=upload/1/a.png", 0, "http://ls/storage-data/uploaded/?filepath=upload/1/a.png", ""},
		{"local-files, no root", "http://ls", "", "/data/local-files/?d=dir/a.png", 0, "http://ls/data/local-files/?d=dir/a.png", ""},
		{"local-files, root", "http://ls", "/srv", "/data/local-files/?d=dir%2Fa%20b.png", 0, "http://ls/data/local-files/?d=dir%2Fa%20b.png", "dir/a b.png"},
		{"local-files, root, no LS", "", "/srv", "/data/local-files/?d=dir/a.png", 0, "", "dir/a.png"},
		{"local-files absolute d stays under the root", "http://ls", "/srv", "/data/local-files/?d=/etc/passwd", 0, "http://ls/data/local-files/?d=/etc/passwd", "etc/passwd"},
		{"local-files d with inner ..", "http://ls", "/srv", "/data/local-files/?d=a/../b/c.png", 0, "http://ls/data/local-files/?d=a/../b/c.png", "b/c.png"},
		{"absolute local-files URL on LS", "http://ls", "/srv", "http://ls/data/local-files/?d=x/y.jpg", 0, "http://ls/data/local-files/?d=x/y.jpg", "x/y.jpg"},
		{"s3", "http://h/ls", "", s3, 42, "http://h/ls/tasks/42/resolve/?fileuri=" + s3b64, ""},
		{"gs", "http://ls", "", "gs://b/k.png", 7, "http://ls/tasks/7/resolve/?fileuri=" + base64.URLEncoding.EncodeToString([]byte("gs://b/k.png")), ""},
		{"azure-blob", "http://ls", "", "azure-blob://c/k.png", 7, "http://ls/tasks/7/resolve/?fileuri=" + base64.URLEncoding.EncodeToString([]byte("azure-blob://c/k.png")), ""},
		{"external https", "http://ls", "", "https://cdn.example.com/i.jpg?X-Amz-Signature=s", 0, "https://cdn.example.com/i.jpg?X-Amz-Signature=s", ""},
		{"external without LS", "", "", "http://cdn.example.com/i.jpg", 0, "http://cdn.example.com/i.jpg", ""},
		{"fragment dropped", "", "", "http://cdn.example.com/i.jpg#frag", 0, "http://cdn.example.com/i.jpg", ""},
		{"whitespace trimmed", "http://ls", "", "  /data/upload/1/a.png\n", 0, "http://ls/data/upload/1/a.png", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{LocalFilesRoot: tt.root}
			if tt.ls != "" {
				cfg.LabelStudio = mustURL(t, tt.ls)
			}
			f := newFetcher(t, cfg)
			loc, err := f.Resolve(tt.ref, tt.task)
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.ref, err)
			}
			if loc.URL != tt.wantURL {
				t.Errorf("URL: got %q, want %q", loc.URL, tt.wantURL)
			}
			if loc.Path != tt.wantPath {
				t.Errorf("Path: got %q, want %q", loc.Path, tt.wantPath)
			}
			if strings.Contains(loc.String(), "?X-Amz") || strings.Contains(loc.String(), "Signature") {
				t.Errorf("String: got %q, want no query string", loc.String())
			}
		})
	}
}

func TestResolveS3RoundTrip(t *testing.T) {
	f := newFetcher(t, Config{LabelStudio: mustURL(t, "http://ls")})
	for _, uri := range []string{"s3://b/a.jpg", "s3://b/dir/ü ñ?.jpg", "gs://b/" + strings.Repeat("x", 301)} {
		loc, err := f.Resolve(uri, 3)
		if err != nil {
			t.Fatal(err)
		}
		u := mustURL(t, loc.URL)
		// Label Studio decodes fileuri with urlsafe_b64decode (padding kept).
		got, err := base64.URLEncoding.DecodeString(u.Query().Get("fileuri"))
		if err != nil || string(got) != uri {
			t.Errorf("fileuri of %q: got %q (%v), want the URI", uri, got, err)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, ls, ref string
		task          int64
		want          string
	}{
		{"empty", "http://ls", "  ", 0, "empty"},
		{"data URI", "http://ls", "data:image/png;base64,iVBORw0KGgo=", 0, "data: URI"},
		{"file URI", "http://ls", "file:///etc/passwd", 0, `scheme "file" is not supported`},
		{"ftp", "http://ls", "ftp://h/a.png", 0, `scheme "ftp" is not supported`},
		{"javascript", "http://ls", "javascript:alert(1)", 0, `scheme "javascript"`},
		{"garbage", "http://ls", "hello world", 0, "neither a URL nor a Label Studio path"},
		{"protocol-relative", "http://ls", "//evil.example/a.png", 0, "protocol-relative"},
		{"not a media path", "http://ls", "/api/projects/1", 0, "not a Label Studio media path"},
		{"dot-dot", "http://ls", "/data/upload/../../api/users", 0, `".." path element`},
		{"local-files without d", "http://ls", "/data/local-files/?x=1", 0, "no d= parameter"},
		{"local-files escape", "http://ls", "/data/local-files/?d=../../etc/passwd", 0, "escapes the document root"},
		{"local-files escape, encoded", "http://ls", "/data/local-files/?d=..%2F..%2Fsecret", 0, "escapes the document root"},
		{"s3 without task", "http://ls", "s3://b/k.png", 0, "needs the task id"},
		{"s3 without bucket", "http://ls", "s3:///k.png", 1, "has no bucket"},
		{"s3 without LS", "", "s3://b/k.png", 1, "LABEL_STUDIO_URL is not set"},
		{"upload without LS", "", "/data/upload/1/a.png", 0, "LABEL_STUDIO_URL is not set"},
		{"http without host", "http://ls", "http:///a.png", 0, "has no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.ls != "" {
				cfg.LabelStudio = mustURL(t, tt.ls)
			}
			loc, err := newFetcher(t, cfg).Resolve(tt.ref, tt.task)
			if err == nil {
				t.Fatalf("Resolve(%q): got %+v, want an error", tt.ref, loc)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.HTTPStatus() != http.StatusBadRequest {
				t.Errorf("error %v: want an *Error with status 400", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestKeyIdentifiesTheImage(t *testing.T) {
	f := newFetcher(t, Config{LabelStudio: mustURL(t, "http://ls:8080/sub"), LocalFilesRoot: "/srv"})
	key := func(ref string, task int64) string {
		t.Helper()
		loc, err := f.Resolve(ref, task)
		if err != nil {
			t.Fatal(err)
		}
		return loc.Key()
	}
	same := [][2]string{
		{"/data/upload/1/a.png", "upload/1/a.png"},
		{"/data/upload/1/a.png", "/sub/data/upload/1/a.png"},
		{"/data/upload/1/a.png", "http://ls:8080/sub/data/upload/1/a.png"},
		{"/data/upload/1/a.png", "HTTP://LS:8080/sub/data/upload/1/a.png"},
		{"/data/local-files/?d=x/a.png", "http://ls:8080/sub/data/local-files/?d=x%2Fa.png"},
		{"/data/local-files/?d=x/a.png", "/data/local-files/?d=/x/./a.png"},
	}
	for _, p := range same {
		if a, b := key(p[0], 1), key(p[1], 1); a != b {
			t.Errorf("Key(%q) != Key(%q), want equal", p[0], p[1])
		}
	}
	if key("s3://b/a.png", 1) != key("s3://b/a.png", 2) {
		t.Error("Key of one cloud URI in two tasks: got different keys, want equal")
	}
	differ := [][2]string{
		{"/data/upload/1/a.png", "/data/upload/2/a.png"},
		{"/data/upload/1/a.png", "http://other:8080/sub/data/upload/1/a.png"},
		{"s3://b/a.png", "gs://b/a.png"},
		{"/data/local-files/?d=x/a.png", "/data/local-files/?d=x/b.png"},
	}
	for _, p := range differ {
		if key(p[0], 1) == key(p[1], 1) {
			t.Errorf("Key(%q) == Key(%q), want different", p[0], p[1])
		}
	}
	if k := key("/data/upload/1/a.png", 0); len(k) != 64 || strings.Contains(k, "upload") {
		t.Errorf("Key: got %q, want 64 hex digits", k)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"LS without scheme", Config{LabelStudio: mustURL(t, "ls.example.com:8080")}, "LABEL_STUDIO_URL"},
		{"LS ftp", Config{LabelStudio: mustURL(t, "ftp://ls")}, "LABEL_STUDIO_URL"},
		{"negative MaxBytes", Config{MaxBytes: -1}, "MaxBytes"},
		{"negative MaxPixels", Config{MaxPixels: -1}, "MaxPixels"},
		{"negative Timeout", Config{Timeout: -1}, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"/data/upload/1/a.png", "upload/1/a.png", "/ls/data/upload/1/a.png",
		"/data/local-files/?d=dir/a.png", "/data/local-files/?d=../x", "/data/local-files/?d=%2F..%2F..",
		"s3://b/k.png", "gs://b/k", "azure-blob://c/k", "http://ls:8080/ls/data/upload/1/a.png",
		"https://cdn/x.jpg?sig=1", "data:image/png;base64,AAAA", "file:///etc/passwd", "", "//x/y",
		"http://[::1]:80/a", "/tasks/1/resolve/?fileuri=czM6Ly9iL2s=", "\x00", "/data/%zz",
	} {
		f.Add(s, int64(1))
	}
	fx, err := New(Config{LabelStudio: mustURL(f, "http://ls:8080/ls"), LocalFilesRoot: "/srv/files"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string, task int64) {
		loc, err := fx.Resolve(ref, task)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.HTTPStatus() != http.StatusBadRequest {
				t.Fatalf("Resolve(%q): error %v is not a 400 *Error", ref, err)
			}
			return
		}
		if loc.URL == "" && loc.Path == "" {
			t.Fatalf("Resolve(%q): empty location", ref)
		}
		if loc.URL != "" {
			u, err := url.Parse(loc.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("Resolve(%q): URL %q is not an absolute http(s) URL", ref, loc.URL)
			}
		}
		if loc.Path != "" {
			if strings.HasPrefix(loc.Path, "/") || loc.Path == ".." || strings.HasPrefix(loc.Path, "../") || path.Clean(loc.Path) != loc.Path {
				t.Fatalf("Resolve(%q): Path %q is not a clean relative path inside the root", ref, loc.Path)
			}
		}
		if k := loc.Key(); len(k) != 64 {
			t.Fatalf("Resolve(%q): Key %q", ref, k)
		}
		if s := loc.String(); strings.Contains(s, "?") && !strings.HasPrefix(s, localFilesPrefix+"?d=") {
			t.Fatalf("Resolve(%q): String %q carries a query", ref, s)
		}
	})
}
