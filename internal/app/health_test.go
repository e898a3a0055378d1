package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// healthOf fetches /health with Label Studio's 1 s timeout.
func healthOf(t *testing.T, url string) (map[string]any, string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(h)
	return h, string(b)
}

// credStatus returns the verified status of credential name in h.
func credStatus(h map[string]any) map[string]string {
	out := map[string]string{}
	checks, _ := h["checks"].(map[string]any)
	creds, _ := checks["credentials"].(map[string]any)
	each, _ := creds["credentials"].(map[string]any)
	for name, v := range each {
		m, _ := v.(map[string]any)
		out[name], _ = m["status"].(string)
	}
	return out
}

// waitHealth polls /health until cond holds.
func waitHealth(t *testing.T, url, what string, cond func(h map[string]any) bool) map[string]any {
	t.Helper()
	for i := 0; ; i++ {
		h, text := healthOf(t, url)
		if cond(h) {
			return h
		}
		if i == 400 {
			t.Fatalf("waiting for %s; /health is %s", what, text)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestHealthVerifiesTokensAndFailsOver: with HEALTH_VERIFY_TOKENS, each
// organization's token (and the static one) is checked against Label
// Studio; a token Label Studio stops accepting turns /health degraded and
// the static credential takes over, until the token is rotated.
func TestHealthVerifiesTokensAndFailsOver(t *testing.T) {
	f := newOrgFixture(t)
	logs := &syncBuffer{}
	srv := f.serve(t, map[string]string{"HEALTH_VERIFY_TOKENS": "true", "HEALTH_INTERVAL": "50ms",
		"LABEL_STUDIO_API_KEY": f.super, "EMBEDDING_CACHE_MB": "0"}, logs)
	for org := int64(1); org <= 2; org++ {
		if code, msg := postPredict(srv.URL, orgRequest(t, org, 1)); code != 200 {
			t.Fatalf("organization %d: %d %s", org, code, msg)
		}
	}
	all := func(status string) func(map[string]any) bool {
		return func(h map[string]any) bool {
			s := credStatus(h)
			return s["1"] == status && s["2"] == status && s["static"] == status
		}
	}
	h := waitHealth(t, srv.URL, "every credential valid", all("valid"))
	if h["health"] != "ok" || h["status"] != "UP" {
		t.Errorf("health %v, status %v; want ok and UP", h["health"], h["status"])
	}
	checks := h["checks"].(map[string]any)
	model := checks["model"].(map[string]any)
	if model["status"] != "loaded" || model["onnxruntime"] == "" || model["model"] != "demo" {
		t.Errorf("checks.model = %v", model)
	}
	db := checks["database"].(map[string]any)
	if db["status"] != "up" || db["last_ok_seconds_ago"] == nil {
		t.Errorf("checks.database = %v", db)
	}

	// Label Studio stops accepting organization 2's token (revoked
	// there, the database not yet updated).
	f.mu.Lock()
	f.keys[2] = "revoked-in-label-studio-only"
	f.mu.Unlock()
	waitHealth(t, srv.URL, "organization 2 rejected", func(h map[string]any) bool {
		return credStatus(h)["2"] == "rejected" && h["health"] == "degraded"
	})
	f.mu.Lock()
	before := len(f.seen)
	f.mu.Unlock()
	if code, msg := postPredict(srv.URL, orgRequest(t, 2, 2)); code != 200 {
		t.Fatalf("organization 2 after its token was refused: %d %s; want the static credential to serve", code, msg)
	}
	f.mu.Lock()
	var auths []string
	for _, s := range f.seen[before:] {
		if s.org == 2 {
			auths = append(auths, s.auth)
		}
	}
	f.mu.Unlock()
	if len(auths) != 1 || auths[0] != "Token "+f.super {
		t.Errorf("organization 2's image was requested %d times; want once, with the static key", len(auths))
	}
	if !strings.Contains(logs.String(), "using the static LABEL_STUDIO_API_KEY instead") {
		t.Error("no warning logged for the fallback")
	}

	// Rotating the token in Label Studio (and so in its database)
	// recovers.
	f.rotate(t, 2)
	waitHealth(t, srv.URL, "every credential valid again", all("valid"))
	_, text := healthOf(t, srv.URL)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range append([]string{f.super}, f.keys[1], f.keys[2]) {
		if strings.Contains(text, k) || strings.Contains(logs.String(), k) {
			t.Errorf("/health or the log shows a token")
		}
	}
}
