// Package metrics keeps the backend's Prometheus metrics on a registry of
// its own and serves them. The other packages feed it through plain
// functions and small interfaces that the app wires up; only this package
// knows Prometheus.
//
// No label carries a token, a URL, a query or a file name: every label
// takes its values from a small fixed set (an outcome, a route pattern, an
// HTTP status code).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CacheStats is what the embedding cache has done so far.
type CacheStats struct {
	// Hits and Misses count predictions that found, or did not find, the
	// image's embedding cached.
	Hits, Misses int64
	// Evictions counts embeddings dropped to make room.
	Evictions int64
	// Bytes is the memory the cached embeddings hold now.
	Bytes int64
}

// Info describes the running backend for sam_build_info.
type Info struct {
	Version, ModelVersion, Model, ONNXRuntime string
}

// Metrics holds the backend's metrics. Its methods are safe for concurrent
// use.
type Metrics struct {
	reg *prometheus.Registry

	credentials     *prometheus.CounterVec
	credentialTime  *prometheus.HistogramVec
	fetchTime       *prometheus.HistogramVec
	fetchBytes      prometheus.Histogram
	encodeTime      prometheus.Histogram
	decodeTime      prometheus.Histogram
	inFlight        prometheus.Gauge
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
}

// New returns the metrics, reading the embedding cache's counters through
// cache whenever they are scraped.
func New(info Info, cache func() CacheStats) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		credentials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sam_credential_resolutions_total",
			Help: "Resolutions of a project's organization and Label Studio credential (for the embedding cache key, for image requests and for the HEALTH_VERIFY_TOKENS checks), by outcome: cache_hit, cache_miss, static, fallback (the static credential served after the organization's failed, which was counted too) or error.",
		}, []string{"outcome"}),
		credentialTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sam_credential_resolution_seconds",
			Help:    "Time to resolve a Label Studio credential, by outcome.",
			Buckets: []float64{1e-6, 1e-5, 1e-4, 5e-4, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"outcome"}),
		fetchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sam_image_fetch_seconds",
			Help:    "Time to download an image, by how it ended: the HTTP status code, local (read from LOCAL_FILES_DOCUMENT_ROOT), refused (not fetched) or error (no answer).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"status"}),
		fetchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sam_image_fetch_bytes",
			Help:    "Size of downloaded images.",
			Buckets: prometheus.ExponentialBuckets(16<<10, 4, 8), // 16 KiB to 256 MiB
		}),
		encodeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sam_encoder_seconds",
			Help:    "Time of one SAM encoder run (one per image not cached).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 16, 32},
		}),
		decodeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sam_decoder_seconds",
			Help:    "Time to decode one mask from a prompt (one per prediction), upscaling included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sam_predictions_in_flight",
			Help: "Predictions being answered now.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sam_http_requests_total",
			Help: "HTTP requests answered, by route pattern (other for unknown paths) and status code.",
		}, []string{"route", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sam_http_request_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sam_build_info",
		Help: "The running backend: 1, labelled with its version, model version, model kind and ONNX Runtime version.",
		ConstLabels: prometheus.Labels{"version": info.Version, "model_version": info.ModelVersion,
			"model": info.Model, "onnxruntime": info.ONNXRuntime},
	})
	build.Set(1)
	cacheCounter := func(name, help string, read func(CacheStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(read(cache())) })
	}
	reg.MustRegister(
		m.credentials, m.credentialTime, m.fetchTime, m.fetchBytes, m.encodeTime, m.decodeTime,
		m.inFlight, m.requests, m.requestDuration, build,
		cacheCounter("sam_embedding_cache_hits_total", "Predictions that found the image's embedding cached.",
			func(s CacheStats) int64 { return s.Hits }),
		cacheCounter("sam_embedding_cache_misses_total", "Predictions that waited for the image to be fetched and encoded.",
			func(s CacheStats) int64 { return s.Misses }),
		cacheCounter("sam_embedding_cache_evictions_total", "Embeddings dropped to make room (EMBEDDING_CACHE_MB).",
			func(s CacheStats) int64 { return s.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sam_embedding_cache_bytes", Help: "Memory held by cached embeddings."},
			func() float64 { return float64(cache().Bytes) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// ObserveCredential records a credential resolution.
func (m *Metrics) ObserveCredential(outcome string, d time.Duration) {
	m.credentials.WithLabelValues(outcome).Inc()
	m.credentialTime.WithLabelValues(outcome).Observe(d.Seconds())
}

// ObserveFetch records an image download.
func (m *Metrics) ObserveFetch(status string, bytes int64, d time.Duration) {
	m.fetchTime.WithLabelValues(status).Observe(d.Seconds())
	if bytes > 0 {
		m.fetchBytes.Observe(float64(bytes))
	}
}

// ObserveEncode records an encoder run.
func (m *Metrics) ObserveEncode(d time.Duration) { m.encodeTime.Observe(d.Seconds()) }

// ObserveDecode records a mask decoded.
func (m *Metrics) ObserveDecode(d time.Duration) { m.decodeTime.Observe(d.Seconds()) }

// ObserveRequest records an HTTP request answered.
func (m *Metrics) ObserveRequest(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route).Observe(d.Seconds())
}

// PredictionStarted counts a prediction in flight until done is called.
func (m *Metrics) PredictionStarted() (done func()) {
	m.inFlight.Inc()
	return m.inFlight.Dec
}
