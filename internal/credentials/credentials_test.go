package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/credentials"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
)

// memStore is an in-memory Store for the cache logic; the database itself
// is tested in lsdb and, end to end, in app.
type memStore struct {
	mu      sync.Mutex
	facts   map[int64]credentials.Facts
	err     error
	lookups atomic.Int64
	gate    chan struct{}
}

func (m *memStore) Lookup(ctx context.Context, id int64) (credentials.Facts, error) {
	m.lookups.Add(1)
	if m.gate != nil {
		<-m.gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return credentials.Facts{}, m.err
	}
	f, ok := m.facts[id]
	if !ok {
		return credentials.Facts{}, &credentials.Error{Status: 404, Msg: "project not found"}
	}
	return f, nil
}

func (m *memStore) setToken(id int64, tok string) {
	m.mu.Lock()
	f := m.facts[id]
	f.Token = tok
	m.facts[id] = f
	m.mu.Unlock()
}

// fakeExchanger turns PATs into "Bearer access-of-<pat>".
type fakeExchanger struct {
	mu        sync.Mutex
	forgotten []string
}

func (f *fakeExchanger) Header(ctx context.Context, token string) (string, error) {
	return "Bearer access-of-" + token, nil
}

func (f *fakeExchanger) ForgetHeader(token, header string) {
	if header == "Bearer access-of-"+token {
		f.Forget(token)
	}
}

func (f *fakeExchanger) Forget(token string) {
	f.mu.Lock()
	f.forgotten = append(f.forgotten, token)
	f.mu.Unlock()
}

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	pat  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"
)

func twoOrgs() *memStore {
	return &memStore{facts: map[int64]credentials.Facts{
		1: {ProjectID: 1, OrganizationID: 10, ProjectCreatedAt: 1700000000, UserID: 100, Token: keyA, LegacyEnabled: true},
		2: {ProjectID: 2, OrganizationID: 20, ProjectCreatedAt: 1700000001, UserID: 200, Token: keyB, LegacyEnabled: true},
		3: {ProjectID: 3, OrganizationID: 10, ProjectCreatedAt: 1700000002, UserID: 100, Token: keyA, LegacyEnabled: true},
		4: {ProjectID: 4, OrganizationID: 30, ProjectCreatedAt: 1700000003, UserID: 300, Token: "cccccccccc", LegacyEnabled: false},
	}}
}

func TestResolvesEachProjectsOrganization(t *testing.T) {
	r := credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{})
	tests := []struct{ project, want string }{
		{"1.1700000000", "Token " + keyA},
		{"2.1700000001", "Token " + keyB},
		{"3", "Token " + keyA},
		{"2", "Token " + keyB},
	}
	for _, tt := range tests {
		got, err := r.Authorization(context.Background(), tt.project)
		if err != nil || got != tt.want {
			t.Errorf("Authorization(%q) = %q, %v; want %q", tt.project, got, err, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	r := credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{})
	tests := []struct {
		project string
		status  int
		msg     []string
	}{
		{"1.1699999999", 409, []string{"created at 1700000000", "says 1699999999", "another Label Studio instance"}},
		{"x", 400, []string{"project"}},
		{"99", 404, []string{"not found"}},
		{"4", 502, []string{"legacy API tokens are disabled for organization 30", "user 300", "ORG_TOKENS_FILE", "Access Token Settings"}},
	}
	for _, tt := range tests {
		_, err := r.Authorization(context.Background(), tt.project)
		var se interface{ HTTPStatus() int }
		if !errors.As(err, &se) || se.HTTPStatus() != tt.status {
			t.Errorf("%s: err = %v, want status %d", tt.project, err, tt.status)
			continue
		}
		for _, m := range tt.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: %q lacks %q", tt.project, err, m)
			}
		}
		if strings.Contains(err.Error(), "cccccccccc") {
			t.Errorf("%s: error shows the token", tt.project)
		}
	}
	var lde *credentials.LegacyDisabledError
	_, err := r.Authorization(context.Background(), "4")
	if !errors.As(err, &lde) || lde.Organization != 30 {
		t.Errorf("err = %v, want a *LegacyDisabledError for organization 30", err)
	}
}

func TestNoTokenMessage(t *testing.T) {
	st := twoOrgs()
	st.setToken(2, "")
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
	_, err := r.Authorization(context.Background(), "2")
	if err == nil || err.Error() != "No auth token found for user 200 in organization 20" {
		t.Errorf("err = %v, want the exact message", err)
	}
}

func TestConcurrentMissesMakeOneLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := twoOrgs()
		st.gate = make(chan struct{})
		r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				if h, err := r.Authorization(context.Background(), "1.1700000000"); err != nil || h != "Token "+keyA {
					t.Errorf("got %q, %v", h, err)
				}
			})
		}
		synctest.Wait()
		close(st.gate)
		wg.Wait()
		if n := st.lookups.Load(); n != 1 {
			t.Errorf("64 concurrent first requests made %d database look-ups, want 1", n)
		}
	})
}

func TestTTLAndBriefErrorCaching(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	st := twoOrgs()
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{TTL: time.Minute, ErrorTTL: time.Second, Now: clock})
	ctx := context.Background()
	r.Authorization(ctx, "1")
	r.Authorization(ctx, "1")
	if n := st.lookups.Load(); n != 1 {
		t.Fatalf("%d look-ups for two requests, want 1", n)
	}
	now = now.Add(2 * time.Minute)
	r.Authorization(ctx, "1")
	if n := st.lookups.Load(); n != 2 {
		t.Errorf("after the TTL: %d look-ups, want 2", n)
	}
	// A failure is remembered for ErrorTTL only.
	r.Authorization(ctx, "99")
	r.Authorization(ctx, "99")
	if n := st.lookups.Load(); n != 3 {
		t.Errorf("a failure repeated: %d look-ups, want 3", n)
	}
	now = now.Add(2 * time.Second)
	r.Authorization(ctx, "99")
	if n := st.lookups.Load(); n != 4 {
		t.Errorf("after the error TTL: %d look-ups, want 4", n)
	}
}

func TestRejectedPicksUpARotatedToken(t *testing.T) {
	st := twoOrgs()
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
	ctx := context.Background()
	h, _ := r.Authorization(ctx, "1")
	st.setToken(1, "rotated-key-000000")
	if again, _ := r.Authorization(ctx, "1"); again != h {
		t.Fatalf("cached value changed without a rejection: %q", again)
	}
	r.Rejected("1", h)
	if got, _ := r.Authorization(ctx, "1"); got != "Token rotated-key-000000" {
		t.Errorf("after a rejection: %q, want the rotated token", got)
	}
}

func TestTokensFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(path, []byte(`{"30": "`+pat+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := credentials.LoadTokensFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ex := &fakeExchanger{}
	r := credentials.New(twoOrgs(), ex, credentials.Options{Tokens: tf})
	// Organization 30 has legacy tokens off, but the file gives it a PAT.
	if got, err := r.Authorization(context.Background(), "4"); err != nil || got != "Bearer access-of-"+pat {
		t.Errorf("got %q, %v; want the exchanged PAT", got, err)
	}

	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		changed := make(chan struct{}, 1)
		go tf.Watch(ctx, time.Second, slog.New(slog.DiscardHandler), func() { changed <- struct{}{} })
		for _, v := range []string{"legacy-key-for-40", "legacy-key-for-41"} { // the second rewrite keeps the size
			if err := os.WriteFile(path, []byte(`{"30": "legacy-key-for-30", "40": "`+v+`"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			select {
			case <-changed:
			default:
				t.Fatalf("the change to %s was not picked up", v)
			}
			if tok, _ := tf.Lookup(40); tok != v {
				t.Errorf("Lookup(40) = %q after reload, want %q", tok, v)
			}
		}
	})

	for _, bad := range []string{`[]`, `{"x": "abcdefgh"}`, `{"3": ""}`, `{"3": "` + pat, `{"` + pat + `": "3"}`} {
		os.WriteFile(path, []byte(bad), 0o600)
		_, err := credentials.LoadTokensFile(path)
		if err == nil {
			t.Errorf("accepted %q", bad)
		} else if strings.Contains(err.Error(), "eyJ") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

func TestInvalidate(t *testing.T) {
	st := twoOrgs()
	ex := &fakeExchanger{}
	r := credentials.New(st, ex, credentials.Options{})
	ctx := context.Background()
	for _, p := range []string{"1.1700000000", "2", "3"} {
		r.Authorization(ctx, p)
	}
	if n := r.Invalidate(1, 0); n != 1 {
		t.Errorf("Invalidate(project 1) dropped %d, want 1", n)
	}
	r.Authorization(ctx, "1.1700000000")
	if got := st.lookups.Load(); got != 4 {
		t.Errorf("look-ups %d, want 4 (project 1 read again)", got)
	}
	if n := r.Invalidate(0, 10); n != 2 { // projects 1 and 3
		t.Errorf("Invalidate(org 10) dropped %d, want 2", n)
	}
	if n := r.Invalidate(0, 0); n != 1 { // project 2
		t.Errorf("Invalidate(all) dropped %d, want 1", n)
	}
	before := st.lookups.Load()
	r.Authorization(ctx, "2")
	if st.lookups.Load() != before+1 {
		t.Error("project 2 was not read again after Invalidate(all)")
	}
}

func TestLogsNeverShowTokens(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := twoOrgs()
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{Logger: logger})
	ctx := context.Background()
	for _, p := range []string{"1", "1", "2", "4", "99"} {
		r.Authorization(ctx, p)
	}
	h, _ := r.Authorization(ctx, "2")
	r.Rejected("2", h)
	log := buf.String()
	if !strings.Contains(log, "Using dynamic credentials for project 1 (organization 10)") {
		t.Errorf("log lacks the resolution line:\n%s", log)
	}
	for _, secret := range []string{keyA, keyB, "cccccccccc"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains a token:\n%s", log)
		}
	}
}

type staticSource string

func (s staticSource) Authorization(context.Context, string) (string, error) { return string(s), nil }
func (s staticSource) Rejected(string, string)                               {}

func TestFallbackToStatic(t *testing.T) {
	var buf bytes.Buffer
	f := &credentials.Fallback{
		Primary:    credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{}),
		Static:     staticSource("Token static-key"),
		StaticName: "LABEL_STUDIO_API_KEY",
		Logger:     slog.New(slog.NewTextHandler(&buf, nil)),
	}
	if got, _ := f.Authorization(context.Background(), "1"); got != "Token "+keyA {
		t.Errorf("working middleware: %q", got)
	}
	if got, _ := f.Authorization(context.Background(), "99"); got != "Token static-key" {
		t.Errorf("failing middleware: %q, want the static credential", got)
	}
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "LABEL_STUDIO_API_KEY") {
		t.Errorf("no warning naming the variable logged:\n%s", buf.String())
	}
	if _, err := f.Authorization(context.Background(), "not-a-project"); err == nil {
		t.Error("a malformed project fell back to the static credential; want its 400")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Authorization(ctx, "98"); err == nil {
		t.Error("a cancelled request fell back to the static credential")
	}
}

func TestRejectedIgnoresOtherHeaders(t *testing.T) {
	st := twoOrgs()
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
	ctx := context.Background()
	r.Authorization(ctx, "1")
	r.Rejected("1", "Token some-older-key") // a late answer to an older request
	r.Rejected("1", "Token static-key")     // the static fallback's
	r.Authorization(ctx, "1")
	if n := st.lookups.Load(); n != 1 {
		t.Errorf("%d look-ups: a rejection of another header dropped the credential", n)
	}
}

// TestInvalidateDuringLookup: an answer read before an invalidation must
// not be cached after it.
func TestInvalidateDuringLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := twoOrgs()
		st.gate = make(chan struct{})
		r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
		done := make(chan string)
		go func() {
			h, _ := r.Authorization(context.Background(), "1")
			done <- h
		}()
		synctest.Wait() // the look-up has read the old token and waits
		st.setToken(1, "rotated-key-000000")
		r.Invalidate(0, 0)
		close(st.gate)
		<-done
		st.gate = nil
		if h, _ := r.Authorization(context.Background(), "1"); h != "Token rotated-key-000000" {
			t.Errorf("after the invalidation: %q, want the token read after it", h)
		}
	})
}

func BenchmarkCachedResolution(b *testing.B) {
	clock := lru.NewCoarseClock(250 * time.Millisecond)
	defer clock.Stop()
	r := credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{Now: clock.Now})
	ctx := context.Background()
	if _, err := r.Authorization(ctx, "1.1700000000"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Authorization(ctx, "1.1700000000"); err != nil {
			b.Fatal(err)
		}
	}
}

type unavailableErr struct{}

func (unavailableErr) Error() string   { return "Database file not found at /x/label_studio.sqlite3" }
func (unavailableErr) HTTPStatus() int { return 503 }

// TestStaleWhileError: while the database is down, a cached credential
// keeps serving past its TTL (up to Stale), retrying the database only every
// ErrorTTL; a project never cached gets the database's 503.
func TestStaleWhileError(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	st := twoOrgs()
	var buf bytes.Buffer
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{
		TTL: time.Minute, ErrorTTL: 5 * time.Second, Stale: time.Hour,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
	})
	ctx := context.Background()
	if h, err := r.Authorization(ctx, "1"); err != nil || h != "Token "+keyA {
		t.Fatalf("warm-up: %q, %v", h, err)
	}
	st.mu.Lock()
	st.err = unavailableErr{}
	st.mu.Unlock()

	now = now.Add(2 * time.Minute) // past the TTL: the database is read, and is down
	if h, err := r.Authorization(ctx, "1"); err != nil || h != "Token "+keyA {
		t.Errorf("database down, credential stale: %q, %v; want the cached credential", h, err)
	}
	before := st.lookups.Load()
	now = now.Add(time.Second)
	r.Authorization(ctx, "1")
	if st.lookups.Load() != before {
		t.Error("the database was tried again within ErrorTTL")
	}
	now = now.Add(10 * time.Second)
	r.Authorization(ctx, "1")
	if st.lookups.Load() != before+1 {
		t.Error("the database was not tried again after ErrorTTL")
	}
	if !strings.Contains(buf.String(), "serving a cached credential") {
		t.Errorf("no warning logged:\n%s", buf.String())
	}

	_, err := r.Authorization(ctx, "2") // never cached
	var se interface{ HTTPStatus() int }
	if !errors.As(err, &se) || se.HTTPStatus() != 503 || !strings.Contains(err.Error(), "Database file not found") {
		t.Errorf("uncached project while down: %v, want the database's 503", err)
	}

	now = now.Add(2 * time.Hour) // past TTL + Stale
	if _, err := r.Authorization(ctx, "1"); err == nil {
		t.Error("a credential older than TTL + Stale still served")
	}

	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	now = now.Add(10 * time.Second)
	if h, err := r.Authorization(ctx, "1"); err != nil || h != "Token "+keyA {
		t.Errorf("after recovery: %q, %v", h, err)
	}
}

// outcomes records Observe calls.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) observe(outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		outcome += " (negative duration)"
	}
	o.got = append(o.got, outcome)
}

func TestObserveCountsOutcomes(t *testing.T) {
	var o outcomes
	r := credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{Observe: o.observe})
	f := &credentials.Fallback{Primary: r, Static: staticSource("Token static-key"), StaticName: "LABEL_STUDIO_API_KEY",
		Logger: slog.New(slog.DiscardHandler), Observe: o.observe}
	ctx := context.Background()
	r.Authorization(ctx, "1")  // miss
	r.Authorization(ctx, "1")  // hit
	r.Organization(ctx, "1")   // hit: the embedding cache key needs the organization
	r.Authorization(ctx, "99") // unknown project
	f.Authorization(ctx, "98") // the middleware fails, the static key serves
	want := []string{credentials.OutcomeCacheMiss, credentials.OutcomeCacheHit, credentials.OutcomeCacheHit, credentials.OutcomeError,
		credentials.OutcomeError, credentials.OutcomeFallback}
	if fmt.Sprint(o.got) != fmt.Sprint(want) {
		t.Errorf("observed %v, want %v", o.got, want)
	}
}

func TestProjectsNamesOneProjectPerOrganization(t *testing.T) {
	st := twoOrgs()
	r := credentials.New(st, &fakeExchanger{}, credentials.Options{})
	ctx := context.Background()
	for _, p := range []string{"1", "3", "2", "99"} {
		r.Authorization(ctx, p)
	}
	got := r.Projects()
	if len(got) != 2 || got[10] != "3" || got[20] != "2" {
		t.Errorf("Projects() = %v; want organization 10's most recent project 3 and organization 20's project 2, none for the failed 99", got)
	}
}

func TestOrganizationAuthorizationComesFromOneAnswer(t *testing.T) {
	r := credentials.New(twoOrgs(), &fakeExchanger{}, credentials.Options{})
	for project, want := range map[string]struct {
		org    int64
		header string
	}{"1": {10, "Token " + keyA}, "2": {20, "Token " + keyB}, "3": {10, "Token " + keyA}} {
		org, h, err := r.OrganizationAuthorization(context.Background(), project)
		if err != nil || org != want.org || h != want.header {
			t.Errorf("project %s: organization %d, %v; want %d and its key", project, org, err, want.org)
		}
	}
	if _, _, err := r.OrganizationAuthorization(context.Background(), "99"); err == nil {
		t.Error("unknown project: no error")
	}
}
