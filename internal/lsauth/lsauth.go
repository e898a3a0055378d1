// Package lsauth turns a Label Studio API token into the value of an
// Authorization header.
//
// Label Studio accepts two kinds of API token (see
// reference/label-studio-internals.md §3):
//
//   - a legacy key, a plain string sent as "Token <key>";
//   - a personal access token (PAT), a JWT refresh token that is exchanged at
//     POST <LS>/api/token/refresh/ for a short-lived access token, sent as
//     "Bearer <access>".
//
// The kind is detected the way Label Studio's own clients do it: a token is a
// JWT when its first part decodes to a JSON object (IsJWT). An Exchanger
// performs the exchanges and caches the access tokens; a Static supplies one
// operator-configured token for every project.
//
// No token ever appears in an error returned by this package.
package lsauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"
)

// Defaults for an Exchanger.
const (
	// DefaultRefreshMargin is how long before an access token's exp claim the
	// Exchanger stops using it and exchanges the PAT again. It is capped at
	// half the token's lifetime, so that short-lived tokens are still reused.
	DefaultRefreshMargin = 30 * time.Second

	// DefaultExchangeTimeout bounds one exchange. An exchange runs detached
	// from the caller's context (other callers may be waiting for it), so it
	// needs its own limit.
	DefaultExchangeTimeout = 30 * time.Second

	// DefaultMaxEntries bounds the number of tokens whose headers are cached.
	// A deployment has one token per organization plus the static one, so the
	// bound only matters when tokens rotate for a long time.
	DefaultMaxEntries = 4096

	// maxResponseBytes caps how much of a refresh answer is read.
	maxResponseBytes = 64 << 10
)

// Errors that callers may branch on with errors.Is.
var (
	// ErrRefused means Label Studio refused a personal access token at
	// /api/token/refresh/: it was revoked or blacklisted, or API tokens are
	// disabled for the organization.
	ErrRefused = errors.New("personal access token refused")

	// ErrExpired means a JWT's exp claim has passed.
	ErrExpired = errors.New("token expired")
)

// IsJWT reports whether token looks like a JWT: three base64url parts whose
// first decodes to a JSON object (the JOSE header). This is the rule of
// Label Studio's is_jwt_formatted and of its SDK. Any other string is a
// legacy key.
func IsJWT(token string) bool {
	h, p, s, ok := splitJWT(token)
	if !ok || h == "" || p == "" {
		return false
	}
	if !isBase64URL(p) || !isBase64URL(s) {
		return false
	}
	hdr, err := decodeSegment(h)
	if err != nil {
		return false
	}
	var obj map[string]any
	return json.Unmarshal(hdr, &obj) == nil && obj != nil
}

// splitJWT splits token into its three dot-separated parts.
func splitJWT(token string) (header, payload, signature string, ok bool) {
	header, rest, ok1 := strings.Cut(token, ".")
	payload, signature, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(signature, ".") {
		return "", "", "", false
	}
	return header, payload, signature, true
}

// isBase64URL reports whether s uses only the base64url alphabet, with
// optional trailing padding.
func isBase64URL(s string) bool {
	s = strings.TrimRight(s, "=")
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// decodeSegment decodes one base64url JWT segment, with or without padding.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// claims are the JWT payload fields this package reads. The signature is
// never verified: Label Studio does that; we only need to know when a token
// stops being useful.
type claims struct {
	Exp       *float64 `json:"exp"`
	Iat       *float64 `json:"iat"`
	TokenType string   `json:"token_type"`
}

// parseClaims reads the payload of a JWT without verifying it.
func parseClaims(token string) (claims, error) {
	var c claims
	_, p, _, ok := splitJWT(token)
	if !ok {
		return c, errors.New("not a JWT")
	}
	raw, err := decodeSegment(p)
	if err != nil {
		return c, fmt.Errorf("decode JWT payload: %w", err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("decode JWT payload: %w", err)
	}
	return c, nil
}

// unixTime converts a NumericDate claim to a time.
func unixTime(v float64) time.Time {
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// authError is an error of this package. Its message is safe to show to a
// client: it never contains a token.
type authError struct {
	msg    string
	kind   error // ErrRefused, ErrExpired or nil
	status int   // HTTP status for a backend answer
	cause  error
}

func (e *authError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *authError) Unwrap() error { return e.cause }

func (e *authError) Is(target error) bool { return e.kind != nil && target == e.kind }

// HTTPStatus is the status a backend should answer with: 502, because the
// problem lies between this service and Label Studio, not in the request.
func (e *authError) HTTPStatus() int { return e.status }

// entry is a cached Authorization value.
type entry struct {
	header string
	// refreshAt is when the header must no longer be used; zero means never
	// (legacy keys).
	refreshAt time.Time
}

// Exchanger turns personal access tokens into access tokens and caches them.
// Each access token is reused until shortly before its exp claim (read,
// unverified, from the JWT payload). At most one exchange per PAT is in
// flight at a time. Legacy keys are answered without any request.
//
// An Exchanger is safe for concurrent use.
type Exchanger struct {
	refreshURL string // <LS>/api/token/refresh/
	displayURL string // refreshURL without userinfo, for messages
	client     *http.Client
	now        func() time.Time
	margin     time.Duration
	timeout    time.Duration
	maxEntries int
	flight     singleflight.Group
	mu         sync.RWMutex
	cache      map[string]entry // token → header
}

// NewExchanger returns an Exchanger for the Label Studio at base, which may
// include a sub-path (http://h/ls exchanges at http://h/ls/api/token/refresh/).
// A nil client means a client with DefaultExchangeTimeout; redirects are
// never followed, whatever the client's policy. A nil now means
// time.Now.
func NewExchanger(base *url.URL, client *http.Client, now func() time.Time) *Exchanger {
	if client == nil {
		client = &http.Client{Timeout: DefaultExchangeTimeout}
	}
	// The request body carries the personal access token: never follow a
	// redirect, which would re-send it (307/308) to wherever it points.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &c
	if now == nil {
		now = time.Now
	}
	e := &Exchanger{
		client:     client,
		now:        now,
		margin:     DefaultRefreshMargin,
		timeout:    DefaultExchangeTimeout,
		maxEntries: DefaultMaxEntries,
		cache:      make(map[string]entry),
	}
	if base != nil {
		u := *base
		u.Path = strings.TrimRight(u.Path, "/") + "/api/token/refresh/"
		u.RawPath = ""
		u.RawQuery = ""
		u.Fragment = ""
		e.refreshURL = u.String()
		e.displayURL = u.Redacted()
	}
	return e
}

// Header returns the Authorization value for token: "Token <key>" for a
// legacy key, "Bearer <access>" for a PAT (exchanged for an access token as
// needed). A JWT whose token_type claim is "access" is used as it is, until
// its exp. A cached answer takes one map look-up and does not allocate.
func (e *Exchanger) Header(ctx context.Context, token string) (string, error) {
	if h, ok := e.cached(token); ok {
		return h, nil
	}
	return e.header(ctx, token)
}

// cached returns token's cached header if it is still fresh.
func (e *Exchanger) cached(token string) (string, bool) {
	e.mu.RLock()
	ent, ok := e.cache[token]
	e.mu.RUnlock()
	if ok && (ent.refreshAt.IsZero() || e.now().Before(ent.refreshAt)) {
		return ent.header, true
	}
	return "", false
}

// header is the slow path of Header: classify the token and, for a PAT,
// exchange it.
func (e *Exchanger) header(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", &authError{msg: "API token is empty", status: http.StatusBadGateway}
	}
	if !IsJWT(token) {
		h := "Token " + token
		e.store(token, entry{header: h})
		return h, nil
	}
	c, err := parseClaims(token)
	if err != nil {
		return "", &authError{msg: "read personal access token", status: http.StatusBadGateway, cause: err}
	}
	now := e.now()
	if c.Exp != nil && !now.Before(unixTime(*c.Exp)) {
		return "", &authError{
			msg:    fmt.Sprintf("the API token (a JWT) expired at %s: create a new personal access token in Label Studio", unixTime(*c.Exp).Format(time.RFC3339)),
			kind:   ErrExpired,
			status: http.StatusBadGateway,
		}
	}
	if c.TokenType == "access" {
		// Already an access token: Label Studio would refuse to refresh it,
		// but accepts it as a bearer until it expires.
		h := "Bearer " + token
		e.store(token, entry{header: h, refreshAt: e.refreshAt(now, c)})
		return h, nil
	}
	if e.refreshURL == "" {
		return "", &authError{msg: "exchange personal access token: the Label Studio URL is not set (LABEL_STUDIO_URL)", status: http.StatusBadGateway}
	}

	ch := e.flight.DoChan(token, func() (any, error) {
		// A flight that ended between our cache miss and this call may
		// already have stored a fresh answer.
		if h, ok := e.cached(token); ok {
			return h, nil
		}
		// Detached from the first caller: others may be waiting for it.
		xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
		defer cancel()
		return e.exchange(xctx, token)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("exchange personal access token: %w", ctx.Err())
	}
}

// exchange posts the PAT to /api/token/refresh/ and caches the answer.
func (e *Exchanger) exchange(ctx context.Context, token string) (string, error) {
	body, err := json.Marshal(map[string]string{"refresh": token})
	if err != nil {
		return "", fmt.Errorf("encode refresh request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.refreshURL, bytes.NewReader(body))
	if err != nil {
		return "", &authError{msg: "build refresh request for " + e.displayURL, status: http.StatusBadGateway, cause: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // drop the URL, which is already in the message
		}
		return "", &authError{msg: "exchange personal access token at " + e.displayURL, status: http.StatusBadGateway, cause: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return "", &authError{msg: "read refresh answer from " + e.displayURL, status: http.StatusBadGateway, cause: err}
	}

	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", &authError{
			msg: fmt.Sprintf("Label Studio refused the personal access token (%s) at %s: it was revoked or blacklisted, or API tokens are disabled for the organization%s",
				resp.Status, e.displayURL, detail(raw, token)),
			kind:   ErrRefused,
			status: http.StatusBadGateway,
		}
	case resp.StatusCode == http.StatusNotFound:
		return "", &authError{
			msg:    fmt.Sprintf("exchange personal access token: %s answered 404 Not Found: Label Studio before 1.17 has no personal access tokens, use a legacy token, or check LABEL_STUDIO_URL", e.displayURL),
			status: http.StatusBadGateway,
		}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "", &authError{
			msg:    fmt.Sprintf("exchange personal access token: %s answered %s, a redirect, which is not followed with a token: set LABEL_STUDIO_URL to the address Label Studio serves on (scheme, host and port)", e.displayURL, resp.Status),
			status: http.StatusBadGateway,
		}
	case resp.StatusCode != http.StatusOK:
		return "", &authError{
			msg:    fmt.Sprintf("exchange personal access token: %s answered %s%s", e.displayURL, resp.Status, detail(raw, token)),
			status: http.StatusBadGateway,
		}
	}

	var ans struct {
		Access string `json:"access"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return "", &authError{msg: "exchange personal access token: the answer of " + e.displayURL + " is not JSON (is LABEL_STUDIO_URL the Label Studio URL?)", status: http.StatusBadGateway}
	}
	if ans.Access == "" {
		return "", &authError{msg: "exchange personal access token: the answer of " + e.displayURL + ` has no "access" token`, status: http.StatusBadGateway}
	}
	if !IsJWT(ans.Access) {
		return "", &authError{msg: "exchange personal access token: the access token from " + e.displayURL + " is not a JWT", status: http.StatusBadGateway}
	}
	c, err := parseClaims(ans.Access)
	if err != nil {
		return "", &authError{msg: "read access token from " + e.displayURL, status: http.StatusBadGateway, cause: err}
	}
	h := "Bearer " + ans.Access
	e.store(token, entry{header: h, refreshAt: e.refreshAt(e.now(), c)})
	return h, nil
}

// refreshAt computes when a just-received access token stops being used.
// The lifetime is exp-iat when both are present, so that a clock difference
// between Label Studio and this host does not matter; else exp-now. Without
// exp the token is used until Label Studio rejects it.
func (e *Exchanger) refreshAt(now time.Time, c claims) time.Time {
	if c.Exp == nil {
		return time.Time{}
	}
	life := unixTime(*c.Exp).Sub(now)
	if c.Iat != nil && *c.Iat < *c.Exp {
		life = unixTime(*c.Exp).Sub(unixTime(*c.Iat))
	}
	margin := min(e.margin, life/2)
	at := now.Add(life - margin)
	if !at.After(now) {
		// Already (nearly) expired: use it for this call only. Never return
		// the zero time, which means "forever".
		return now
	}
	return at
}

// detail returns ": <detail>" from a Label Studio JSON error body, or "".
// jwtLike matches what looks like a JWT, or the start of one.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]*`)

func detail(raw []byte, token string) string {
	var body struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Detail == "" {
		return ""
	}
	// Label Studio may quote the request, and so the token, back.
	d := strings.ReplaceAll(body.Detail, token, "<token>")
	d = jwtLike.ReplaceAllString(d, "<jwt>")
	if len(d) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(d[cut]) {
			cut--
		}
		d = d[:cut] + "…"
	}
	return fmt.Sprintf(" (Label Studio says %q)", d)
}

// store caches ent for token, evicting entries when the cache is full.
func (e *Exchanger) store(token string, ent entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.cache[token]; !ok && len(e.cache) >= e.maxEntries {
		now := e.now()
		for k, v := range e.cache {
			if !v.refreshAt.IsZero() && !now.Before(v.refreshAt) {
				delete(e.cache, k)
			}
		}
		for k := range e.cache {
			if len(e.cache) < e.maxEntries {
				break
			}
			delete(e.cache, k) // map order: an arbitrary victim
		}
	}
	e.cache[token] = ent
}

// Forget drops the cached header of token (after Label Studio rejected it),
// so that the next Header exchanges a PAT again.
func (e *Exchanger) Forget(token string) {
	e.mu.Lock()
	delete(e.cache, token)
	e.mu.Unlock()
}

// ForgetHeader drops the cached header of token only if it is still header.
// Use it after Label Studio rejected header: when another goroutine already
// replaced the access token, the new one is kept.
func (e *Exchanger) ForgetHeader(token, header string) {
	e.mu.Lock()
	if ent, ok := e.cache[token]; ok && ent.header == header {
		delete(e.cache, token)
	}
	e.mu.Unlock()
}

// Static supplies one operator-configured token (LABEL_STUDIO_API_KEY or
// LABEL_STUDIO_ACCESS_TOKEN) for every project. It is safe for concurrent
// use.
type Static struct {
	token  string
	legacy string // "Token <key>" when token is a legacy key
	ex     *Exchanger
}

// NewStatic returns a Static for token, exchanging it with ex when it is a
// PAT. ex may be nil when token is a legacy key or empty.
func NewStatic(token string, ex *Exchanger) *Static {
	s := &Static{token: token, ex: ex}
	if token != "" && !IsJWT(token) {
		s.legacy = "Token " + token
	}
	return s
}

// Authorization returns the Authorization value for any project, or "" and
// nil when no token is configured.
func (s *Static) Authorization(ctx context.Context, project string) (string, error) {
	switch {
	case s == nil || s.token == "":
		return "", nil
	case s.legacy != "":
		return s.legacy, nil
	case s.ex == nil:
		return "", &authError{msg: "the API token is a personal access token, which needs LABEL_STUDIO_URL to be exchanged", status: http.StatusBadGateway}
	}
	return s.ex.Header(ctx, s.token)
}

// Rejected tells s that Label Studio refused header: if it is the current
// access token, it is forgotten and the next Authorization exchanges again.
func (s *Static) Rejected(project, header string) {
	if s == nil || s.ex == nil || s.token == "" || s.legacy != "" {
		return
	}
	s.ex.ForgetHeader(s.token, header)
}
