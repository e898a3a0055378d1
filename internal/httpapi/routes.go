// Package httpapi is the HTTP surface of the backend: Label Studio's
// ML-backend routes, basic auth, and JSON in and out.
package httpapi

import "net/http"

// routes lists the whole API.
func (s *Server) routes(mux *http.ServeMux) {
	handle := func(pattern string, h http.Handler) { mux.Handle(pattern, route(pattern, h)) }
	handle("/{$}", s.auth(methods{"GET": s.handleHealth}))
	handle("/health", s.auth(methods{"GET": s.handleHealth}))
	handle("/setup", s.auth(methods{"POST": s.handleSetup}))
	handle("/predict", s.auth(methods{"POST": s.handlePredict}))
	handle("/webhook", methods{"POST": s.handleWebhook}) // Label Studio sends webhooks without basic auth.
	handle("/metrics", s.auth(methods{"GET": s.handleMetrics}))
	handle("/versions", s.auth(methods{"GET": s.handleVersions}))
	handle("/admin/cache/invalidate", s.adminOnly(methods{"POST": s.handleInvalidate}))
	mux.Handle("/", s.auth(http.HandlerFunc(s.handleNotFound))) // route "other"
}
