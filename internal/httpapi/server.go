package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/logging"
)

// Predictor makes predictions.
type Predictor interface {
	// Predict answers a predict request.
	Predict(ctx context.Context, req *ls.PredictRequest) (*ls.PredictResponse, error)
}

// Invalidator drops cached credentials.
type Invalidator interface {
	// Invalidate drops everything cached for a project, for an
	// organization, or (both zero) everything. It returns how many entries
	// it dropped.
	Invalidate(project, organization int64) int
}

// OrgVerifier checks an organization's own basic-auth credentials.
type OrgVerifier interface {
	// Verify reports which organization user and password authenticate.
	Verify(user, password string) (org int64, ok bool)
}

// TenantChecker says whether a project is an organization's.
type TenantChecker interface {
	// CheckProject returns nil when project (as Label Studio names it in
	// requests) belongs to organization org, and otherwise an error whose
	// HTTPStatus is 403 (or 503 when it cannot tell).
	CheckProject(ctx context.Context, org int64, project string) error
}

// Observer receives measurements of the requests served.
type Observer interface {
	// ObserveRequest records a request answered: route is the route's
	// pattern ("other" for unknown paths), never the raw path.
	ObserveRequest(route string, status int, d time.Duration)
	// PredictionStarted counts a prediction in flight until done is
	// called.
	PredictionStarted() (done func())
}

// Config configures a Server.
type Config struct {
	// ModelVersion is reported by /setup, /versions and /health.
	ModelVersion string
	// Health holds extra /health fields, such as {"model": "demo"}. They are
	// fixed at start-up: /health does no work.
	Health map[string]any
	// Checks, if set, returns the latest results of background health
	// checks, shown under "checks", and whether any failed, shown as
	// "health": "degraded" (else "ok"). It must not block: /health answers
	// within Label Studio's 1 s however busy the backend is.
	Checks func() (checks map[string]any, degraded bool)
	// BasicAuthUser and BasicAuthPass turn on basic auth when both are set.
	BasicAuthUser, BasicAuthPass string
	// OrgAuth, if set, also accepts each organization's own credentials.
	// A request so authenticated may name only that organization's
	// projects, as Tenants says; anything else is a 403.
	OrgAuth OrgVerifier
	// Tenants is required with OrgAuth.
	Tenants TenantChecker
	// AdminToken enables the admin route; "" disables it (404).
	AdminToken string
	// MaxRequestBytes caps request bodies.
	MaxRequestBytes int64
	// MaxJSONDepth caps how deep a request body's arrays and objects
	// nest; 0 means DefaultMaxJSONDepth.
	MaxJSONDepth int
	// Logger receives request errors.
	Logger *slog.Logger
	// Observer, if set, receives request measurements.
	Observer Observer
	// Metrics, if set, serves GET /metrics; otherwise /metrics answers {}
	// as the reference backend does.
	Metrics http.Handler
}

// DefaultMaxJSONDepth is the default cap on a request body's nesting. Label
// Studio's deepest interactive payload nests about ten levels; task data
// is the operator's own and may go deeper.
const DefaultMaxJSONDepth = 100

// Server serves the API.
type Server struct {
	cfg         Config
	predictor   Predictor
	invalidator Invalidator
	log         *slog.Logger
	health      []byte
	fields      map[string]any
	handler     http.Handler
}

// New returns a Server. invalidator may be nil.
func New(cfg Config, p Predictor, inv Invalidator) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 32 << 20
	}
	if cfg.MaxJSONDepth <= 0 {
		cfg.MaxJSONDepth = DefaultMaxJSONDepth
	}
	if cfg.OrgAuth != nil && cfg.Tenants == nil {
		return nil, errors.New("new server: organization credentials need a TenantChecker")
	}
	fields := map[string]any{"model_class": ls.ModelClass, "status": "UP", "model_version": cfg.ModelVersion}
	for k, v := range cfg.Health {
		fields[k] = v
	}
	health, err := encodeJSON(fields)
	if err != nil {
		return nil, fmt.Errorf("encode health: %w", err)
	}
	s := &Server{cfg: cfg, predictor: p, invalidator: inv, log: cfg.Logger, health: health, fields: fields}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = mux
	return s, nil
}

// ServeHTTP serves a request. It gives the request an id, its client's
// X-Request-Id when that is a plain token or a new one, which it echoes
// in the response and which every log line of the request carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if !logging.ValidRequestID(id) {
		id = logging.NewRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	rec := &recorder{ResponseWriter: w, route: "other"}
	r = r.WithContext(logging.WithRequestID(r.Context(), id))
	s.handler.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	d := time.Since(start)
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveRequest(rec.route, rec.status, d)
	}
	ctx := r.Context()
	if rec.ctx != nil {
		ctx = rec.ctx
	}
	s.log.DebugContext(ctx, "request", "method", r.Method, "route", rec.route, "status", rec.status, "ms", float64(d.Microseconds())/1000)
}

// recorder remembers a response's status and the route that served it.
type recorder struct {
	http.ResponseWriter
	status int
	route  string
	ctx    context.Context // set by auth for an organization's request
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// route names the route of the handlers it wraps, for the Observer.
func route(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*recorder); ok {
			rec.route = name
		}
		h.ServeHTTP(w, r)
	})
}

// methods dispatches on the request method and answers others with a JSON
// 405.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	if r.Method == http.MethodHead {
		if h, ok := m["GET"]; ok {
			h(w, r)
			return
		}
	}
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	sort.Strings(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here; use %s", r.Method, strings.Join(allow, " or ")))
}

// auth requires basic auth when it is configured: the global user and
// password, or (with OrgAuth) an organization's own, in which case the
// organization rides in the request's context for checkTenant. Secrets are
// compared in constant time.
func (s *Server) auth(next http.Handler) http.Handler {
	global := s.cfg.BasicAuthUser != "" && s.cfg.BasicAuthPass != ""
	if !global && s.cfg.OrgAuth == nil {
		return next
	}
	wantUser, wantPass := []byte(s.cfg.BasicAuthUser), []byte(s.cfg.BasicAuthPass)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if ok && global {
			userOK := subtle.ConstantTimeCompare([]byte(user), wantUser)
			passOK := subtle.ConstantTimeCompare([]byte(pass), wantPass)
			if userOK&passOK == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		if ok && s.cfg.OrgAuth != nil {
			if org, ok := s.cfg.OrgAuth.Verify(user, pass); ok {
				ctx := logging.With(context.WithValue(r.Context(), orgKey{}, org), slog.Int64("auth_organization", org))
				if rec, ok := w.(*recorder); ok {
					rec.ctx = ctx // for the request's last log line
				}
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="Login required"`)
		writeError(w, http.StatusUnauthorized, "Unauthorized: this ML backend needs basic auth; set the user and password in the model's settings in Label Studio")
	})
}

// orgKey keys the authenticated organization in a request's context.
type orgKey struct{}

// Organization returns the organization a request authenticated as with
// its own credentials (OrgAuth), read from the request's context; false
// for a request with the global credentials or none. What serves such a
// request must not reach beyond that organization: no shared fallback
// credential, no shared cache entry.
func Organization(ctx context.Context) (int64, bool) {
	org, ok := ctx.Value(orgKey{}).(int64)
	return org, ok
}

// checkTenant refuses a request authenticated as an organization that
// names a project of another one, before anything is fetched.
func (s *Server) checkTenant(r *http.Request, project ls.ProjectField) error {
	org, ok := Organization(r.Context())
	if !ok {
		return nil
	}
	if project == "" {
		return &apiError{http.StatusForbidden, fmt.Sprintf("organization %d's credentials need the request to name its project", org)}
	}
	return s.cfg.Tenants.CheckProject(r.Context(), org, string(project))
}

// adminOnly hides the admin route unless an admin token is configured, and
// then requires it as a Bearer token.
func (s *Server) adminOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			s.handleNotFound(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			writeError(w, http.StatusUnauthorized, "Unauthorized: send Authorization: Bearer <ADMIN_TOKEN>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusClientClosedRequest is nginx's status for a request whose client
// went away before the answer.
const statusClientClosedRequest = 499

// statusError is an error whose message is safe to show the client and that
// knows its HTTP status. The packages that return one promise that its
// message carries no secret.
type statusError interface {
	error
	HTTPStatus() int
}

// fail answers with the status and message of the first statusError in
// err's chain, or with a generic 500; the full error goes to the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se statusError
	if errors.As(err, &se) {
		code := se.HTTPStatus()
		var ra interface{ RetryAfterSeconds() int }
		if errors.As(err, &ra) && ra.RetryAfterSeconds() > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ra.RetryAfterSeconds()))
		}
		level := slog.LevelWarn
		if code >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request failed", "path", r.URL.Path, "status", code, "err", err)
		writeError(w, code, se.Error())
		return
	}
	if errors.Is(err, context.Canceled) {
		s.log.InfoContext(r.Context(), "request cancelled by the client", "path", r.URL.Path, "err", err)
		writeError(w, statusClientClosedRequest, "request cancelled")
		return
	}
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.ErrorContext(r.Context(), "request timed out", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusGatewayTimeout, "timed out; the backend's log has the details")
		return
	}
	s.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "status", 500, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; the backend's log has the details")
}

// maxWebhookBytes caps a webhook's body. Webhooks need no basic auth, and
// the backend reads only their action: a large one is refused rather
// than buffered.
const maxWebhookBytes = 1 << 20

// decode reads a JSON body into v, with the size cap applied.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	return s.decodeLimit(w, r, v, s.cfg.MaxRequestBytes)
}

// decodeLimit is decode with a cap of limit bytes.
func (s *Server) decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	b, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			setting := "MAX_REQUEST_BYTES"
			if limit != s.cfg.MaxRequestBytes {
				setting = "webhooks are read for their action only"
			}
			return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes (%s)", tooBig.Limit, setting)}
		}
		return &apiError{http.StatusBadRequest, "read request body: " + err.Error()}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &apiError{http.StatusBadRequest, "request body is empty; want a JSON object"}
	}
	if at := jsonDepthOver(b, s.cfg.MaxJSONDepth); at >= 0 {
		return &apiError{http.StatusBadRequest, fmt.Sprintf("request body nests JSON deeper than %d levels at byte %d (MAX_JSON_DEPTH)", s.cfg.MaxJSONDepth, at)}
	}
	if err := json.Unmarshal(b, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return &apiError{http.StatusBadRequest, fmt.Sprintf("request body is not valid JSON: %v (at byte %d)", syn, syn.Offset)}
		case errors.As(err, &typ):
			field := "the request body"
			if typ.Field != "" {
				field = fmt.Sprintf("field %q", typ.Field)
			}
			return &apiError{http.StatusBadRequest, fmt.Sprintf("request body: %s must be %s, not %s", field, jsonKind(typ.Type), typ.Value)}
		}
		return &apiError{http.StatusBadRequest, "request body: " + err.Error()}
	}
	return nil
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another kind of value"
}

// apiError is an error made by this package, safe to show.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string   { return e.msg }
func (e *apiError) HTTPStatus() int { return e.code }

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Detail: msg, Status: code})
}

// errorBody is the JSON error shape: detail names the cause.
type errorBody struct {
	Detail string `json:"detail"`
	Status int    `json:"status"`
}

// writeJSON writes v as Flask's jsonify does: compact, keys sorted, non-ASCII
// escaped, newline-terminated.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := encodeJSON(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"detail":"internal error: encode response","status":500}` + "\n")
	}
	writeRaw(w, code, b)
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(code)
	w.Write(b) // An error here means the client went away; nothing to do.
}

// encodeJSON encodes v compactly, without HTML escaping, with non-ASCII
// runes escaped as \uXXXX (Python's ensure_ascii) and a trailing newline.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return asciiEscape(b), nil
		}
	}
	return b, nil
}

func asciiEscape(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out = append(out, b[0])
		case r > 0xFFFF:
			r1, r2 := utf16Pair(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + (r>>10)&0x3FF, 0xDC00 + r&0x3FF
}
