// Package credentials picks the Label Studio credential for each request:
// the token of the organization that owns the request's project, read live
// from Label Studio's database or from an operator's tokens file, cached,
// and dropped again when Label Studio refuses it.
//
// Resolution runs project → organization → user → token. A cached answer
// is one map look-up; a burst of misses for one project makes a single
// database look-up; failures are cached only briefly. A token never appears
// in an error or a log line.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsauth"
)

// Facts is what Label Studio's database says about a project's credential.
type Facts struct {
	// ProjectID and OrganizationID identify the project and its owner.
	ProjectID, OrganizationID int64
	// ProjectCreatedAt is the project's created_at in unix seconds.
	ProjectCreatedAt int64
	// UserID is the user whose legacy token applies, and UserSource says
	// how that user was chosen.
	UserID     int64
	UserSource string
	// Token is the user's legacy key; "" when the user has none.
	Token string
	// LegacyEnabled reports whether Label Studio accepts legacy tokens for
	// that user.
	LegacyEnabled bool
}

// String describes f without its token, so that printing Facts is safe.
func (f Facts) String() string {
	return fmt.Sprintf("project %d (created %d): organization %d, user %d (%s), token [redacted], legacy tokens enabled: %t",
		f.ProjectID, f.ProjectCreatedAt, f.OrganizationID, f.UserID, f.UserSource, f.LegacyEnabled)
}

// GoString is String, so that %#v hides the token too.
func (f Facts) GoString() string { return f.String() }

// LogValue implements slog.LogValuer without the token.
func (f Facts) LogValue() slog.Value { return slog.StringValue(f.String()) }

// Store looks up a project's credential facts in Label Studio's database.
// When the project is found but yields no usable user or token, Lookup
// returns the facts it has (at least the organization) with the error, so
// that a tokens-file entry can still serve.
type Store interface {
	Lookup(ctx context.Context, projectID int64) (Facts, error)
}

// Exchanger turns a personal access token into a "Bearer <access>"
// Authorization value, caching the access token.
type Exchanger interface {
	Header(ctx context.Context, token string) (string, error)
	// Forget drops the cached access token of a PAT.
	Forget(token string)
	// ForgetHeader drops it only if header is the one cached.
	ForgetHeader(token, header string)
}

// Defaults for Options.
const (
	// DefaultCacheSize is the number of projects whose credential is kept.
	DefaultCacheSize = 128
	// DefaultTTL is how long a resolved credential is trusted before the
	// database is read again.
	DefaultTTL = 5 * time.Minute
	// DefaultErrorTTL is how long a failure is remembered, so that a burst
	// of clicks on a broken project does not hammer the database.
	DefaultErrorTTL = 5 * time.Second
	// DefaultStale is how long past its TTL a credential keeps serving
	// while the database is unavailable.
	DefaultStale = time.Hour
	// lookupTimeout bounds a database look-up that outlives the request
	// that started it (others may be waiting on it).
	lookupTimeout = 30 * time.Second
)

// Options configure a Resolver. Zero values take the defaults.
type Options struct {
	// CacheSize is the number of projects whose credential is cached.
	CacheSize int
	// TTL is how long a resolved credential is trusted.
	TTL time.Duration
	// ErrorTTL is how long a failure is remembered.
	ErrorTTL time.Duration
	// Stale is how long past TTL a cached credential still serves while
	// the database is unavailable (stale-while-error).
	Stale time.Duration
	// Tokens is the operator's tokens file, or nil.
	Tokens *TokensFile
	// Logger receives resolutions (DEBUG) and problems; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observe, if set, is called after every resolution of a project's
	// organization and credential (each Authorization and Organization)
	// with its outcome (OutcomeCacheHit, OutcomeCacheMiss or OutcomeError)
	// and the time it took.
	Observe func(outcome string, d time.Duration)
}

// Outcomes of a credential resolution, for Options.Observe.
const (
	// OutcomeCacheHit: the project's credential was cached and fresh.
	OutcomeCacheHit = "cache_hit"
	// OutcomeCacheMiss: it was read from the database (or, while the
	// database is down, served stale).
	OutcomeCacheMiss = "cache_miss"
	// OutcomeStatic: the static credential served, with no organization
	// middleware.
	OutcomeStatic = "static"
	// OutcomeFallback: the organization's credential failed and the
	// static one served instead (the failure also counts as an error).
	OutcomeFallback = "fallback"
	// OutcomeError: no credential.
	OutcomeError = "error"
)

// cred is an organization's credential.
type cred struct {
	token  string // legacy key or PAT; secret
	header string // "Token <key>" for a legacy key; "" for a PAT, which the exchanger serves
	source string // "database" or "tokens file", for logs
	user   int64
}

// projectEntry is a cached project: its organization and that
// organization's credential, so that a hit is one look-up, or why it
// failed.
type projectEntry struct {
	org        int64 // 0 when unknown (a failure before the organization was found)
	cred       cred
	err        error
	freshUntil time.Time // after it, read the database again
	staleUntil time.Time // until it, serve cred while the database is down
}

// Resolver implements imagefetch.Credentials for the organization
// middleware. It is safe for concurrent use.
type Resolver struct {
	store    Store
	ex       Exchanger
	tokens   *TokensFile
	log      *slog.Logger
	errorTTL time.Duration
	ttl      time.Duration
	stale    time.Duration
	now      func() time.Time
	observe  func(outcome string, d time.Duration)
	projects *lru.Cache[string, projectEntry]
	flight   singleflight.Group
	// epoch counts invalidations; a look-up that started before one does
	// not write its (possibly outdated) answer to the cache.
	epoch atomic.Int64
}

// New returns a Resolver.
func New(store Store, ex Exchanger, opts Options) *Resolver {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.ErrorTTL <= 0 {
		opts.ErrorTTL = DefaultErrorTTL
	}
	if opts.Stale <= 0 {
		opts.Stale = DefaultStale
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Resolver{
		store:    store,
		ex:       ex,
		tokens:   opts.Tokens,
		log:      opts.Logger,
		errorTTL: opts.ErrorTTL,
		ttl:      opts.TTL,
		stale:    opts.Stale,
		now:      opts.Now,
		observe:  opts.Observe,
		// Entries live TTL + Stale; freshUntil says when to read again.
		projects: lru.New(lru.Options[string, projectEntry]{MaxCost: int64(opts.CacheSize), TTL: opts.TTL + opts.Stale, Now: opts.Now}),
	}
}

// Authorization returns the Authorization value for requests to Label
// Studio made for project, the raw "project" of a predict request.
func (r *Resolver) Authorization(ctx context.Context, project string) (string, error) {
	_, h, err := r.OrganizationAuthorization(ctx, project)
	return h, err
}

// OrganizationAuthorization is Authorization that also returns the
// organization the credential belongs to, both from one cache entry, so
// that the two cannot come from different answers.
func (r *Resolver) OrganizationAuthorization(ctx context.Context, project string) (int64, string, error) {
	p, err := r.entry(ctx, project)
	if err != nil {
		return 0, "", err
	}
	if p.cred.header != "" {
		return p.org, p.cred.header, nil
	}
	h, err := r.ex.Header(ctx, p.cred.token)
	return p.org, h, err
}

// Projects returns, for every organization with a credential in the cache,
// the most recently used of its cached projects: what a health check can
// resolve and verify that organization's credential with.
func (r *Resolver) Projects() map[int64]string {
	out := map[int64]string{}
	r.projects.Each(func(project string, p projectEntry) {
		if p.err != nil || p.org == 0 {
			return
		}
		if _, seen := out[p.org]; !seen {
			out[p.org] = project
		}
	})
	return out
}

// Organization returns the id of the organization that owns project, from
// the cache when it can.
func (r *Resolver) Organization(ctx context.Context, project string) (int64, error) {
	p, err := r.entry(ctx, project)
	return p.org, err
}

// entry returns the project's cached entry while it is fresh, or resolves
// it: once for any number of concurrent callers. Each call is observed.
func (r *Resolver) entry(ctx context.Context, project string) (projectEntry, error) {
	if r.observe == nil {
		p, _, err := r.lookupEntry(ctx, project)
		return p, err
	}
	start := time.Now()
	p, hit, err := r.lookupEntry(ctx, project)
	outcome := OutcomeCacheMiss
	switch {
	case err != nil:
		outcome = OutcomeError
	case hit:
		outcome = OutcomeCacheHit
	}
	r.observe(outcome, time.Since(start))
	return p, err
}

// lookupEntry is entry, also reporting whether the cache answered.
func (r *Resolver) lookupEntry(ctx context.Context, project string) (projectEntry, bool, error) {
	p, cached := r.projects.Get(project)
	if cached {
		if p.err != nil {
			return projectEntry{}, true, p.err
		}
		if r.now().Before(p.freshUntil) {
			if r.log.Enabled(ctx, slog.LevelDebug) {
				r.log.DebugContext(ctx, "credential cache hit", "project", project, "organization", p.org)
			}
			return p, true, nil
		}
	}
	r.log.DebugContext(ctx, "credential cache miss", "project", project)
	ch := r.flight.DoChan(project, func() (any, error) {
		// The look-up serves every waiter, so the first one's leaving
		// must not cancel it; it is bounded on its own.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		return r.resolve(lctx, project, p, cached)
	})
	select {
	case <-ctx.Done():
		return projectEntry{}, false, fmt.Errorf("wait for the credential of project %q: %w", ls.ClipText(project), context.Cause(ctx))
	case res := <-ch:
		if res.Err != nil {
			return projectEntry{}, false, res.Err
		}
		return res.Val.(projectEntry), false, nil
	}
}

// resolve reads the database for project and caches the answer. When the
// database is unavailable and old is a credential past its TTL but within
// its stale time, old keeps serving (stale-while-error) and the database is
// tried again after ErrorTTL.
func (r *Resolver) resolve(ctx context.Context, project string, old projectEntry, cached bool) (projectEntry, error) {
	epoch := r.epoch.Load()
	c, org, err := r.lookup(ctx, project)
	now := r.now()
	current := r.epoch.Load() == epoch // no invalidation meanwhile
	if err != nil {
		if cached && old.err == nil && unavailable(err) && now.Before(old.staleUntil) {
			r.log.WarnContext(ctx, "Label Studio's database is unavailable; serving a cached credential",
				"project", project, "organization", old.org, "stale_for", now.Sub(old.freshUntil).Round(time.Second), "err", err)
			old.freshUntil = now.Add(r.errorTTL)
			if current {
				r.projects.Add(project, old, 1, old.staleUntil.Sub(now))
			}
			return old, nil
		}
		if current {
			r.projects.Add(project, projectEntry{org: org, err: err}, 1, r.errorTTL)
		}
		return projectEntry{}, err
	}
	fresh := now.Add(r.ttl)
	e := projectEntry{org: org, cred: c, freshUntil: fresh, staleUntil: fresh.Add(r.stale)}
	if current {
		r.projects.Add(project, e, 1, 0)
	}
	r.log.DebugContext(ctx, fmt.Sprintf("Using dynamic credentials for project %s (organization %d)", project, org),
		"source", c.source, "user", c.user)
	return e, nil
}

// unavailable reports whether err means the database could not be read at
// all (as opposed to a project that is not there): such errors carry 503.
func unavailable(err error) bool {
	var se interface{ HTTPStatus() int }
	return errors.As(err, &se) && se.HTTPStatus() == http.StatusServiceUnavailable
}

// lookup resolves project to its organization and credential. The
// organization is returned with an error too, when it is known.
func (r *Resolver) lookup(ctx context.Context, project string) (cred, int64, error) {
	ref, err := ls.ParseProjectRef(project)
	if err != nil {
		return cred{}, 0, &Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	facts, err := r.store.Lookup(ctx, ref.ID)
	org := facts.OrganizationID
	if org == 0 {
		if err == nil {
			err = &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("project %d has no organization in Label Studio's database", ref.ID)}
		}
		return cred{}, 0, err
	}
	if ref.HasCreatedAt && facts.ProjectCreatedAt != ref.CreatedAt {
		return cred{}, org, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf(
			"project %d in Label Studio's database was created at %d, but Label Studio's request says %d: the database was reset, or it belongs to another Label Studio instance (check LABEL_STUDIO_DB_PATH)",
			ref.ID, facts.ProjectCreatedAt, ref.CreatedAt)}
	}
	if tok, ok := r.tokens.Lookup(org); ok {
		return newCred(tok, "tokens file", 0), org, nil
	}
	if err != nil {
		return cred{}, org, err
	}
	if facts.Token == "" {
		return cred{}, org, &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("No auth token found for user %d in organization %d", facts.UserID, org)}
	}
	if !facts.LegacyEnabled {
		return cred{}, org, &LegacyDisabledError{Organization: org, User: facts.UserID}
	}
	return newCred(facts.Token, "database", facts.UserID), org, nil
}

func newCred(token, source string, user int64) cred {
	c := cred{token: token, source: source, user: user}
	if !lsauth.IsJWT(token) {
		c.header = "Token " + token
	}
	return c
}

// Rejected drops the credential behind header after Label Studio refused
// it, so the next Authorization reads the database again: that is how a
// rotated token is picked up. A header that is not the one cached (a late
// answer to an older request, or another source's) changes nothing.
func (r *Resolver) Rejected(project, header string) {
	p, ok := r.projects.Get(project)
	if !ok || p.err != nil {
		return
	}
	if p.cred.header == "" { // a PAT: forget its access token if it is this one
		r.ex.ForgetHeader(p.cred.token, header)
		return
	}
	if p.cred.header != header {
		return
	}
	r.dropOrg(p.org)
	r.log.Info("Label Studio refused a credential; resolving it again", "project", project, "organization", p.org)
}

// dropOrg forgets an organization's credential and every project that
// used it, and returns how many entries it dropped.
func (r *Resolver) dropOrg(org int64) int {
	return r.drop(func(_ string, p projectEntry) bool { return p.org == org })
}

// drop removes the matching entries, forgets their access tokens (outside
// the cache's lock) and makes look-ups under way discard their answers.
func (r *Resolver) drop(match func(string, projectEntry) bool) int {
	r.epoch.Add(1)
	var tokens []string
	n := r.projects.RemoveFunc(func(k string, p projectEntry) bool {
		if !match(k, p) {
			return false
		}
		if p.err == nil && p.cred.header == "" {
			tokens = append(tokens, p.cred.token)
		}
		return true
	})
	for _, t := range tokens {
		r.ex.Forget(t)
	}
	return n
}

// Invalidate drops cached credentials: of one project, of one organization,
// or (both zero) all. It returns how many entries it dropped.
func (r *Resolver) Invalidate(project, organization int64) int {
	switch {
	case project != 0:
		return r.drop(func(k string, _ projectEntry) bool {
			ref, err := ls.ParseProjectRef(k)
			return err == nil && ref.ID == project
		})
	case organization != 0:
		return r.dropOrg(organization)
	}
	return r.drop(func(string, projectEntry) bool { return true })
}

// Error is a resolution failure whose message is safe to show.
type Error struct {
	// Status is the HTTP status to answer with.
	Status int
	// Msg says what went wrong.
	Msg string
}

// Error returns Msg.
func (e *Error) Error() string { return e.Msg }

// HTTPStatus returns Status.
func (e *Error) HTTPStatus() int { return e.Status }

// LegacyDisabledError reports that the organization's only credential in
// the database is a legacy token, which Label Studio refuses for it.
type LegacyDisabledError struct {
	Organization, User int64
}

// Error names both ways out.
func (e *LegacyDisabledError) Error() string {
	return fmt.Sprintf("legacy API tokens are disabled for organization %d, so the token of user %d cannot be used: "+
		"enable legacy tokens for that organization in Label Studio (Organization → Settings → Access Token Settings), "+
		"or put a token for organization %d in ORG_TOKENS_FILE", e.Organization, e.User, e.Organization)
}

// HTTPStatus returns 502: Label Studio holds no credential the backend may
// use.
func (e *LegacyDisabledError) HTTPStatus() int { return http.StatusBadGateway }
