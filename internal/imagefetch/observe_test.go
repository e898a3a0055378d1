package imagefetch

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestObserveReportsEachDownload: every Fetch reports how its download
// ended, with the bytes read, and never the URL.
func TestObserveReportsEachDownload(t *testing.T) {
	png := encodePNG(t, markedImage(40, 20))
	ls := newFakeLS(t, "", "Token "+legacyKey)
	ls.serveBytes("/data/upload/1/a.png", "image/png", png)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "b.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	f := newFetcher(t, Config{
		LabelStudio:    ls.base(t),
		LocalFilesRoot: root,
		Credentials:    &fakeCreds{headers: []string{"Token " + legacyKey}},
		Observe: func(status string, bytes int64, d time.Duration) {
			if d <= 0 {
				t.Errorf("observed a download of %v", d)
			}
			mu.Lock()
			got = append(got, fmt.Sprintf("%s %d", status, bytes))
			mu.Unlock()
		},
	})
	fetchOK(t, f, "/data/upload/1/a.png")
	fetchErr(t, f, "/data/upload/1/missing.png")
	fetchOK(t, f, "/data/local-files/?d=b.png")
	fetchErr(t, f, "http://169.254.169.254/latest/meta-data/")
	want := []string{
		fmt.Sprintf("200 %d", len(png)),
		"500 0", // Label Studio answers a missing upload with a 500
		fmt.Sprintf("local %d", len(png)),
		"refused 0",
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}
