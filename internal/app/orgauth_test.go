package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/app"
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
