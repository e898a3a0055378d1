// Package credentials picks the Label Studio credential for each request:
// the token of the organization that owns the request's project, read live
// from Label Studio's database or from an operator's tokens file, cached,
// and dropped again when Label Studio refuses it.
//
// Resolution runs project → organization → user → token. A cached answer
// costs two map look-ups; a burst of misses for one project makes a single
// database look-up; failures are cached only briefly. A token never appears
// in an error or a log line.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
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

// Store looks up a project's credential facts in Label Studio's database.
// When the project is found but yields no usable user or token, Lookup
// returns the facts it has (at least the organization) with the error, so
// that a tokens-file entry can still serve.
type Store interface {
	Lookup(ctx context.Context, projectID int64) (Facts, error)
}

// Exchanger turns a token into an Authorization value: "Token <key>" for a
// legacy key, "Bearer <access>" for a personal access token.
type Exchanger interface {
	Header(ctx context.Context, token string) (string, error)
	Forget(token string)
}

// Defaults for Options.
const (
	// DefaultCacheSize is the number of projects, and of organizations,
	// kept.
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
)

// Options configure a Resolver.
type Options struct {
	CacheSize int
	TTL       time.Duration
	ErrorTTL  time.Duration
	// Stale is how long past TTL a cached credential still serves while
	// the database is unavailable (stale-while-error).
	Stale time.Duration
	// Tokens is the operator's tokens file, or nil.
	Tokens *TokensFile
	Logger *slog.Logger
	Now    func() time.Time
}

// projectEntry is a cached project: its organization and that
// organization's credential (so a hit is one look-up), or why it failed.
type projectEntry struct {
	org        int64
	cred       orgEntry
	err        error
	freshUntil time.Time // after it, read the database again
	staleUntil time.Time // until it, serve cred while the database is down
}

// orgEntry is a cached organization credential.
type orgEntry struct {
	token  string // legacy key or PAT
	header string // "Token <key>" for a legacy key; "" for a PAT, which the exchanger serves
	source string // "database" or "tokens file", for logs
	user   int64
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
	projects *lru.Cache[string, projectEntry]
	orgs     *lru.Cache[int64, orgEntry]
	flight   singleflight.Group
	lookups  atomic.Int64
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
		// Entries live TTL + Stale; freshUntil says when to read again.
		projects: lru.New(lru.Options[string, projectEntry]{MaxCost: int64(opts.CacheSize), TTL: opts.TTL + opts.Stale, Now: opts.Now}),
		orgs:     lru.New(lru.Options[int64, orgEntry]{MaxCost: int64(opts.CacheSize), TTL: opts.TTL, Now: opts.Now}),
	}
}

// Lookups returns how many database look-ups the Resolver made.
func (r *Resolver) Lookups() int64 { return r.lookups.Load() }

// Authorization returns the Authorization value for requests to Label
// Studio made for project, the raw "project" of a predict request.
func (r *Resolver) Authorization(ctx context.Context, project string) (string, error) {
	p, cached := r.projects.Get(project)
	if cached {
		if p.err != nil {
			return "", p.err
		}
		if r.now().Before(p.freshUntil) {
			if r.log.Enabled(ctx, slog.LevelDebug) {
				r.log.Debug("credential cache hit", "project", project, "organization", p.org)
			}
			return r.header(ctx, p.cred)
		}
	}
	r.log.Debug("credential cache miss", "project", project)
	v, err, _ := r.flight.Do(project, func() (any, error) {
		return r.resolve(context.WithoutCancel(ctx), project, p, cached)
	})
	if err != nil {
		return "", err
	}
	return r.header(ctx, v.(orgEntry))
}

func (r *Resolver) header(ctx context.Context, o orgEntry) (string, error) {
	if o.header != "" {
		return o.header, nil
	}
	return r.ex.Header(ctx, o.token)
}

// resolve reads the database for project and fills both caches. When the
// database is unavailable and old is a credential past its TTL but within
// its stale time, old keeps serving (stale-while-error) and the database is
// tried again after ErrorTTL.
func (r *Resolver) resolve(ctx context.Context, project string, old projectEntry, cached bool) (orgEntry, error) {
	o, org, err := r.lookup(ctx, project)
	now := r.now()
	if err != nil {
		if cached && old.err == nil && unavailable(err) && now.Before(old.staleUntil) {
			r.log.Warn("Label Studio's database is unavailable; serving a cached credential",
				"project", project, "organization", old.org, "stale_for", now.Sub(old.freshUntil).Round(time.Second), "err", err)
			old.freshUntil = now.Add(r.errorTTL)
			r.projects.Add(project, old, 1, old.staleUntil.Sub(now))
			return old.cred, nil
		}
		r.projects.Add(project, projectEntry{err: err}, 1, r.errorTTL)
		return orgEntry{}, err
	}
	fresh := now.Add(r.ttl)
	r.projects.Add(project, projectEntry{org: org, cred: o, freshUntil: fresh, staleUntil: fresh.Add(r.stale)}, 1, 0)
	r.orgs.Add(org, o, 1, 0)
	r.log.Debug(fmt.Sprintf("Using dynamic credentials for project %s (organization %d)", project, org),
		"source", o.source, "user", o.user)
	return o, nil
}

// unavailable reports whether err means the database could not be read at
// all (as opposed to a project that is not there): such errors carry 503.
func unavailable(err error) bool {
	var se interface{ HTTPStatus() int }
	return errors.As(err, &se) && se.HTTPStatus() == http.StatusServiceUnavailable
}

func (r *Resolver) lookup(ctx context.Context, project string) (orgEntry, int64, error) {
	ref, err := ls.ParseProjectRef(project)
	if err != nil {
		return orgEntry{}, 0, &Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	r.lookups.Add(1)
	facts, err := r.store.Lookup(ctx, ref.ID)
	if facts.OrganizationID == 0 {
		if err == nil {
			err = &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("project %d has no organization in Label Studio's database", ref.ID)}
		}
		return orgEntry{}, 0, err
	}
	if ref.HasCreatedAt && facts.ProjectCreatedAt != ref.CreatedAt {
		return orgEntry{}, 0, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf(
			"project %d in Label Studio's database was created at %d, but Label Studio's request says %d: the database was reset, or it belongs to another Label Studio instance (check LABEL_STUDIO_DB_PATH)",
			ref.ID, facts.ProjectCreatedAt, ref.CreatedAt)}
	}
	org := facts.OrganizationID
	if tok, ok := r.tokens.Lookup(org); ok {
		return credential(tok, "tokens file", 0), org, nil
	}
	if err != nil {
		return orgEntry{}, 0, err
	}
	if facts.Token == "" {
		return orgEntry{}, 0, &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("No auth token found for user %d in organization %d", facts.UserID, org)}
	}
	if !facts.LegacyEnabled {
		return orgEntry{}, 0, &LegacyDisabledError{Organization: org, User: facts.UserID}
	}
	return credential(facts.Token, "database", facts.UserID), org, nil
}

func credential(token, source string, user int64) orgEntry {
	o := orgEntry{token: token, source: source, user: user}
	if !lsauth.IsJWT(token) {
		o.header = "Token " + token
	}
	return o
}

// Rejected drops the credential behind header after Label Studio refused
// it, so the next Authorization reads the database again: that is how a
// rotated token is picked up.
func (r *Resolver) Rejected(project, header string) {
	p, ok := r.projects.Get(project)
	if !ok || p.err != nil {
		return
	}
	r.dropOrg(p.org)
	r.log.Info("Label Studio refused a credential; resolving it again", "project", project, "organization", p.org)
}

// dropOrg forgets an organization's credential and every project that
// used it, and returns how many entries it dropped.
func (r *Resolver) dropOrg(org int64) int {
	n := r.projects.RemoveFunc(func(_ string, p projectEntry) bool {
		if p.org == org && p.err == nil {
			r.ex.Forget(p.cred.token)
			return true
		}
		return false
	})
	if r.orgs.Remove(org) {
		n++
	}
	return n
}

// Invalidate drops cached credentials: of one project, of one organization,
// or (both zero) all. It returns how many entries it dropped.
func (r *Resolver) Invalidate(project, organization int64) int {
	n := 0
	switch {
	case project != 0:
		prefix := strconv.FormatInt(project, 10)
		n = r.projects.RemoveFunc(func(k string, _ projectEntry) bool {
			return k == prefix || len(k) > len(prefix) && k[:len(prefix)] == prefix && k[len(prefix)] == '.'
		})
	case organization != 0:
		n = r.dropOrg(organization)
	default:
		n = r.projects.Len() + r.orgs.Len()
		r.orgs.RemoveFunc(func(_ int64, o orgEntry) bool { r.ex.Forget(o.token); return true })
		r.projects.Clear()
	}
	return n
}

// Error is a resolution failure whose message is safe to show.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string   { return e.Msg }
func (e *Error) HTTPStatus() int { return e.Status }

// LegacyDisabledError reports that the organization's only credential in
// the database is a legacy token, which Label Studio refuses for it.
type LegacyDisabledError struct {
	Organization, User int64
}

func (e *LegacyDisabledError) Error() string {
	return fmt.Sprintf("legacy API tokens are disabled for organization %d, so the token of user %d cannot be used: "+
		"enable legacy tokens for that organization in Label Studio (Organization → Settings → Access Token Settings), "+
		"or put a token for organization %d in ORG_TOKENS_FILE", e.Organization, e.User, e.Organization)
}

// HTTPStatus returns 502: Label Studio holds no credential the backend may
// use.
func (e *LegacyDisabledError) HTTPStatus() int { return http.StatusBadGateway }
