package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// metricValue returns the value of the sample named exactly series (name
// and labels as the text format prints them), or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// TestMetricsAndLogsOfARun runs predictions on both organizations (one
// refused; a static key is set but never needed), then checks /metrics
// counts them without carrying a token, a URL or a file name, and that the
// JSON log has one line per prediction with its stage times and the
// request's id.
func TestMetricsAndLogsOfARun(t *testing.T) {
	f := newOrgFixture(t)
	logs := &syncBuffer{}
	srv := f.serve(t, map[string]string{"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG",
		"LABEL_STUDIO_API_KEY": f.keys[1]}, logs)

	var ids []string
	for _, body := range [][]byte{orgRequest(t, 1, 1), orgRequest(t, 1, 1), orgRequest(t, 2, 2)} {
		req, _ := http.NewRequest("POST", srv.URL+"/predict", bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("predict: %d", resp.StatusCode)
		}
		ids = append(ids, resp.Header.Get("X-Request-Id"))
	}
	// A client's own request id is kept; a forged one is replaced.
	req, _ := http.NewRequest("POST", srv.URL+"/predict", bytes.NewReader(setupProject(t, orgRequest(t, 1, 3), orgProject(2))))
	req.Header.Set("X-Request-Id", "ls-req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Request-Id") != "ls-req-42" {
		t.Errorf("a refused request: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	req, _ = http.NewRequest("GET", srv.URL+"/health", nil)
	req.Header.Set("X-Request-Id", "evil\" level=ERROR")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(got) {
		t.Errorf("a forged X-Request-Id came back as %q; want a new id", got)
	}

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for series, want := range map[string]float64{
		`sam_http_requests_total{route="/predict",status="200"}`:        3,
		`sam_http_requests_total{route="/predict",status="403"}`:        1,
		`sam_credential_resolutions_total{outcome="cache_miss"}`:        2, // one per organization's project
		`sam_credential_resolutions_total{outcome="cache_hit"}`:         4, // the others, for cache keys and fetches
		`sam_image_fetch_seconds_count{status="200"}`:                   2,
		`sam_embedding_cache_hits_total`:                                1,
		`sam_embedding_cache_misses_total`:                              2,
		`sam_encoder_seconds_count`:                                     2,
		`sam_decoder_seconds_count`:                                     3,
		`sam_predictions_in_flight`:                                     0,
		`sam_credential_resolutions_total{outcome="fallback"}`:          -1, // none: both organizations resolve
		`sam_http_requests_total{route="/health",status="200"}`:         1,
		`sam_image_fetch_seconds_count{status="refused"}`:               -1,
		`sam_credential_resolution_seconds_count{outcome="cache_miss"}`: 2,
	} {
		if got := metricValue(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, secret := range []string{f.keys[1], f.keys[2], "/data/upload", "img-1.png", "upload"} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}

	// One JSON line per prediction, with its stage times and request id.
	predictions := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if rec["msg"] == "prediction" {
			id, _ := rec["request_id"].(string)
			predictions[id] = rec
		}
	}
	if len(predictions) != 3 {
		t.Fatalf("%d prediction lines with distinct request ids, want 3", len(predictions))
	}
	for _, id := range ids {
		rec, ok := predictions[id]
		if !ok {
			t.Errorf("no prediction line with request_id %q", id)
			continue
		}
		for _, k := range []string{"fetch_ms", "encode_ms", "decode_ms", "rle_ms", "total_ms", "cache_hit", "task", "project"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("prediction line %v lacks %s", rec, k)
			}
		}
	}
	for _, secret := range []string{f.keys[1], f.keys[2]} {
		if strings.Contains(logs.String(), secret) {
			t.Error("the log shows a token")
		}
	}
}
