package app

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/credentials"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
)

// health gathers the background checks /health shows. Nothing here does
// I/O on the request path: /health reads results the checkers stored.
type health struct {
	db    *dbCheck       // nil without Label Studio's database
	creds *credCheck     // nil without a credential to check
	model map[string]any // fixed once the model is loaded
}

// checks returns the results for /health, and whether any check failed.
func (h *health) checks() (map[string]any, bool) {
	out := map[string]any{"model": h.model}
	degraded := false
	if h.db != nil {
		db, ok := h.db.result()
		out["database"] = db
		degraded = degraded || !ok
	}
	if h.creds != nil {
		cr, ok := h.creds.result()
		out["credentials"] = cr
		degraded = degraded || !ok
	}
	return out, degraded
}

// pinger is what dbCheck watches: Label Studio's database.
type pinger interface {
	Ping(ctx context.Context) error
}

// dbCheck pings Label Studio's database in the background, so that /health
// can report it without doing any I/O itself.
type dbCheck struct {
	db     pinger
	log    *slog.Logger
	status atomic.Pointer[dbStatus]
}

type dbStatus struct {
	ok      bool
	checked time.Time
	lastOK  time.Time
	err     string
}

// check pings once, records the result and logs a change of state.
func (c *dbCheck) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.db.Ping(ctx)
	now := time.Now()
	prev := c.status.Load()
	next := &dbStatus{ok: err == nil, checked: now}
	if prev != nil {
		next.lastOK = prev.lastOK
	}
	if err == nil {
		next.lastOK = now
		if prev != nil && !prev.ok {
			c.log.Info("Label Studio's database is readable again")
		}
	} else {
		next.err = err.Error()
		if prev == nil || prev.ok {
			c.log.Warn("Label Studio's database cannot be read; cached credentials keep serving for ORG_CACHE_STALE", "err", err)
		}
	}
	c.status.Store(next)
}

// run calls check every interval until ctx ends.
func run(ctx context.Context, interval time.Duration, check func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check(ctx)
		}
	}
}

// result returns the latest result for /health: the age of the last
// successful query, and the error while it fails.
func (c *dbCheck) result() (map[string]any, bool) {
	st := c.status.Load()
	if st == nil {
		return map[string]any{"status": "unknown"}, true
	}
	db := map[string]any{
		"status":              "up",
		"checked_seconds_ago": int(time.Since(st.checked).Seconds()),
	}
	if !st.ok {
		db["status"] = "down"
		db["error"] = st.err
	}
	if !st.lastOK.IsZero() {
		db["last_ok_seconds_ago"] = int(time.Since(st.lastOK).Seconds())
	}
	return db, st.ok
}

// whoamiPath is the cheap authenticated Label Studio endpoint tokens are
// verified against: it answers 200 for any valid credential.
const whoamiPath = "/api/current-user/whoami"

// credTarget is one credential to verify: an organization's (through one
// of its cached projects) or the static one.
type credTarget struct {
	name    string // the organization id, or "static"
	project string
	src     credentials.Source
}

// credCheck verifies resolved credentials against Label Studio in the
// background (HEALTH_VERIFY_TOKENS), remembers each one's last verdict for
// /health, and refuses a credential Label Studio rejected so that the
// static credential can take over (see guarded).
type credCheck struct {
	ls      *url.URL
	client  *http.Client
	targets func() []credTarget
	log     *slog.Logger

	mu       sync.Mutex
	verdicts map[string]credVerdict
}

type credVerdict struct {
	target  credTarget
	status  string // "valid", "rejected" or "error"
	detail  string
	checked time.Time
	// rejected is the sha256 of the Authorization value Label Studio
	// refused, so that it is not used again; zero when none.
	rejected [sha256.Size]byte
}

func newCredCheck(ls *url.URL, targets func() []credTarget, log *slog.Logger) *credCheck {
	return &credCheck{
		ls: ls,
		client: &http.Client{
			Timeout: 5 * time.Second,
			// A redirect could carry the credential elsewhere; an
			// answer that is not 200 is an error anyway.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		targets:  targets,
		log:      log,
		verdicts: map[string]credVerdict{},
	}
}

// check verifies every target once, and again every credential that
// failed before although it is no longer cached (a rejection drops it from
// the cache): it stays failed, and the backend degraded, until a check
// finds it valid.
func (c *credCheck) check(ctx context.Context) {
	targets := c.targets()
	live := map[string]bool{}
	for _, t := range targets {
		live[t.name] = true
	}
	retried := map[string]bool{}
	c.mu.Lock()
	for name, v := range c.verdicts {
		if !live[name] && v.status != "valid" {
			targets = append(targets, v.target)
			retried[name] = true
		}
	}
	c.mu.Unlock()
	for _, t := range targets {
		v := c.verify(ctx, t)
		v.target = t
		c.mu.Lock()
		prev, had := c.verdicts[t.name]
		if v.status == "error" && prev.status != "valid" && had {
			// Label Studio could not say: a refusal seen before still
			// stands, so the refused token stays out of use.
			v.rejected = prev.rejected
		}
		if v.status == "error" && !live[t.name] {
			// No longer in use, and no verdict to be had: forget it.
			delete(c.verdicts, t.name)
		} else {
			c.verdicts[t.name] = v
		}
		c.mu.Unlock()
		if v.status != prev.status {
			level := slog.LevelInfo
			if v.status != "valid" {
				level = slog.LevelWarn
			}
			c.log.Log(ctx, level, "credential verified against Label Studio", "credential", t.name, "status", v.status, "detail", v.detail)
		}
	}
	c.mu.Lock()
	for name := range c.verdicts {
		if !live[name] && !retried[name] {
			delete(c.verdicts, name) // no longer cached: nothing to say
		}
	}
	c.mu.Unlock()
}

// verify resolves t's credential and asks Label Studio who it is.
func (c *credCheck) verify(ctx context.Context, t credTarget) credVerdict {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := time.Now()
	h, err := t.src.Authorization(ctx, t.project)
	if err != nil {
		return credVerdict{status: "error", detail: "resolve: " + err.Error(), checked: now}
	}
	u := c.ls.JoinPath(whoamiPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return credVerdict{status: "error", detail: err.Error(), checked: now}
	}
	req.Header.Set("Authorization", h)
	resp, err := c.client.Do(req)
	if err != nil {
		return credVerdict{status: "error", detail: fmt.Sprintf("Label Studio did not answer %s: %v", whoamiPath, err), checked: now}
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return credVerdict{status: "valid", checked: now}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Let the source drop it: the next resolution reads the
		// database again and picks up a rotated token.
		t.src.Rejected(t.project, h)
		return credVerdict{status: "rejected", checked: now, rejected: sha256.Sum256([]byte(h)),
			detail: fmt.Sprintf("Label Studio answered %s %d", whoamiPath, resp.StatusCode)}
	}
	return credVerdict{status: "error", detail: fmt.Sprintf("Label Studio answered %s %d", whoamiPath, resp.StatusCode), checked: now}
}

// result returns the verdicts for /health, and false when any failed.
func (c *credCheck) result() (map[string]any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.verdicts))
	for name := range c.verdicts {
		names = append(names, name)
	}
	sort.Strings(names)
	each := map[string]any{}
	ok := true
	for _, name := range names {
		v := c.verdicts[name]
		r := map[string]any{"status": v.status, "checked_seconds_ago": int(time.Since(v.checked).Seconds())}
		if v.detail != "" {
			r["detail"] = v.detail
		}
		each[name] = r
		ok = ok && v.status == "valid"
	}
	return map[string]any{"verified_against": whoamiPath, "credentials": each}, ok
}

// isRejected reports whether Label Studio refused h at the last check.
func (c *credCheck) isRejected(h string) bool {
	sum := sha256.Sum256([]byte(h))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.verdicts {
		if v.rejected == sum {
			return true
		}
	}
	return false
}

// guarded is the organization middleware with the answers the health
// check found Label Studio refuses turned into errors, so that a Fallback
// serves the static credential instead (and an organization's own request
// fails).
type guarded struct {
	*credentials.Resolver
	check *credCheck
}

func (g guarded) Authorization(ctx context.Context, project string) (string, error) {
	_, h, err := g.OrganizationAuthorization(ctx, project)
	return h, err
}

func (g guarded) OrganizationAuthorization(ctx context.Context, project string) (int64, string, error) {
	org, h, err := g.Resolver.OrganizationAuthorization(ctx, project)
	if err == nil && g.check.isRejected(h) {
		return 0, "", &refusedCredential{project: project}
	}
	return org, h, err
}

// refusedCredential is a credential the health check saw refused.
type refusedCredential struct{ project string }

func (e *refusedCredential) Error() string {
	return fmt.Sprintf("the organization credential of project %s was refused by Label Studio at the last health check (HEALTH_VERIFY_TOKENS)", ls.ClipText(e.project))
}

func (e *refusedCredential) HTTPStatus() int { return http.StatusBadGateway }
