package lsauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// clock is an injectable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// makeJWT builds a real-looking HS256 JWT: base64url header and payload, and
// a signature that nobody checks.
func makeJWT(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	sig := base64.RawURLEncoding.EncodeToString([]byte("not-a-real-signature-0123456789ab"))
	return hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "." + sig
}

// makePAT builds a Label Studio personal access token (a refresh JWT that
// lives for 200 years, as LSAPIToken does).
func makePAT(tb testing.TB, now time.Time, jti string) string {
	tb.Helper()
	return makeJWT(tb, map[string]any{
		"token_type": "refresh",
		"exp":        now.AddDate(200, 0, 0).Unix(),
		"iat":        now.Unix(),
		"jti":        jti,
		"user_id":    1,
	})
}

// fakeLS is a Label Studio that answers /api/token/refresh/ the way
// simplejwt does.
type fakeLS struct {
	t         testing.TB
	prefix    string // sub-path, "" or "/ls"
	clock     *clock
	life      time.Duration
	mu        sync.Mutex
	valid     map[string]bool // PAT → accepted
	exchanges atomic.Int64
	issued    atomic.Int64
	gate      chan struct{} // when non-nil, each exchange waits for it to close
	entered   chan struct{} // receives once per exchange, when non-nil
	answer    func(w http.ResponseWriter) bool
	other     atomic.Int64 // requests to any other path
}

func (f *fakeLS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != f.prefix+"/api/token/refresh/" {
		f.other.Add(1)
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, `{"detail":"Method not allowed."}`, http.StatusMethodNotAllowed)
		return
	}
	f.exchanges.Add(1)
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("refresh Content-Type: got %q, want application/json", ct)
	}
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body) != 1 || body["refresh"] == "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"refresh":["This field is required."]}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.answer != nil && f.answer(w) {
		return
	}
	f.mu.Lock()
	ok := f.valid[body["refresh"]]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"detail":"Token is blacklisted","code":"token_not_valid"}`)
		return
	}
	now := f.clock.Now()
	access := makeJWT(f.t, map[string]any{
		"token_type": "access",
		"exp":        now.Add(f.life).Unix(),
		"iat":        now.Unix(),
		"jti":        fmt.Sprintf("access-%d", f.issued.Add(1)),
		"user_id":    1,
	})
	json.NewEncoder(w).Encode(map[string]string{"access": access})
}

func (f *fakeLS) allow(pat string) {
	f.mu.Lock()
	f.valid[pat] = true
	f.mu.Unlock()
}

func newFakeLS(t *testing.T, prefix string) (*fakeLS, *url.URL) {
	t.Helper()
	f := &fakeLS{t: t, prefix: prefix, clock: newClock(), life: 5 * time.Minute, valid: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL + prefix)
	if err != nil {
		t.Fatal(err)
	}
	return f, base
}

func TestIsJWT(t *testing.T) {
	pat := makePAT(t, time.Now(), "x")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`))
	arr := base64.RawURLEncoding.EncodeToString([]byte(`[1,2]`))
	tests := []struct {
		name  string
		token string
		want  bool
	}{
		{"PAT", pat, true},
		{"padded segments", hdr + "==.eyJhIjoxfQ==.c2ln", true},
		{"no signature (alg none)", hdr + ".eyJhIjoxfQ.", true},
		{"legacy 40-hex key", "0123456789abcdef0123456789abcdef01234567", false},
		{"empty", "", false},
		{"two parts", hdr + ".eyJhIjoxfQ", false},
		{"four parts", hdr + ".eyJhIjoxfQ.c2ln.c2ln", false},
		{"header not JSON", "bm90LWpzb24.eyJhIjoxfQ.c2ln", false},
		{"header is an array", arr + ".eyJhIjoxfQ.c2ln", false},
		{"header is null", base64.RawURLEncoding.EncodeToString([]byte("null")) + ".eyJhIjoxfQ.c2ln", false},
		{"payload not base64url", hdr + ".e+J/.c2ln", false},
		{"empty payload", hdr + "..c2ln", false},
		{"dots only", "..", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsJWT(tt.token); got != tt.want {
				t.Errorf("IsJWT(%q): got %v, want %v", tt.token, got, tt.want)
			}
		})
	}
}

func TestHeaderLegacyKeyNeverHitsServer(t *testing.T) {
	f, base := newFakeLS(t, "")
	ex := NewExchanger(base, nil, f.clock.Now)
	const key = "0123456789abcdef0123456789abcdef01234567"
	for range 3 {
		got, err := ex.Header(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if want := "Token " + key; got != want {
			t.Errorf("Header: got %q, want %q", got, want)
		}
	}
	if n := f.exchanges.Load() + f.other.Load(); n != 0 {
		t.Errorf("requests to Label Studio: got %d, want 0", n)
	}
}

func TestHeaderPATCachedThenRefreshedBeforeExp(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "pat-1")
	f.allow(pat)
	ex := NewExchanger(base, nil, f.clock.Now)
	ctx := t.Context()

	first, err := ex.Header(ctx, pat)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, "Bearer ") || !IsJWT(strings.TrimPrefix(first, "Bearer ")) {
		t.Fatalf("Header: got %q, want Bearer <access JWT>", first)
	}
	if first == "Bearer "+pat {
		t.Fatal("Header sent the PAT itself, want the exchanged access token")
	}

	steps := []struct {
		name          string
		advance       time.Duration
		wantExchanges int64
		wantSame      bool
	}{
		{"immediately", 0, 1, true},
		{"4m29s later (31 s before exp)", 4*time.Minute + 29*time.Second, 1, true},
		{"4m31s later (29 s before exp)", 2 * time.Second, 2, false},
	}
	prev := first
	for _, st := range steps {
		f.clock.Advance(st.advance)
		got, err := ex.Header(ctx, pat)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n := f.exchanges.Load(); n != st.wantExchanges {
			t.Errorf("%s: exchanges: got %d, want %d", st.name, n, st.wantExchanges)
		}
		if same := got == prev; same != st.wantSame {
			t.Errorf("%s: header reused: got %v, want %v", st.name, same, st.wantSame)
		}
		prev = got
	}
}

func TestHeaderSubPath(t *testing.T) {
	f, base := newFakeLS(t, "/ls")
	pat := makePAT(t, f.clock.Now(), "pat-sub")
	f.allow(pat)
	for _, b := range []string{base.String(), base.String() + "/"} {
		u, _ := url.Parse(b)
		ex := NewExchanger(u, nil, f.clock.Now)
		if _, err := ex.Header(t.Context(), pat); err != nil {
			t.Errorf("base %s: %v", b, err)
		}
	}
	if got := f.exchanges.Load(); got != 2 {
		t.Errorf("exchanges at /ls/api/token/refresh/: got %d, want 2", got)
	}
	if got := f.other.Load(); got != 0 {
		t.Errorf("requests elsewhere: got %d, want 0", got)
	}
}

func TestForgetForcesExchange(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "pat-2")
	f.allow(pat)
	ex := NewExchanger(base, nil, f.clock.Now)
	h1, err := ex.Header(t.Context(), pat)
	if err != nil {
		t.Fatal(err)
	}

	ex.ForgetHeader(pat, "Bearer stale")
	if _, err := ex.Header(t.Context(), pat); err != nil {
		t.Fatal(err)
	}
	if got := f.exchanges.Load(); got != 1 {
		t.Errorf("exchanges after ForgetHeader with a stale header: got %d, want 1", got)
	}

	ex.Forget(pat)
	h2, err := ex.Header(t.Context(), pat)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.exchanges.Load(); got != 2 {
		t.Errorf("exchanges after Forget: got %d, want 2", got)
	}
	if h1 == h2 {
		t.Error("header after Forget: got the old access token, want a new one")
	}

	ex.ForgetHeader(pat, h2)
	if _, err := ex.Header(t.Context(), pat); err != nil {
		t.Fatal(err)
	}
	if got := f.exchanges.Load(); got != 3 {
		t.Errorf("exchanges after ForgetHeader with the current header: got %d, want 3", got)
	}
}

func TestConcurrentHeaderMakesOneExchange(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "pat-3")
	f.allow(pat)
	f.gate = make(chan struct{})
	f.entered = make(chan struct{}, 100)
	ex := NewExchanger(base, nil, f.clock.Now)

	const n = 16
	var started, done sync.WaitGroup
	started.Add(n)
	headers := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		done.Go(func() {
			started.Done()
			headers[i], errs[i] = ex.Header(t.Context(), pat)
		})
	}
	started.Wait()
	<-f.entered // the first exchange is held at the gate
	close(f.gate)
	done.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if headers[i] != headers[0] {
			t.Errorf("caller %d: got %q, want %q", i, headers[i], headers[0])
		}
	}
	if got := f.exchanges.Load(); got != 1 {
		t.Errorf("exchanges: got %d, want 1", got)
	}
}

func TestCallerCancelDoesNotBreakSharedExchange(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "pat-4")
	f.allow(pat)
	f.gate = make(chan struct{})
	f.entered = make(chan struct{}, 10)
	ex := NewExchanger(base, nil, f.clock.Now)

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := ex.Header(ctx, pat)
		errc <- err
	}()
	<-f.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: got %v, want context.Canceled", err)
	}
	close(f.gate) // the exchange itself goes on and fills the cache
	if _, err := ex.Header(t.Context(), pat); err != nil {
		t.Fatal(err)
	}
	if got := f.exchanges.Load(); got != 1 {
		t.Errorf("exchanges: got %d, want 1", got)
	}
}

func TestHeaderErrors(t *testing.T) {
	now := newClock().Now()
	tests := []struct {
		name          string
		token         func(t testing.TB, f *fakeLS) string
		answer        func(w http.ResponseWriter) bool
		wantIs        error
		wantMsg       string
		wantExchanges int64
	}{
		{
			name:          "revoked PAT",
			token:         func(t testing.TB, f *fakeLS) string { return makePAT(t, now, "revoked") },
			wantIs:        ErrRefused,
			wantMsg:       "revoked or blacklisted, or API tokens are disabled for the organization",
			wantExchanges: 1,
		},
		{
			name:  "403 API tokens disabled",
			token: func(t testing.TB, f *fakeLS) string { return makePAT(t, now, "disabled") },
			answer: func(w http.ResponseWriter) bool {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"detail":"API tokens are disabled"}`)
				return true
			},
			wantIs:        ErrRefused,
			wantMsg:       "refused the personal access token (403 Forbidden)",
			wantExchanges: 1,
		},
		{
			name: "expired PAT",
			token: func(t testing.TB, f *fakeLS) string {
				return makeJWT(t, map[string]any{"token_type": "refresh", "exp": now.Add(-time.Hour).Unix()})
			},
			wantIs:        ErrExpired,
			wantMsg:       "expired at 2026-03-01T11:00:00Z",
			wantExchanges: 0,
		},
		{
			name:  "HTML answer",
			token: func(t testing.TB, f *fakeLS) string { p := makePAT(t, now, "html"); f.allow(p); return p },
			answer: func(w http.ResponseWriter) bool {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, "<!doctype html><title>login</title>")
				return true
			},
			wantMsg:       "is not JSON",
			wantExchanges: 1,
		},
		{
			name:  "JSON without access",
			token: func(t testing.TB, f *fakeLS) string { p := makePAT(t, now, "noaccess"); f.allow(p); return p },
			answer: func(w http.ResponseWriter) bool {
				fmt.Fprint(w, `{"refresh":"x"}`)
				return true
			},
			wantMsg:       `has no "access" token`,
			wantExchanges: 1,
		},
		{
			name:  "access not a JWT",
			token: func(t testing.TB, f *fakeLS) string { p := makePAT(t, now, "notjwt"); f.allow(p); return p },
			answer: func(w http.ResponseWriter) bool {
				fmt.Fprint(w, `{"access":"abc"}`)
				return true
			},
			wantMsg:       "is not a JWT",
			wantExchanges: 1,
		},
		{
			name:  "server error",
			token: func(t testing.TB, f *fakeLS) string { p := makePAT(t, now, "5xx"); f.allow(p); return p },
			answer: func(w http.ResponseWriter) bool {
				w.WriteHeader(http.StatusInternalServerError)
				return true
			},
			wantMsg:       "answered 500 Internal Server Error",
			wantExchanges: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, base := newFakeLS(t, "")
			f.answer = tt.answer
			token := tt.token(t, f)
			ex := NewExchanger(base, nil, f.clock.Now)
			got, err := ex.Header(t.Context(), token)
			if err == nil {
				t.Fatalf("Header: got %q, nil error; want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v): got false for %q", tt.wantIs, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), strings.Split(token, ".")[1]) {
				t.Errorf("error %q contains the token", err)
			}
			var hs interface{ HTTPStatus() int }
			if !errors.As(err, &hs) || hs.HTTPStatus() != http.StatusBadGateway {
				t.Errorf("HTTPStatus: got %v, want 502", hs)
			}
			if got := f.exchanges.Load(); got != tt.wantExchanges {
				t.Errorf("exchanges: got %d, want %d", got, tt.wantExchanges)
			}
		})
	}
}

func TestRefusedAnswerIsNotCached(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "later-valid")
	ex := NewExchanger(base, nil, f.clock.Now)
	if _, err := ex.Header(t.Context(), pat); !errors.Is(err, ErrRefused) {
		t.Fatalf("first Header: got %v, want ErrRefused", err)
	}
	f.allow(pat)
	if _, err := ex.Header(t.Context(), pat); err != nil {
		t.Fatalf("second Header: %v", err)
	}
	if got := f.exchanges.Load(); got != 2 {
		t.Errorf("exchanges: got %d, want 2", got)
	}
}

func TestAccessTokenIsUsedAsIs(t *testing.T) {
	f, base := newFakeLS(t, "")
	access := makeJWT(t, map[string]any{"token_type": "access", "exp": f.clock.Now().Add(5 * time.Minute).Unix()})
	ex := NewExchanger(base, nil, f.clock.Now)
	got, err := ex.Header(t.Context(), access)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Bearer " + access; got != want {
		t.Errorf("Header: got %q, want %q", got, want)
	}
	f.clock.Advance(6 * time.Minute)
	if _, err := ex.Header(t.Context(), access); !errors.Is(err, ErrExpired) {
		t.Errorf("Header after exp: got %v, want ErrExpired", err)
	}
	if got := f.exchanges.Load(); got != 0 {
		t.Errorf("exchanges: got %d, want 0", got)
	}
}

func TestRefreshAtSkewAndShortLifetimes(t *testing.T) {
	now := newClock().Now()
	ex := NewExchanger(nil, nil, func() time.Time { return now })
	f := func(v time.Time) *float64 { x := float64(v.Unix()); return &x }
	tests := []struct {
		name string
		c    claims
		want time.Time
	}{
		{"5 min token", claims{Exp: f(now.Add(5 * time.Minute)), Iat: f(now)}, now.Add(4*time.Minute + 30*time.Second)},
		{"LS clock 10 min behind", claims{Exp: f(now.Add(-5 * time.Minute)), Iat: f(now.Add(-10 * time.Minute))}, now.Add(4*time.Minute + 30*time.Second)},
		{"20 s token: half its life", claims{Exp: f(now.Add(20 * time.Second)), Iat: f(now)}, now.Add(10 * time.Second)},
		{"no iat", claims{Exp: f(now.Add(time.Minute))}, now.Add(30 * time.Second)},
		{"no exp: until rejected", claims{}, time.Time{}},
		{"expired, no iat: this call only", claims{Exp: f(now.Add(-time.Minute))}, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ex.refreshAt(now, tt.c); !got.Equal(tt.want) {
				t.Errorf("refreshAt: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "static")
	f.allow(pat)
	ex := NewExchanger(base, nil, f.clock.Now)
	ctx := t.Context()

	t.Run("empty token", func(t *testing.T) {
		got, err := NewStatic("", ex).Authorization(ctx, "1.1")
		if got != "" || err != nil {
			t.Errorf("Authorization: got %q, %v; want \"\", nil", got, err)
		}
	})
	t.Run("legacy key without exchanger", func(t *testing.T) {
		got, err := NewStatic("abc123", nil).Authorization(ctx, "1.1")
		if got != "Token abc123" || err != nil {
			t.Errorf("Authorization: got %q, %v; want \"Token abc123\", nil", got, err)
		}
	})
	t.Run("PAT without exchanger", func(t *testing.T) {
		_, err := NewStatic(pat, nil).Authorization(ctx, "1.1")
		if err == nil || !strings.Contains(err.Error(), "LABEL_STUDIO_URL") || strings.Contains(err.Error(), pat) {
			t.Errorf("Authorization: got %v, want an error naming LABEL_STUDIO_URL", err)
		}
	})
	t.Run("PAT rejected then re-exchanged", func(t *testing.T) {
		s := NewStatic(pat, ex)
		h1, err := s.Authorization(ctx, "1.1")
		if err != nil {
			t.Fatal(err)
		}
		s.Rejected("1.1", "Bearer something-else")
		if h, _ := s.Authorization(ctx, "1.1"); h != h1 {
			t.Errorf("after Rejected(stale header): got a new header, want the cached one")
		}
		s.Rejected("1.1", h1)
		h2, err := s.Authorization(ctx, "1.1")
		if err != nil {
			t.Fatal(err)
		}
		if h2 == h1 {
			t.Error("after Rejected(current header): got the same access token, want a new one")
		}
		if got := f.exchanges.Load(); got != 2 {
			t.Errorf("exchanges: got %d, want 2", got)
		}
	})
}

func TestCacheIsBounded(t *testing.T) {
	ex := NewExchanger(nil, nil, nil)
	ex.maxEntries = 8
	for i := range 100 {
		if _, err := ex.Header(t.Context(), fmt.Sprintf("key-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(ex.cache); got > 8 {
		t.Errorf("cache entries: got %d, want at most 8", got)
	}
}

func BenchmarkHeaderCached(b *testing.B) {
	c := newClock()
	srv := httptest.NewServer(&fakeLS{t: b, clock: c, life: time.Hour, valid: map[string]bool{}})
	defer srv.Close()
	pat := makePAT(b, c.Now(), "bench")
	srv.Config.Handler.(*fakeLS).allow(pat)
	base, _ := url.Parse(srv.URL)
	ex := NewExchanger(base, nil, c.Now)
	ctx := context.Background()
	if _, err := ex.Header(ctx, pat); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := ex.Header(ctx, pat); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzIsJWT(f *testing.F) {
	now := newClock().Now()
	f.Add(makePAT(f, now, "seed"))
	f.Add(makeJWT(f, map[string]any{"token_type": "access", "exp": 1.5e9, "iat": "x"}))
	f.Add("0123456789abcdef0123456789abcdef01234567")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		if !IsJWT(token) {
			return
		}
		// A JWT-looking token is classified without panicking, and an
		// expired or access-type one never reaches the (absent) server.
		c, err := parseClaims(token)
		if err == nil && c.Exp != nil {
			_ = unixTime(*c.Exp)
		}
		ex := NewExchanger(nil, nil, func() time.Time { return now })
		h, err := ex.Header(context.Background(), token)
		if err == nil && !strings.HasPrefix(h, "Bearer ") {
			t.Fatalf("Header of a JWT: got %q, want a Bearer value", h)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q contains the token", err)
		}
	})
}

// TestExchangeDoesNotFollowRedirects: a redirect would re-send the POST body,
// and so the personal access token, to another origin.
func TestExchangeDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Write([]byte(`{"access":"x"}`))
	}))
	defer other.Close()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		f, base := newFakeLS(t, "")
		f.answer = func(w http.ResponseWriter) bool {
			w.Header().Set("Location", other.URL+"/api/token/refresh/")
			w.WriteHeader(code)
			return true
		}
		pat := makePAT(t, f.clock.Now(), "redirected")
		f.allow(pat)
		// A client that would follow redirects, as http.DefaultClient does.
		ex := NewExchanger(base, &http.Client{}, f.clock.Now)
		_, err := ex.Header(context.Background(), pat)
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%d: err = %v, want one that names the redirect", code, err)
		}
		if err != nil && strings.Contains(err.Error(), pat) {
			t.Errorf("%d: the error contains the token", code)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other origin got %d refresh requests, want 0", n)
	}
}

// TestQuotedDetailHidesTheToken: Label Studio's error text may quote the
// request body back; the token must not reach our error.
func TestQuotedDetailHidesTheToken(t *testing.T) {
	f, base := newFakeLS(t, "")
	pat := makePAT(t, f.clock.Now(), "echoed")
	f.answer = func(w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"detail": `bad request: {"refresh": "` + pat + `"} ` + strings.Repeat("é", 150)})
		return true
	}
	ex := NewExchanger(base, nil, f.clock.Now)
	_, err := ex.Header(context.Background(), pat)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, part := range strings.Split(pat, ".") {
		if len(part) > 8 && strings.Contains(msg, part[:8]) {
			t.Errorf("error quotes part of the token: %s", msg)
		}
	}
	if !utf8.ValidString(msg) {
		t.Errorf("error is not valid UTF-8: %q", msg)
	}
}
