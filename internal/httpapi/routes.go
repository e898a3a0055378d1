// Package httpapi is the HTTP surface of the backend: Label Studio's
// ML-backend routes, basic auth, and JSON in and out.
package httpapi

import "net/http"

// routes lists the whole API.
func (s *Server) routes(mux *http.ServeMux) {
	mux.Handle("/{$}", s.auth(methods{"GET": s.handleHealth}))
	mux.Handle("/health", s.auth(methods{"GET": s.handleHealth}))
	mux.Handle("/setup", s.auth(methods{"POST": s.handleSetup}))
	mux.Handle("/predict", s.auth(methods{"POST": s.handlePredict}))
	mux.Handle("/webhook", methods{"POST": s.handleWebhook}) // Label Studio sends webhooks without basic auth.
	mux.Handle("/metrics", s.auth(methods{"GET": s.handleMetrics}))
	mux.Handle("/versions", s.auth(methods{"GET": s.handleVersions}))
	mux.Handle("/admin/cache/invalidate", s.adminOnly(methods{"POST": s.handleInvalidate}))
	mux.Handle("/", s.auth(http.HandlerFunc(s.handleNotFound)))
}
