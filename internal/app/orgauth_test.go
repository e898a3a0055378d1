package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/app"
	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
	"github.com/sam-ml-backend/sam-ml-backend/internal/orgauth"
)

const orgAuthSecret = "0123456789abcdef0123456789abcdef-operator"

// orgCredentials runs `sam-ml-backend org-credentials <org>` and returns
// what it prints.
func orgCredentials(t *testing.T, org string) (user, pass string) {
	t.Helper()
	var out bytes.Buffer
	env := func(k string) string { return map[string]string{"ORG_AUTH_SECRET": orgAuthSecret}[k] }
	if err := app.Command([]string{"org-credentials", org}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("org-credentials printed %q; want two lines", out.String())
	}
	user, _ = strings.CutPrefix(lines[0], "username: ")
	pass, _ = strings.CutPrefix(lines[1], "password: ")
	return user, pass
}

// post sends body to path with basic auth (none when user is "").
func post(t *testing.T, url, path, user, pass string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOrganizationCredentialsReachOnlyTheirProjects: with ORG_AUTH_SECRET,
// an organization that calls with the credentials org-credentials printed
// for it reaches its own projects only, checked in Label Studio's database;
// the global credentials keep reaching every project.
func TestOrganizationCredentialsReachOnlyTheirProjects(t *testing.T) {
	f := newOrgFixture(t)
	logs := &syncBuffer{}
	srv := f.serve(t, map[string]string{"ORG_AUTH_SECRET": orgAuthSecret,
		"BASIC_AUTH_USER": "label-studio", "BASIC_AUTH_PASS": "global-password-1"}, logs)
	user1, pass1 := orgCredentials(t, "1")
	user2, pass2 := orgCredentials(t, "2")
	if user1 != "org-1" || user2 != "org-2" || pass1 == pass2 || len(pass1) != 64 {
		t.Fatalf("org-credentials printed %s/%s and %s/%s", user1, pass1, user2, pass2)
	}
	setup := func(project string) []byte { b, _ := json.Marshal(map[string]any{"project": project}); return b }
	f.mu.Lock()
	before := len(f.seen)
	f.mu.Unlock()

	refused := []struct {
		name, path, user, pass string
		body                   []byte
		code                   int
		detail                 string
	}{
		{"another organization's genuine request", "/predict", user1, pass1, orgRequest(t, 2, 5), 403,
			"project 2 is not one of organization 1's projects"},
		{"a project that does not exist", "/predict", user2, pass2, setupProject(t, orgRequest(t, 2, 5), "99.1784280859"), 403,
			"project 99 is not one of organization 2's projects"},
		{"setup of another organization's project", "/setup", user2, pass2, setup(orgProject(1)), 403,
			"project 1 is not one of organization 2's projects"},
		{"a user name with another organization's password", "/predict", user1, pass2, orgRequest(t, 1, 5), 401, "Unauthorized"},
		{"no credentials", "/predict", "", "", orgRequest(t, 1, 5), 401, "Unauthorized"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := post(t, srv.URL, tt.path, tt.user, tt.pass, tt.body)
			if code != tt.code || !strings.Contains(msg, tt.detail) {
				t.Errorf("got %d %s; want %d with %q", code, msg, tt.code, tt.detail)
			}
		})
	}
	f.mu.Lock()
	fetched := len(f.seen) - before
	f.mu.Unlock()
	if fetched != 0 {
		t.Errorf("Label Studio got %d image requests for refused predictions, want 0", fetched)
	}

	for _, tt := range []struct {
		name, path, user, pass string
		body                   []byte
	}{
		{"organization 1 on its project", "/predict", user1, pass1, orgRequest(t, 1, 5)},
		{"organization 2 on its project", "/predict", user2, pass2, orgRequest(t, 2, 5)},
		{"organization 2's setup", "/setup", user2, pass2, setup(orgProject(2))},
		{"global credentials on organization 1's project", "/predict", "label-studio", "global-password-1", orgRequest(t, 1, 6)},
		{"global credentials on organization 2's project", "/predict", "label-studio", "global-password-1", orgRequest(t, 2, 6)},
	} {
		if code, msg := post(t, srv.URL, tt.path, tt.user, tt.pass, tt.body); code != 200 {
			t.Errorf("%s: %d %s", tt.name, code, msg)
		}
	}

	// The prediction lines of organization 1's own requests name it.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "msg=prediction") && strings.Contains(line, "project="+orgProject(1)) && strings.Contains(line, "auth_organization=1") {
			found = true
		}
	}
	if !found {
		t.Errorf("no prediction line names organization 1:\n%s", logs.String())
	}

	// With the database gone the check cannot be made: refuse, do not
	// guess.
	if err := os.Rename(f.dbPath, f.dbPath+".moved"); err != nil {
		t.Fatal(err)
	}
	if code, msg := post(t, srv.URL, "/predict", user1, pass1, orgRequest(t, 1, 7)); code != 503 || !strings.Contains(msg, "cannot check that project 1 is organization 1's") {
		t.Errorf("with the database gone: %d %s; want 503", code, msg)
	}
	for _, secret := range []string{pass1, pass2, orgAuthSecret, "global-password-1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows a secret")
		}
	}
}

// setupProject returns body with its project replaced.
func setupProject(t *testing.T, body []byte, project string) []byte {
	t.Helper()
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	req["project"] = project
	b, _ := json.Marshal(req)
	return b
}

func TestOrgCredentialsCommandErrors(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		secret string
		want   string
	}{
		{[]string{"org-credentials", "7"}, "", "ORG_AUTH_SECRET is not set"},
		{[]string{"org-credentials", "7"}, "short", "ORG_AUTH_SECRET is too short"},
		{[]string{"org-credentials", "07"}, orgAuthSecret, `"07" is not an organization id`},
		{[]string{"org-credentials", "-1"}, orgAuthSecret, `"-1" is not an organization id`},
		{[]string{"org-credentials"}, orgAuthSecret, "bad command line"},
		{[]string{"serve-me"}, orgAuthSecret, "bad command line"},
	} {
		var out, errOut bytes.Buffer
		env := func(k string) string { return map[string]string{"ORG_AUTH_SECRET": tt.secret}[k] }
		err := app.Command(tt.args, env, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Command(%q): got %v, want an error with %q", tt.args, err, tt.want)
		}
		if errors.Is(err, app.ErrUsage) && !strings.Contains(errOut.String(), "org-credentials <org>") {
			t.Errorf("Command(%q) printed no usage: %q", tt.args, errOut.String())
		}
		if out.Len() != 0 {
			t.Errorf("Command(%q) printed %q on stdout", tt.args, out.String())
		}
	}
}

// plantTask adds task id to organization org's project with the given
// image, as a member of org can by importing tasks.
func (f *orgFixture) plantTask(t *testing.T, org, id int64, image string) {
	t.Helper()
	db := f.open(t)
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO task (id, data, created_at, updated_at, is_labeled, project_id, overlap,
		total_annotations, cancelled_annotations, total_predictions, comment_count, unresolved_comment_count)
		VALUES (?, ?, '2026-07-17 09:34:19', '2026-07-17 09:34:19', 0, ?, 1, 0, 0, 0, 0, 0)`,
		id, fmt.Sprintf(`{"image": %q}`, image), org); err != nil {
		t.Fatal(err)
	}
}

// plantedRequest is a click on task id of organization org's project,
// whose image is image.
func plantedRequest(t *testing.T, org, id int64, project, image string) []byte {
	t.Helper()
	var req map[string]any
	json.Unmarshal(orgRequest(t, org, 0), &req)
	req["project"] = project
	task := req["tasks"].([]any)[0].(map[string]any)
	task["id"] = id
	task["data"] = map[string]any{"image": image}
	b, _ := json.Marshal(req)
	return b
}

// TestOrganizationCannotBorrowTheStaticCredential: organization 2 imports
// a task whose image is organization 1's upload (or a local file of
// organization 1). Label Studio refuses organization 2's token for it, so
// the backend must never fetch it with anything else: not the static
// credential (an administrator's key, here), whatever organization 2 does
// to make its own credential fail, and not straight from disk.
func TestOrganizationCannotBorrowTheStaticCredential(t *testing.T) {
	f := newOrgFixture(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "org1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "org1", "secret.png"), pngBytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := f.serve(t, map[string]string{"ORG_AUTH_SECRET": orgAuthSecret, "LABEL_STUDIO_API_KEY": f.super,
		"ADMIN_TOKEN": "admin-token-0123456789", "LOCAL_FILES_DOCUMENT_ROOT": root, "EMBEDDING_CACHE_MB": "0",
		"HEALTH_VERIFY_TOKENS": "true", "HEALTH_INTERVAL": "50ms"}, logs)
	user2, pass2 := orgCredentials(t, "2")
	key2 := f.keys[2]
	f.plantTask(t, 2, 9001, "/data/upload/1/img-5.png")
	f.plantTask(t, 2, 9002, "/data/local-files/?d=org1/secret.png")

	ts2 := strings.SplitN(orgProject(2), ".", 2)[1]
	attempts := []struct {
		name    string
		project string
		task    int64
		image   string
	}{
		{"its own credential", "2." + ts2, 9001, "/data/upload/1/img-5.png"},
		{"a project reference with a wrong timestamp", "2.1", 9001, "/data/upload/1/img-5.png"},
		{"a bare project id", "2", 9001, "/data/upload/1/img-5.png"},
		{"a local file", "2." + ts2, 9002, "/data/local-files/?d=org1/secret.png"},
	}
	check := func(t *testing.T, project string, task int64, image string) {
		t.Helper()
		f.mu.Lock()
		before := len(f.seen)
		f.mu.Unlock()
		code, msg := post(t, srv.URL, "/predict", user2, pass2, plantedRequest(t, 2, task, project, image))
		if code == 200 {
			t.Errorf("organization 2 got a mask of organization 1's image: %s", msg)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.seen[before:] {
			if s.auth != "Token "+key2 {
				t.Errorf("Label Studio was asked for %s with another credential than organization 2's", image)
			}
		}
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) { check(t, a.project, a.task, a.image) })
	}

	// Label Studio stops accepting organization 2's token; the health
	// check sees it, and requests of organization 2 made with the global
	// credentials would now fail over to the static key. Its own must not.
	if code, msg := post(t, srv.URL, "/predict", user2, pass2, orgRequest(t, 2, 6)); code != 200 {
		t.Fatalf("organization 2 on its own image: %d %s", code, msg)
	}
	f.mu.Lock()
	f.keys[2] = "revoked-in-label-studio"
	f.mu.Unlock()
	for i := 0; !strings.Contains(logs.String(), `credential=2 status=rejected`); i++ {
		if i == 400 {
			t.Fatalf("the health check did not see organization 2's token refused:\n%s", logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Run("its own credential refused at the health check", func(t *testing.T) { check(t, "2."+ts2, 9001, "/data/upload/1/img-5.png") })
	f.mu.Lock()
	f.keys[2] = key2
	f.mu.Unlock()

	// Organization 2 loses its token (or legacy tokens are turned off
	// for it): its own requests fail rather than borrow the static key.
	db := f.open(t)
	if _, err := db.Exec(`DELETE FROM authtoken_token WHERE user_id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/admin/cache/invalidate", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Run("no token for the organization", func(t *testing.T) { check(t, "2."+ts2, 9001, "/data/upload/1/img-5.png") })
	t.Run("no token, its own image", func(t *testing.T) {
		code, msg := post(t, srv.URL, "/predict", user2, pass2, orgRequest(t, 2, 7))
		if code == 200 || !strings.Contains(msg, "No auth token found") {
			t.Errorf("got %d %s; want the credential error, not the static key", code, msg)
		}
	})
}

// pngBytes is a small gray PNG.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSecretLengthsAgree(t *testing.T) {
	if config.MinOrgAuthSecretLen != orgauth.MinSecretLen {
		t.Errorf("config accepts ORG_AUTH_SECRET from %d characters, orgauth from %d", config.MinOrgAuthSecretLen, orgauth.MinSecretLen)
	}
}
