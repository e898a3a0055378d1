package app_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the writable connection that builds test databases
)

// orgFixture is a Label Studio with two organizations, built from LS 1.23's
// schema, and an httptest Label Studio that serves each organization's
// images only to that organization's token, as a multi-organization
// install with per-organization storage permissions would.
type orgFixture struct {
	dbPath string
	ls     *httptest.Server
	mu     sync.Mutex
	keys   map[int64]string // organization → the key LS accepts now
	seen   []seenRequest
	// pats maps a personal access token to its organization; LS
	// exchanges it at /api/token/refresh/ for an access token, which it
	// then accepts as Bearer for that organization's images.
	pats     map[string]int64
	accesses map[string]int64
	// super is an administrator's key that Label Studio accepts for
	// every organization's images, as a static LABEL_STUDIO_API_KEY.
	super string
}

// jwt builds a JWT-shaped token with the given claims (unsigned: Label
// Studio's signature is not the backend's business).
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("signature-not-checked"))
}

type seenRequest struct {
	org  int64 // whose image
	auth string
}

const orgCreatedAt = "2026-07-17 09:34:19.135947"

// orgProject is the project reference LS sends for project id.
func orgProject(id int64) string {
	ts, _ := time.Parse("2006-01-02 15:04:05.999999", orgCreatedAt)
	return fmt.Sprintf("%d.%d", id, ts.Unix()+id)
}

func newOrgFixture(t *testing.T) *orgFixture {
	t.Helper()
	f := &orgFixture{
		dbPath: filepath.Join(t.TempDir(), "label_studio.sqlite3"),
		keys:   map[int64]string{1: "org1key0123456789abcdef0123456789abcdef", 2: "org2key0123456789abcdef0123456789abcdef"},
		super:  "superkey0123456789abcdef0123456789abcde",
	}
	ddl, err := os.ReadFile("../lsdb/testdata/label_studio_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := f.open(t)
	defer db.Close()
	stmts := []string{string(ddl)}
	for org := int64(1); org <= 2; org++ {
		ts, _ := time.Parse("2006-01-02 15:04:05.999999", orgCreatedAt)
		created := ts.Add(time.Duration(org) * time.Second).Format("2006-01-02 15:04:05.999999")
		stmts = append(stmts,
			fmt.Sprintf(`INSERT INTO htx_user (id, password, is_superuser, username, email, first_name, last_name, is_staff, is_active,
				date_joined, last_activity, activity_at, phone, avatar, active_organization_id, allow_newsletters)
				VALUES (%d, '!', 0, 'u%d', 'u%d@example.com', '', '', 0, 1, '%s', '%s', '%s', '', '', %d, 0)`,
				org, org, org, orgCreatedAt, orgCreatedAt, orgCreatedAt, org),
			fmt.Sprintf(`INSERT INTO organization (id, title, created_at, updated_at, created_by_id, token) VALUES (%d, 'Org %d', '%s', '%s', %d, 'invite-%d')`,
				org, org, orgCreatedAt, orgCreatedAt, org, org),
			fmt.Sprintf(`INSERT INTO organizations_organizationmember (user_id, organization_id, created_at, updated_at) VALUES (%d, %d, '%s', '%s')`,
				org, org, orgCreatedAt, orgCreatedAt),
			fmt.Sprintf(`INSERT INTO jwt_auth_jwtsettings (organization_id, api_tokens_enabled, api_token_ttl_days, created_at, updated_at, legacy_api_tokens_enabled)
				VALUES (%d, 1, 73000, '%s', '%s', 1)`, org, orgCreatedAt, orgCreatedAt),
			fmt.Sprintf(`INSERT INTO authtoken_token (key, created, user_id) VALUES ('%s', '%s', %d)`, f.keys[org], orgCreatedAt, org),
			fmt.Sprintf(`INSERT INTO project (id, title, show_instruction, is_published, created_at, updated_at,
				created_by_id, show_skip_button, show_collab_predictions, overlap_cohort_percentage, show_overlap_first, result_count,
				organization_id, is_draft, enable_empty_annotation, maximum_annotations, min_annotations_to_start_training,
				show_annotation_history, show_ground_truth_first, evaluate_predictions_automatically, reveal_preannotations_interactively)
				VALUES (%d, 'Project %d', 0, 0, '%s', '%s', %d, 1, 1, 100, 0, 0, %d, 0, 1, 1, 0, 0, 0, 0, 0)`, org, org, created, created, org, org),
		)
	}
	stmts = append(stmts, orgTaskRows("0", "'"+orgCreatedAt+"'")...)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("build database: %v\n%s", err, s)
		}
	}

	pic := func(c color.Gray) []byte {
		img := image.NewGray(image.Rect(0, 0, 64, 48))
		for i := range img.Pix {
			img.Pix[i] = c.Y
		}
		var buf bytes.Buffer
		png.Encode(&buf, img)
		return buf.Bytes()
	}
	images := map[int64][]byte{1: pic(color.Gray{40}), 2: pic(color.Gray{200})}
	f.pats, f.accesses = map[string]int64{}, map[string]int64{}
	f.ls = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/token/refresh/" {
			var body struct{ Refresh string }
			json.NewDecoder(r.Body).Decode(&body)
			f.mu.Lock()
			org, ok := f.pats[body.Refresh]
			access := jwt(fmt.Sprintf(`{"token_type":"access","exp":%d,"jti":"a%d"}`, time.Now().Add(5*time.Minute).Unix(), len(f.accesses)))
			if ok {
				f.accesses[access] = org
			}
			f.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"detail":"Token is invalid or expired"}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"access": access})
			return
		}
		auth := r.Header.Get("Authorization")
		if r.URL.Path == "/api/current-user/whoami" {
			f.mu.Lock()
			bearer, isBearer := strings.CutPrefix(auth, "Bearer ")
			ok := auth == "Token "+f.super || isBearer && f.accesses[bearer] != 0
			for _, k := range f.keys {
				ok = ok || auth == "Token "+k
			}
			f.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"detail":"Invalid token."}`)
				return
			}
			io.WriteString(w, `{"id": 1, "username": "someone"}`)
			return
		}
		var org int64
		fmt.Sscanf(r.URL.Path, "/data/upload/%d/", &org)
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{org, auth})
		bearer, isBearer := strings.CutPrefix(auth, "Bearer ")
		ok := auth == "Token "+f.keys[org] || isBearer && f.accesses[bearer] == org && org != 0 || auth == "Token "+f.super && org != 0
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"detail":"Invalid token."}`)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(images[org])
	}))
	t.Cleanup(f.ls.Close)
	return f
}

func (f *orgFixture) open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// rotate gives organization org's user a new token, as "Reset token" in
// Label Studio does, and makes Label Studio accept only that one.
func (f *orgFixture) rotate(t *testing.T, org int64) {
	t.Helper()
	key := fmt.Sprintf("org%drotated%020d", org, time.Now().UnixNano())
	db := f.open(t)
	defer db.Close()
	if _, err := db.Exec(`UPDATE authtoken_token SET key = ? WHERE user_id = ?`, key, org); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[org] = key
	f.mu.Unlock()
}

// serve starts a backend with the organization middleware on this
// fixture's database and Label Studio, plus extra settings, and returns its
// server, closed when the test ends.
func (f *orgFixture) serve(t *testing.T, extra map[string]string, logs io.Writer) *httptest.Server {
	t.Helper()
	env := map[string]string{"USE_ORG_MIDDLEWARE": "true", "LABEL_STUDIO_DB_PATH": f.dbPath, "LABEL_STUDIO_URL": f.ls.URL}
	for k, v := range extra {
		env[k] = v
	}
	srv := httptest.NewServer(newApp(t, env, logs).Handler())
	t.Cleanup(srv.Close)
	return srv
}

// orgTasks is how many tasks each organization's project has.
const orgTasks = 200

// orgTaskID is the id of task n of organization org's project.
func orgTaskID(org int64, n int) int64 { return org*1000 + int64(n) }

// orgTaskRows inserts the tasks of both projects: task n holds image
// /data/upload/<org>/img-<n>.png. false and ts are the dialect's literals.
func orgTaskRows(false_, ts string) []string {
	var stmts []string
	for org := int64(1); org <= 2; org++ {
		for n := range orgTasks {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO task (id, data, created_at, updated_at, is_labeled, project_id, overlap,
				total_annotations, cancelled_annotations, total_predictions, comment_count, unresolved_comment_count)
				VALUES (%d, '{"image": "/data/upload/%d/img-%d.png"}', %s, %s, %s, %d, 1, 0, 0, 0, 0, 0)`,
				orgTaskID(org, n), org, n, ts, ts, false_, org))
		}
	}
	return stmts
}

// orgRequest is a click on image n of organization org's project.
func orgRequest(t *testing.T, org int64, n int) []byte {
	t.Helper()
	b, err := os.ReadFile("../labelstudio/testdata/ml_predict_request_sam_keypoint.json")
	if err != nil {
		t.Fatal(err)
	}
	var req map[string]any
	json.Unmarshal(b, &req)
	req["project"] = orgProject(org)
	task := req["tasks"].([]any)[0].(map[string]any)
	task["id"] = orgTaskID(org, n)
	task["project"] = org
	task["data"] = map[string]any{"image": fmt.Sprintf("/data/upload/%d/img-%d.png", org, n)}
	region := req["params"].(map[string]any)["context"].(map[string]any)["result"].([]any)[0].(map[string]any)
	region["original_width"], region["original_height"] = 64, 48
	out, _ := json.Marshal(req)
	return out
}

func postPredict(url string, body []byte) (int, string) {
	resp, err := http.Post(url+"/predict", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOrganizationsStayIsolated runs 200 interleaved predictions on two
// organizations' projects, 16 at a time, with the embedding cache off so
// that every prediction fetches: each must succeed, and every image request
// must carry its own organization's token. The DEBUG log of the whole run
// must not contain a token.
func TestOrganizationsStayIsolated(t *testing.T) {
	f := newOrgFixture(t)
	// Organization 2 works with a personal access token from the tokens
	// file; organization 1 with its admin's legacy key from the database.
	pat := jwt(fmt.Sprintf(`{"token_type":"refresh","exp":%d,"jti":"pat2","user_id":"2"}`, time.Now().AddDate(200, 0, 0).Unix()))
	f.pats[pat] = 2
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf(`{"2": %q}`, pat)), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	// A queue deep enough for the 16 requests at once, whichever
	// organization they belong to: the test is about isolation, not load.
	srv := f.serve(t, map[string]string{"ORG_TOKENS_FILE": tokens, "EMBEDDING_CACHE_MB": "0", "LOG_LEVEL": "DEBUG",
		"SAM_ENCODER_QUEUE": "64"}, logs)

	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := range 200 {
		org := int64(1 + i%2)
		body := orgRequest(t, org, i) // a new image each time: 200 fetches
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if code, msg := postPredict(srv.URL, body); code != 200 {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("org %d: %d %s", org, code, msg))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of 200 predictions failed, e.g. %s", len(failures), failures[0])
	}
	f.mu.Lock()
	seen := f.seen
	f.mu.Unlock()
	if len(seen) < 200 {
		t.Errorf("Label Studio saw %d image requests, want at least 200", len(seen))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range seen {
		switch s.org {
		case 1:
			if s.auth != "Token "+f.keys[1] {
				t.Fatalf("an image of organization 1 was requested with another credential")
			}
		case 2:
			access, _ := strings.CutPrefix(s.auth, "Bearer ")
			if f.accesses[access] != 2 {
				t.Fatalf("an image of organization 2 was requested without organization 2's access token")
			}
		}
	}
	if len(f.accesses) == 0 {
		t.Error("the personal access token was never exchanged")
	}
	log := logs.String()
	for _, want := range []string{"Using dynamic credentials for project " + orgProject(1) + " (organization 1)", "credential cache hit"} {
		if !strings.Contains(log, want) {
			t.Errorf("the DEBUG log lacks %q", want)
		}
	}
	secrets := []string{f.keys[1], f.keys[2], pat}
	for access := range f.accesses {
		secrets = append(secrets, access)
	}
	for _, secret := range secrets {
		// Any third of a token is enough to call it leaked.
		for _, part := range []string{secret[:len(secret)/3], secret[len(secret)/3 : 2*len(secret)/3], secret[2*len(secret)/3:]} {
			if len(part) >= 12 && strings.Contains(log, part) {
				t.Fatalf("the log contains part of a token (legacy key, personal access token or access token)")
			}
		}
	}
}

// TestEmbeddingCacheIsPerOrganization: organization 1 clicks on one of its
// images, so its embedding is cached. A request in organization 2's
// project naming that same image must not be answered from organization
// 1's cache: it must fetch with organization 2's token, which Label Studio
// refuses.
func TestEmbeddingCacheIsPerOrganization(t *testing.T) {
	f := newOrgFixture(t)
	srv := f.serve(t, nil, io.Discard)
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 200 {
		t.Fatalf("organization 1: %d %s", code, msg)
	}
	crossed := bytes.Replace(orgRequest(t, 1, 0), []byte(`"`+orgProject(1)+`"`), []byte(`"`+orgProject(2)+`"`), 1)
	if code, msg := postPredict(srv.URL, crossed); code != http.StatusForbidden {
		t.Errorf("organization 2 asking for organization 1's cached image: %d %s; want 403", code, msg)
	}
	if code, _ := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 200 {
		t.Error("organization 1's second click failed")
	}
}

// TestTokenRotation changes a user's token in the database while the
// backend runs: Label Studio refuses the cached one, and the backend reads
// the new one and retries, so the annotator sees no error.
func TestTokenRotation(t *testing.T) {
	f := newOrgFixture(t)
	srv := f.serve(t, map[string]string{"EMBEDDING_CACHE_MB": "0"}, io.Discard)
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 200 {
		t.Fatalf("before rotation: %d %s", code, msg)
	}
	f.rotate(t, 1)
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 1)); code != 200 {
		t.Fatalf("after rotation: %d %s", code, msg)
	}
	f.mu.Lock()
	last := f.seen[len(f.seen)-1]
	f.mu.Unlock()
	if last.auth != "Token "+f.keys[1] {
		t.Error("the retry did not use the rotated token")
	}
}

func TestOrgErrorsAreClear(t *testing.T) {
	f := newOrgFixture(t)
	tests := []struct {
		name    string
		env     map[string]string
		body    func() []byte
		code    int
		detail  string
		noToken bool
	}{
		{"database missing", map[string]string{"LABEL_STUDIO_DB_PATH": filepath.Join(t.TempDir(), "nope.sqlite3")},
			func() []byte { return orgRequest(t, 1, 0) }, 503, "Database file not found at", true},
		{"project of another Label Studio", nil,
			func() []byte {
				b := orgRequest(t, 1, 0)
				return bytes.Replace(b, []byte(orgProject(1)), []byte("1.1234567890"), 1)
			}, 409, "another Label Studio instance", true},
		{"unknown project", nil,
			func() []byte {
				return bytes.Replace(orgRequest(t, 1, 0), []byte(`"`+orgProject(1)+`"`), []byte(`"77"`), 1)
			}, 404, "project 77 not found", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"USE_ORG_MIDDLEWARE": "true", "LABEL_STUDIO_DB_PATH": f.dbPath, "LABEL_STUDIO_URL": f.ls.URL}
			for k, v := range tt.env {
				env[k] = v
			}
			a := newApp(t, env, io.Discard)
			srv := httptest.NewServer(a.Handler())
			defer srv.Close()
			code, msg := postPredict(srv.URL, tt.body())
			if code != tt.code || !strings.Contains(msg, tt.detail) {
				t.Errorf("got %d %s; want %d with %q", code, msg, tt.code, tt.detail)
			}
		})
	}
}

// TestStaticFallback: with a static token set, a middleware failure falls
// back to it (the migration path) instead of failing the request.
func TestStaticFallback(t *testing.T) {
	f := newOrgFixture(t)
	logs := &syncBuffer{}
	a := newApp(t, map[string]string{
		"USE_ORG_MIDDLEWARE":   "true",
		"LABEL_STUDIO_DB_PATH": filepath.Join(t.TempDir(), "absent.sqlite3"),
		"LABEL_STUDIO_URL":     f.ls.URL,
		"LABEL_STUDIO_API_KEY": f.keys[1],
	}, logs)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 200 {
		t.Fatalf("got %d %s, want the static credential to serve", code, msg)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "using the static LABEL_STUDIO_API_KEY") {
		t.Errorf("no warning about the fallback:\n%s", logs)
	}
	if strings.Contains(logs.String(), f.keys[1]) {
		t.Error("the log contains the token")
	}
}

// TestTokensFileCoversAnOrganizationWithoutADatabaseToken: organization 2's
// user has no legacy token row. Without ORG_TOKENS_FILE the request fails
// with the exact message; with an entry for organization 2 it works.
func TestTokensFileCoversAnOrganizationWithoutADatabaseToken(t *testing.T) {
	f := newOrgFixture(t)
	db := f.open(t)
	if _, err := db.Exec(`DELETE FROM authtoken_token WHERE user_id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	env := map[string]string{"USE_ORG_MIDDLEWARE": "true", "LABEL_STUDIO_DB_PATH": f.dbPath, "LABEL_STUDIO_URL": f.ls.URL}

	a := newApp(t, env, io.Discard)
	srv := httptest.NewServer(a.Handler())
	code, msg := postPredict(srv.URL, orgRequest(t, 2, 0))
	srv.Close()
	if code != http.StatusBadGateway || !strings.Contains(msg, "No auth token found for user 2 in organization 2") {
		t.Errorf("without a tokens file: %d %s", code, msg)
	}

	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf(`{"2": %q}`, f.keys[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	env["ORG_TOKENS_FILE"] = tokens
	a = newApp(t, env, io.Discard)
	srv = httptest.NewServer(a.Handler())
	defer srv.Close()
	if code, msg := postPredict(srv.URL, orgRequest(t, 2, 0)); code != 200 {
		t.Errorf("with the tokens file: %d %s", code, msg)
	}
}

// TestStartsWithTheDatabaseDown: the backend starts without Label Studio's
// database, /health says so, and it recovers by itself once the file is
// there.
func TestStartsWithTheDatabaseDown(t *testing.T) {
	f := newOrgFixture(t)
	path := filepath.Join(t.TempDir(), "label_studio.sqlite3")
	a := newApp(t, map[string]string{
		"USE_ORG_MIDDLEWARE":   "true",
		"LABEL_STUDIO_DB_PATH": path,
		"LABEL_STUDIO_URL":     f.ls.URL,
		"HEALTH_INTERVAL":      "50ms",
	}, io.Discard)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	health := func() string {
		client := &http.Client{Timeout: time.Second} // Label Studio's health timeout
		resp, err := client.Get(srv.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h struct {
			Checks struct {
				Database struct{ Status, Error string }
			}
		}
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Checks.Database.Status + " " + h.Checks.Database.Error
	}
	if got := health(); !strings.HasPrefix(got, "down Database file not found at "+path) {
		t.Errorf("health with the database missing: %q", got)
	}
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 503 || !strings.Contains(msg, "Database file not found") {
		t.Errorf("predict with the database missing: %d %s", code, msg)
	}
	b, err := os.ReadFile(f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; health() != "up "; i++ {
		if i == 200 {
			t.Fatalf("health still %q after the database appeared", health())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The failure was cached for a few seconds only; wait it out.
	for i := 0; ; i++ {
		code, msg := postPredict(srv.URL, orgRequest(t, 1, 0))
		if code == 200 {
			break
		}
		if i == 100 {
			t.Fatalf("predict did not recover: %d %s", code, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresDownAtStart: the backend starts with Label Studio's
// PostgreSQL unreachable; /health and the 503 name the server, never the
// password.
func TestPostgresDownAtStart(t *testing.T) {
	f := newOrgFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port that then refuses
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &syncBuffer{}
	a := newApp(t, map[string]string{
		"USE_ORG_MIDDLEWARE":  "true",
		"LABEL_STUDIO_DB_URL": "postgres://ls:hunter2-secret@" + addr + "/labelstudio",
		"LABEL_STUDIO_URL":    f.ls.URL,
	}, logs)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := (&http.Client{Timeout: time.Second}).Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"status":"down"`) || !strings.Contains(string(body), addr) {
		t.Errorf("health: %s; want the database down, naming %s", body, addr)
	}
	code, msg := postPredict(srv.URL, orgRequest(t, 1, 0))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, addr) {
		t.Errorf("predict: %d %s; want a 503 naming %s", code, msg, addr)
	}
	if strings.Contains(string(body)+msg+logs.String(), "hunter2-secret") {
		t.Error("the password appears in /health, the response or the log")
	}
}

// TestDatabaseOutageServesCachedCredentials moves Label Studio's database
// away partway through a run: the cached credential of project 1 keeps
// serving past its TTL, and project 2, never resolved, gets a 503 that
// names the cause.
func TestDatabaseOutageServesCachedCredentials(t *testing.T) {
	f := newOrgFixture(t)
	logs := &syncBuffer{}
	srv := f.serve(t, map[string]string{"ORG_CACHE_TTL": "10ms", "EMBEDDING_CACHE_MB": "0"}, logs)
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 0)); code != 200 {
		t.Fatalf("before the outage: %d %s", code, msg)
	}
	if err := os.Rename(f.dbPath, f.dbPath+".away"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past the TTL, on the resolver's 250 ms clock
	if code, msg := postPredict(srv.URL, orgRequest(t, 1, 1)); code != 200 {
		t.Errorf("cached project during the outage: %d %s", code, msg)
	}
	if !strings.Contains(logs.String(), "serving a cached credential") {
		t.Error("no warning that a stale credential serves")
	}
	code, msg := postPredict(srv.URL, orgRequest(t, 2, 0))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "Database file not found at "+f.dbPath) {
		t.Errorf("uncached project during the outage: %d %s; want 503 naming the missing file", code, msg)
	}
}

// TestRequestsAreBoundToTheirTask: whoever holds the backend's URL and
// credentials cannot name another organization's project, a task of
// another project, or an image that is not the task's.
func TestRequestsAreBoundToTheirTask(t *testing.T) {
	f := newOrgFixture(t)
	srv := f.serve(t, nil, io.Discard)
	edit := func(org int64, n int, change func(map[string]any)) []byte {
		var req map[string]any
		json.Unmarshal(orgRequest(t, org, n), &req)
		change(req)
		b, _ := json.Marshal(req)
		return b
	}
	task := func(req map[string]any) map[string]any { return req["tasks"].([]any)[0].(map[string]any) }
	tests := []struct {
		name   string
		body   []byte
		detail string
	}{
		{"another organization's project with its own task", edit(1, 3, func(r map[string]any) { r["project"] = orgProject(2) }),
			"task 1003 does not belong to project 2"},
		{"an image that is not the task's", edit(2, 3, func(r map[string]any) {
			task(r)["data"] = map[string]any{"image": "/data/upload/1/img-3.png"}
		}), "is not task 2003's image"},
		{"a task that does not exist", edit(2, 3, func(r map[string]any) { task(r)["id"] = 999999 }),
			"task 999999 is not in Label Studio's database"},
	}
	before := len(f.seen)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := postPredict(srv.URL, tt.body)
			if code != http.StatusForbidden || !strings.Contains(msg, tt.detail) {
				t.Errorf("got %d %s; want 403 with %q", code, msg, tt.detail)
			}
		})
	}
	f.mu.Lock()
	fetched := len(f.seen) - before
	f.mu.Unlock()
	if fetched != 0 {
		t.Errorf("Label Studio got %d image requests for refused predictions, want 0", fetched)
	}
	if code, msg := postPredict(srv.URL, orgRequest(t, 2, 3)); code != 200 {
		t.Errorf("the genuine request: %d %s", code, msg)
	}
}
