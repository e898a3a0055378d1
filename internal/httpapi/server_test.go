package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sam-ml-backend/sam-ml-backend/internal/httpapi"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/orgauth"
)

type predictorFunc func(context.Context, *ls.PredictRequest) (*ls.PredictResponse, error)

func (f predictorFunc) Predict(ctx context.Context, r *ls.PredictRequest) (*ls.PredictResponse, error) {
	return f(ctx, r)
}

var noResults = predictorFunc(func(context.Context, *ls.PredictRequest) (*ls.PredictResponse, error) {
	return &ls.PredictResponse{Results: []ls.Prediction{}}, nil
})

type invalidatorFunc func(p, o int64) int

func (f invalidatorFunc) Invalidate(p, o int64) int { return f(p, o) }

func newServer(t *testing.T, cfg httpapi.Config, p httpapi.Predictor, inv httpapi.Invalidator) *httptest.Server {
	t.Helper()
	if cfg.ModelVersion == "" {
		cfg.ModelVersion = "SamMLBackend-v0.0.1"
	}
	s, err := httpapi.New(cfg, p, inv)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

type exchange struct {
	Request struct {
		Method string          `json:"method"`
		Path   string          `json:"path"`
		Body   json.RawMessage `json:"body"`
	} `json:"request"`
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response"`
}

func do(t *testing.T, method, url string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestGoldenExchanges replays the reference server's recorded exchanges.
func TestGoldenExchanges(t *testing.T) {
	b, err := os.ReadFile("testdata/ml_backend_misc_exchanges.json")
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	ts := newServer(t, httpapi.Config{}, noResults, nil)
	for _, name := range []string{"health", "setup", "predict_no_context", "predict_library_test", "webhook_train_event", "webhook_other_event", "metrics"} {
		t.Run(name, func(t *testing.T) {
			var ex exchange
			if err := json.Unmarshal(all[name], &ex); err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, ex.Request.Method, ts.URL+ex.Request.Path, ex.Request.Body, nil)
			if resp.StatusCode != ex.Status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, ex.Status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var got, want map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if err := json.Unmarshal(ex.Response, &want); err != nil {
				t.Fatal(err)
			}
			if name == "health" {
				// Extra fields are allowed; the reference's must be equal.
				for k := range got {
					if _, ok := want[k]; !ok {
						delete(got, k)
					}
				}
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("body (-got +want):\n%s", diff)
			}
		})
	}
	t.Run("GET / is /health", func(t *testing.T) {
		_, a := do(t, "GET", ts.URL+"/", nil, nil)
		_, b := do(t, "GET", ts.URL+"/health", nil, nil)
		if !bytes.Equal(a, b) {
			t.Errorf("/ = %s, /health = %s", a, b)
		}
	})
}

func TestHealthBytesAreSortedCompactJSON(t *testing.T) {
	ts := newServer(t, httpapi.Config{Health: map[string]any{"model": "demo"}}, noResults, nil)
	_, body := do(t, "GET", ts.URL+"/health", nil, nil)
	want := `{"model":"demo","model_class":"SamMLBackend","model_version":"SamMLBackend-v0.0.1","status":"UP"}` + "\n"
	if string(body) != want {
		t.Errorf("got %q, want %q", body, want)
	}
}

func TestVersions(t *testing.T) {
	ts := newServer(t, httpapi.Config{}, noResults, nil)
	_, body := do(t, "GET", ts.URL+"/versions", nil, nil)
	if want := `{"versions":["SamMLBackend-v0.0.1"]}` + "\n"; string(body) != want {
		t.Errorf("got %q, want %q", body, want)
	}
}

func TestBasicAuth(t *testing.T) {
	ts := newServer(t, httpapi.Config{BasicAuthUser: "ls", BasicAuthPass: "s3cret"}, noResults, nil)
	auth := func(u, p string) http.Header {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	tests := []struct {
		name, method, path string
		header             http.Header
		body               string
		want               int
	}{
		{"health without auth", "GET", "/health", nil, "", 401},
		{"root without auth", "GET", "/", nil, "", 401},
		{"wrong password", "GET", "/health", auth("ls", "nope"), "", 401},
		{"wrong user", "GET", "/health", auth("x", "s3cret"), "", 401},
		{"right", "GET", "/health", auth("ls", "s3cret"), "", 200},
		{"setup without auth", "POST", "/setup", nil, `{}`, 401},
		{"predict without auth", "POST", "/predict", nil, `{}`, 401},
		{"versions without auth", "GET", "/versions", nil, "", 401},
		{"metrics without auth", "GET", "/metrics", nil, "", 401},
		{"webhook needs none", "POST", "/webhook", nil, `{"action":"PROJECT_UPDATED"}`, 200},
		{"unknown route without auth", "GET", "/train", nil, "", 401},
		{"unknown route with auth", "GET", "/train", auth("ls", "s3cret"), "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, ts.URL+tt.path, []byte(tt.body), tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="Login required"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if strings.Contains(string(body), "s3cret") {
					t.Error("401 body shows the password")
				}
			}
		})
	}
}

func TestBadInputGetsClear4xx(t *testing.T) {
	ts := newServer(t, httpapi.Config{MaxRequestBytes: 1 << 10}, noResults, nil)
	tests := []struct {
		name, method, path, body string
		want                     int
		detail                   string
	}{
		{"not json", "POST", "/predict", `{"tasks":`, 400, "not valid JSON"},
		{"empty body", "POST", "/predict", ``, 400, "empty"},
		{"wrong type", "POST", "/predict", `{"label_config":5}`, 400, `field "label_config" must be a string, not number`},
		{"body not an object", "POST", "/predict", `[1]`, 400, `the request body must be an object, not array`},
		{"tasks not a list", "POST", "/predict", `{"tasks":"x"}`, 400, `must be a list, not string`},
		{"too big", "POST", "/predict", `{"x":"` + strings.Repeat("a", 2000) + `"}`, 413, "MAX_REQUEST_BYTES"},
		{"webhook without action", "POST", "/webhook", `{}`, 400, `no "action"`},
		{"unknown route", "GET", "/train", ``, 404, "no route GET /train"},
		{"wrong method", "GET", "/predict", ``, 405, "use POST"},
		{"admin disabled", "POST", "/admin/cache/invalidate", `{}`, 404, "no route"},
		{"project object", "POST", "/predict", `{"project":{}}`, 400, "project"},
		{"nested too deep", "POST", "/predict", `{"tasks":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 400,
			"request body nests JSON deeper than 100 levels at byte 108 (MAX_JSON_DEPTH)"},
		{"nested too deep, not even closed", "POST", "/setup", strings.Repeat(`{"a":`, 101), 400, "deeper than 100 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, ts.URL+tt.path, []byte(tt.body), nil)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			var e struct {
				Detail string `json:"detail"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %q is not JSON: %v", body, err)
			}
			if !strings.Contains(e.Detail, tt.detail) || e.Status != tt.want {
				t.Errorf("error = %+v, want detail containing %q", e, tt.detail)
			}
		})
	}
}

// safeErr is an error that carries its status, as predict's and
// imagefetch's do.
type safeErr struct{}

func (safeErr) Error() string   { return "image not found at /data/upload/1/x.jpg (404)" }
func (safeErr) HTTPStatus() int { return 404 }

func TestPredictErrorsKeepSecretsOut(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   int
		detail string
	}{
		{"typed error shows its own message only", errors.Join(errors.New("fetch with token abcdef123"), safeErr{}), 404, "image not found at /data/upload/1/x.jpg (404)"},
		{"bare error is a generic 500", errors.New("dial postgres://u:pw@db failed"), 500, "internal error"},
		{"deadline", fmt.Errorf("exchange token abcdef123 at postgres://u:pw@db: %w", context.DeadlineExceeded), 504, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := predictorFunc(func(context.Context, *ls.PredictRequest) (*ls.PredictResponse, error) { return nil, tt.err })
			ts := newServer(t, httpapi.Config{}, p, nil)
			resp, body := do(t, "POST", ts.URL+"/predict", []byte(`{}`), nil)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			var e struct{ Detail string }
			json.Unmarshal(body, &e)
			if !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", e.Detail, tt.detail)
			}
			for _, secret := range []string{"abcdef123", "pw@db"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("response shows %q: %s", secret, body)
				}
			}
		})
	}
}

func TestAdminInvalidate(t *testing.T) {
	var calls [][2]int64
	inv := invalidatorFunc(func(p, o int64) int { calls = append(calls, [2]int64{p, o}); return 3 })
	ts := newServer(t, httpapi.Config{AdminToken: "adm"}, noResults, inv)
	bearer := http.Header{"Authorization": {"Bearer adm"}}
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   int
		call   *[2]int64
	}{
		{"no token", nil, `{}`, 401, nil},
		{"wrong token", http.Header{"Authorization": {"Bearer x"}}, `{}`, 401, nil},
		{"everything", bearer, `{}`, 200, &[2]int64{0, 0}},
		{"no body", bearer, ``, 200, &[2]int64{0, 0}},
		{"project", bearer, `{"project": 12}`, 200, &[2]int64{12, 0}},
		{"organization", bearer, `{"organization": 3}`, 200, &[2]int64{0, 3}},
		{"both", bearer, `{"project": 1, "organization": 3}`, 400, nil},
		{"bad id", bearer, `{"project": -1}`, 400, nil},
		{"garbage", bearer, `[`, 400, nil},
		{"trailing garbage", bearer, `{"project": 12} x`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = nil
			resp, body := do(t, "POST", ts.URL+"/admin/cache/invalidate", []byte(tt.body), tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.call == nil {
				if len(calls) != 0 {
					t.Errorf("invalidated %v, want no call", calls)
				}
				return
			}
			if len(calls) != 1 || calls[0] != *tt.call {
				t.Errorf("calls %v, want [%v]", calls, *tt.call)
			}
		})
	}
}

func TestNonASCIILabelsAreEscapedLikeFlask(t *testing.T) {
	p := predictorFunc(func(context.Context, *ls.PredictRequest) (*ls.PredictResponse, error) {
		return &ls.PredictResponse{Results: []ls.Prediction{{ModelVersion: "v", Result: []ls.Region{{
			Value: ls.BrushValue{BrushLabels: []string{"Äpfel <1> 🍎"}, Format: "rle", RLE: ls.RLE{1, 2}}}}}}}, nil
	})
	ts := newServer(t, httpapi.Config{}, p, nil)
	_, body := do(t, "POST", ts.URL+"/predict", []byte(`{}`), nil)
	if !strings.Contains(string(body), `"brushlabels":["\u00c4pfel <1> \ud83c\udf4e"]`) {
		t.Errorf("labels not escaped as Python's ensure_ascii: %s", body)
	}
	if !strings.Contains(string(body), `"rle":[1,2]`) {
		t.Errorf("rle not an array of numbers: %s", body)
	}
}

func TestHealthShowsChecks(t *testing.T) {
	checks := map[string]any{"database": map[string]any{"status": "down", "error": "Database file not found at /x"}}
	degraded := true
	ts := newServer(t, httpapi.Config{Checks: func() (map[string]any, bool) { return checks, degraded }}, noResults, nil)
	for _, want := range []string{"degraded", "ok"} {
		resp, body := do(t, "GET", ts.URL+"/health", nil, nil)
		var h struct {
			Status, Health string
			Checks         map[string]map[string]string
		}
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		// Label Studio reads any 2xx as healthy: a degraded backend still
		// serves (with cached or static credentials).
		if resp.StatusCode != 200 || h.Status != "UP" || h.Health != want || h.Checks["database"]["status"] != "down" {
			t.Errorf("health %d %s; want 200, UP and %s", resp.StatusCode, body, want)
		}
		degraded = false
	}
}

type busyErr struct{}

func (busyErr) Error() string          { return "the backend is busy" }
func (busyErr) HTTPStatus() int        { return 503 }
func (busyErr) RetryAfterSeconds() int { return 5 }

func TestRetryAfterHeader(t *testing.T) {
	p := predictorFunc(func(context.Context, *ls.PredictRequest) (*ls.PredictResponse, error) { return nil, busyErr{} })
	ts := newServer(t, httpapi.Config{}, p, nil)
	resp, _ := do(t, "POST", ts.URL+"/predict", []byte(`{}`), nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("status %d Retry-After %q, want 503 and 5", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestWebhookBodiesAreSmall(t *testing.T) {
	ts := newServer(t, httpapi.Config{}, noResults, nil)
	big := `{"action":"ANNOTATION_CREATED","annotation":{"result":"` + strings.Repeat("a", 1<<20) + `"}}`
	resp, body := do(t, "POST", ts.URL+"/webhook", []byte(big), nil)
	if resp.StatusCode != 413 || !strings.Contains(string(body), "webhooks are read for their action only") {
		t.Errorf("a 1 MiB webhook: %d %s; want 413", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", ts.URL+"/webhook", []byte(`{"action":"ANNOTATION_CREATED","annotation":{"result":[]}}`), nil)
	if resp.StatusCode != 201 {
		t.Errorf("a small training webhook: %d %s; want 201", resp.StatusCode, body)
	}
}

func TestDepthLimitIsExact(t *testing.T) {
	var seen []int
	ts := newServer(t, httpapi.Config{MaxJSONDepth: 5}, predictorFunc(func(_ context.Context, r *ls.PredictRequest) (*ls.PredictResponse, error) {
		seen = append(seen, len(r.Tasks))
		return &ls.PredictResponse{Results: []ls.Prediction{}}, nil
	}), nil)
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"tasks":[{"data":{"x":[1]}}]}`, 200},                     // depth 5
		{`{"tasks":[{"data":{"x":[[1]]}}]}`, 400},                   // depth 6
		{`{"tasks":[{"data":{"x":"[[[[[[[[\"{{{{{{"}}]}`, 200},      // brackets in a string
		{`{"tasks":[{"data":{"x\"[[[[[[":"]]]]]]]]]]"}}]}`, 200},    // in a key, after an escaped quote
		{`{"tasks":[{"data":{"x":[1],"y":[2],"z":{"w":3}}}]}`, 200}, // wide, not deep
	} {
		resp, body := do(t, "POST", ts.URL+"/predict", []byte(tt.body), nil)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.body, resp.StatusCode, tt.want, body)
		}
	}
	if len(seen) != 4 {
		t.Errorf("the predictor saw %d requests, want the 4 within the limit", len(seen))
	}
}

// tenants is a TenantChecker over a fixed map of projects to organizations.
type tenants map[string]int64

func (m tenants) CheckProject(_ context.Context, org int64, project string) error {
	if owner, ok := m[project]; !ok || owner != org {
		return forbidden{}
	}
	return nil
}

type forbidden struct{}

func (forbidden) Error() string   { return "project is not the organization's" }
func (forbidden) HTTPStatus() int { return 403 }

func TestOrganizationCredentials(t *testing.T) {
	secret, err := orgauth.NewSecret(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	var predicted []string
	ts := newServer(t, httpapi.Config{BasicAuthUser: "ls", BasicAuthPass: "s3cret", OrgAuth: secret,
		Tenants: tenants{"1.100": 1, "2.200": 2},
		Checks:  func() (map[string]any, bool) { return map[string]any{"credentials": "of every organization"}, false },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sam_metric 1\n") })},
		predictorFunc(func(_ context.Context, r *ls.PredictRequest) (*ls.PredictResponse, error) {
			predicted = append(predicted, string(r.Project))
			return &ls.PredictResponse{Results: []ls.Prediction{}}, nil
		}), nil)
	auth := func(u, p string) http.Header {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header
	}
	org := func(id int64) http.Header { return auth(secret.Credentials(id)) }
	_, pass2 := secret.Credentials(2)
	tests := []struct {
		name, method, path string
		header             http.Header
		body               string
		want               int
	}{
		{"own project", "POST", "/predict", org(1), `{"project":"1.100"}`, 200},
		{"another organization's project", "POST", "/predict", org(1), `{"project":"2.200"}`, 403},
		{"setup of another organization's project", "POST", "/setup", org(1), `{"project":"2.200"}`, 403},
		{"setup of its own", "POST", "/setup", org(2), `{"project":"2.200"}`, 200},
		{"no project", "POST", "/predict", org(1), `{"tasks":[]}`, 403},
		{"another organization's password", "POST", "/predict", auth("org-1", pass2), `{"project":"1.100"}`, 401},
		{"health", "GET", "/health", org(3), "", 200},
		{"metrics", "GET", "/metrics", org(1), "", 403},
		{"metrics with the global credentials", "GET", "/metrics", auth("ls", "s3cret"), "", 200},
		{"global credentials reach every project", "POST", "/predict", auth("ls", "s3cret"), `{"project":"2.200"}`, 200},
		{"global user with an organization's password", "POST", "/predict", auth("ls", pass2), `{"project":"2.200"}`, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, ts.URL+tt.path, []byte(tt.body), tt.header)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
		})
	}
	if diff := cmp.Diff(predicted, []string{"1.100", "2.200"}); diff != "" {
		t.Errorf("the predictor saw (-got +want):\n%s", diff)
	}
	// Organizations get Label Studio's health answer, without the checks
	// that describe other organizations and the backend's infrastructure.
	_, body := do(t, "GET", ts.URL+"/health", nil, org(1))
	if strings.Contains(string(body), "checks") || !strings.Contains(string(body), `"status":"UP"`) {
		t.Errorf("/health for an organization: %s", body)
	}
	_, body = do(t, "GET", ts.URL+"/health", nil, auth("ls", "s3cret"))
	if !strings.Contains(string(body), "of every organization") {
		t.Errorf("/health for the operator lacks the checks: %s", body)
	}
}

func TestOrganizationCredentialsNeedATenantChecker(t *testing.T) {
	secret, _ := orgauth.NewSecret(strings.Repeat("k", 32))
	if _, err := httpapi.New(httpapi.Config{OrgAuth: secret}, noResults, nil); err == nil {
		t.Error("New accepted OrgAuth without Tenants")
	}
}
