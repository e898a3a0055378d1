package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sam-ml-backend/sam-ml-backend/internal/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestEveryMetricIsExported(t *testing.T) {
	cache := metrics.CacheStats{Hits: 7, Misses: 3, Evictions: 2, Bytes: 4 << 20}
	m := metrics.New(metrics.Info{Version: "v1.2.3", ModelVersion: "SamMLBackend-v0.0.1", Model: "sam", ONNXRuntime: "1.30.0"},
		func() metrics.CacheStats { return cache })
	m.ObserveCredential("cache_hit", 80*time.Nanosecond)
	m.ObserveCredential("cache_hit", 90*time.Nanosecond)
	m.ObserveCredential("fallback", time.Millisecond)
	m.ObserveFetch("200", 123456, 40*time.Millisecond)
	m.ObserveFetch("401", 0, 10*time.Millisecond)
	m.ObserveEncode(700 * time.Millisecond)
	m.ObserveDecode(4 * time.Millisecond)
	m.ObserveRequest("/predict", 200, 50*time.Millisecond)
	m.ObserveRequest("/predict", 403, time.Millisecond)
	done := m.PredictionStarted()
	m.PredictionStarted()()

	text := scrape(t, m)
	for _, want := range []string{
		`sam_credential_resolutions_total{outcome="cache_hit"} 2`,
		`sam_credential_resolutions_total{outcome="fallback"} 1`,
		`sam_credential_resolution_seconds_count{outcome="cache_hit"} 2`,
		`sam_image_fetch_seconds_count{status="200"} 1`,
		`sam_image_fetch_seconds_count{status="401"} 1`,
		`sam_image_fetch_bytes_sum 123456`,
		`sam_image_fetch_bytes_count 1`,
		`sam_encoder_seconds_sum 0.7`,
		`sam_decoder_seconds_count 1`,
		`sam_predictions_in_flight 1`,
		`sam_http_requests_total{route="/predict",status="200"} 1`,
		`sam_http_requests_total{route="/predict",status="403"} 1`,
		`sam_http_request_seconds_count{route="/predict"} 2`,
		`sam_embedding_cache_hits_total 7`,
		`sam_embedding_cache_misses_total 3`,
		`sam_embedding_cache_evictions_total 2`,
		`sam_embedding_cache_bytes 4.194304e+06`,
		`sam_build_info{model="sam",model_version="SamMLBackend-v0.0.1",onnxruntime="1.30.0",version="v1.2.3"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	done()
	cache.Hits = 8
	text = scrape(t, m)
	if !strings.Contains(text, "sam_predictions_in_flight 0") || !strings.Contains(text, "sam_embedding_cache_hits_total 8") {
		t.Error("a second scrape does not show the prediction done and the new cache hit")
	}
}

// TestMetricsAreConsistent runs the registry through Prometheus's own
// linter: names, help and units as Prometheus expects.
func TestMetricsAreConsistent(t *testing.T) {
	m := metrics.New(metrics.Info{}, func() metrics.CacheStats { return metrics.CacheStats{} })
	m.ObserveCredential("cache_miss", time.Millisecond)
	m.ObserveFetch("200", 1, time.Millisecond)
	m.ObserveRequest("/health", 200, time.Millisecond)
	problems, err := testutil.GatherAndLint(metrics.RegistryOf(m))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sam_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// BenchmarkObserveRequest measures what every request pays for metrics.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(metrics.Info{}, func() metrics.CacheStats { return metrics.CacheStats{} })
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveRequest("/predict", 200, time.Millisecond)
		m.PredictionStarted()()
	}
}
