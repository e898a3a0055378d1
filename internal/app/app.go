// Package app wires the backend together from its configuration and runs
// it: it is where concrete types meet, so that cmd/sam-ml-backend stays a
// few lines and tests can start the whole service in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
	"github.com/sam-ml-backend/sam-ml-backend/internal/credentials"
	"github.com/sam-ml-backend/sam-ml-backend/internal/httpapi"
	"github.com/sam-ml-backend/sam-ml-backend/internal/imagefetch"
	"github.com/sam-ml-backend/sam-ml-backend/internal/logging"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsauth"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
	"github.com/sam-ml-backend/sam-ml-backend/internal/metrics"
	"github.com/sam-ml-backend/sam-ml-backend/internal/onnxrt"
	"github.com/sam-ml-backend/sam-ml-backend/internal/orgauth"
	"github.com/sam-ml-backend/sam-ml-backend/internal/predict"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
	"github.com/sam-ml-backend/sam-ml-backend/internal/standin"
)

// Model versions. The real one matches the reference backend's, so
// predictions keep their version when an operator switches.
const (
	ModelVersion     = "SamMLBackend-v0.0.1"
	DemoModelVersion = "SamMLBackend-demo"
)

// shutdownTimeout bounds how long in-flight predictions may finish after a
// stop signal.
const shutdownTimeout = 30 * time.Second

// App is the wired backend.
type App struct {
	// Service makes predictions; tests read its Stats.
	Service    *predict.Service
	handler    http.Handler
	model      *sam.Model
	closeCreds func()
}

// The concrete types meet the interfaces their consumers declare.
var (
	_ predict.Segmenter      = (*sam.Model)(nil)
	_ predict.Images         = images{}
	_ httpapi.Predictor      = (*predict.Service)(nil)
	_ imagefetch.Credentials = (*lsauth.Static)(nil)
	_ imagefetch.Credentials = (*credentials.Resolver)(nil)
	_ imagefetch.Credentials = (*credentials.Fallback)(nil)
	_ credentials.Exchanger  = (*lsauth.Exchanger)(nil)
	_ httpapi.Invalidator    = (*credentials.Resolver)(nil)
	_ httpapi.OrgVerifier    = (*orgauth.Secret)(nil)
	_ httpapi.TenantChecker  = tenantChecker{}
)

// New builds the backend from cfg. Close releases it.
func New(cfg *config.Config, version string, logger *slog.Logger) (*App, error) {
	ortVersion, err := onnxrt.Init(cfg.ONNXRuntimeLib)
	if err != nil {
		return nil, fmt.Errorf("load ONNX Runtime (set ONNXRUNTIME_LIB, or run scripts/fetch-onnxruntime.sh): %w", err)
	}
	opts := sam.Options{IntraOpThreads: cfg.Threads}
	var model *sam.Model
	modelVersion, kind := ModelVersion, "sam"
	if cfg.Demo() {
		enc, dec := standin.Demo()
		model, err = sam.Load(enc, dec, opts)
		modelVersion, kind = DemoModelVersion, "demo"
	} else {
		model, err = sam.LoadFiles(cfg.EncoderPath, cfg.DecoderPath, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("load SAM models: %w", err)
	}
	if cfg.Demo() {
		logger.Warn("DEMO MODE: no SAM models configured (SAM_ENCODER_PATH, SAM_DECODER_PATH), " +
			"so the bundled stand-in models run; masks are discs around the click, not real segmentation")
	}
	logger.Info("model loaded", "model", kind, "encoder_layout", model.Layout(), "onnxruntime", ortVersion, "model_version", modelVersion)
	logSettings(logger, cfg)

	// The cache's counters are read at each scrape, by then from svc,
	// which needs the metrics' hooks to be built.
	var svc *predict.Service
	m := metrics.New(metrics.Info{Version: version, ModelVersion: modelVersion, Model: kind, ONNXRuntime: ortVersion},
		func() metrics.CacheStats {
			st := svc.Stats()
			return metrics.CacheStats{Hits: st.CacheHits, Misses: st.CacheMisses, Evictions: st.Evictions, Bytes: st.CachedBytes}
		})
	cs, err := newCredentials(cfg, logger, m.ObserveCredential)
	if err != nil {
		model.Close()
		return nil, err
	}
	closeCreds := sync.OnceFunc(cs.close)
	fetcher, err := imagefetch.New(imagefetch.Config{
		LabelStudio:    cfg.LabelStudioURL,
		LocalFilesRoot: cfg.LocalFilesRoot,
		AllowedHosts:   cfg.AllowedImageHosts,
		Credentials:    cs.source,
		MaxBytes:       cfg.MaxImageBytes,
		MaxPixels:      cfg.MaxImagePixels,
		Timeout:        cfg.FetchTimeout,
		UserAgent:      "sam-ml-backend/" + version,
		Observe:        m.ObserveFetch,
	})
	if err != nil {
		closeCreds()
		model.Close()
		return nil, fmt.Errorf("set up image fetching: %w", err)
	}
	cacheBytes := cfg.EmbeddingCacheBytes
	if cacheBytes == 0 {
		cacheBytes = -1 // EMBEDDING_CACHE_MB=0 turns the cache off
	}
	svc = predict.New(images{fetcher, cs.scope}, model, predict.Options{
		ModelVersion:       modelVersion,
		CacheBytes:         cacheBytes,
		EncoderConcurrency: cfg.EncoderConcurrency,
		MaxQueue:           cfg.EncoderQueue,
		MaxPixels:          cfg.MaxImagePixels,
		TenantOf:           cs.tenantOf(),
		Logger:             logger,
		Binder:             cs.binder,
		ObserveEncode:      m.ObserveEncode,
		Observe:            func(t predict.Timings) { m.ObserveDecode(t.Decode) },
	})
	var orgAuth httpapi.OrgVerifier
	if cfg.OrgAuthSecret != "" {
		secret, err := orgauth.NewSecret(cfg.OrgAuthSecret)
		if err != nil {
			closeCreds()
			model.Close()
			return nil, fmt.Errorf("set up organization credentials: %w", err)
		}
		orgAuth = secret
	}
	modelCheck := map[string]any{"status": "loaded", "model": kind, "model_version": modelVersion,
		"encoder_layout": model.Layout(), "onnxruntime": ortVersion}
	srv, err := httpapi.New(httpapi.Config{
		ModelVersion: modelVersion,
		Health: map[string]any{
			"model":          kind,
			"encoder_layout": model.Layout(),
			"onnxruntime":    ortVersion,
			"version":        version,
		},
		Checks:          (&health{db: cs.db, creds: cs.creds, model: modelCheck}).checks,
		BasicAuthUser:   cfg.BasicAuthUser,
		BasicAuthPass:   cfg.BasicAuthPass,
		OrgAuth:         orgAuth,
		Tenants:         cs.tenants,
		AdminToken:      cfg.AdminToken,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxJSONDepth:    cfg.MaxJSONDepth,
		Logger:          logger,
		Observer:        m,
		Metrics:         m.Handler(),
	}, svc, cs.inv)
	if err != nil {
		closeCreds()
		model.Close()
		return nil, err
	}
	return &App{Service: svc, handler: srv, model: model, closeCreds: closeCreds}, nil
}

// Handler returns the HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Close waits, until ctx ends, for image work under way, then releases the
// models. If the work does not finish in time the models are left open:
// freeing them under a running session would crash the process.
func (a *App) Close(ctx context.Context) error {
	err := a.Service.Close(ctx)
	a.closeCreds()
	if err != nil {
		return err
	}
	return a.model.Close()
}

// Run loads the configuration through getenv, starts the backend and serves
// until ctx is cancelled; then it stops accepting, lets in-flight requests
// finish, and releases the models. Logs go to stderr. If ready is not nil it
// is called with the listening address.
func Run(ctx context.Context, version string, getenv func(string) string, stderr io.Writer, ready func(net.Addr)) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := NewLogger(stderr, cfg)
	a, err := New(cfg, version, logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "version", version)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		a.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down: finishing in-flight requests", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("requests still running at the shutdown deadline; closing their connections", "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	// Image work can outlive its requests for a moment; give it a short
	// grace before the models are freed.
	cctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := a.Close(cctx); err != nil {
		logger.Warn("stopped with image work still running; leaving the models to the exit", "err", err)
		return nil
	}
	logger.Info("stopped")
	return nil
}

// logSettings says at start-up what the operator configured, secrets left
// out, and warns about settings that do nothing as set.
func logSettings(logger *slog.Logger, cfg *config.Config) {
	lsURL := "(unset: only absolute image URLs work)"
	if cfg.LabelStudioURL != nil {
		lsURL = cfg.LabelStudioURL.Redacted()
	}
	auth := cfg.BasicAuthUser != "" && cfg.BasicAuthPass != ""
	logger.Info("settings",
		"label_studio_url", lsURL,
		"static_credential", cfg.APIToken != "",
		"local_files_root", cfg.LocalFilesRoot,
		"allowed_image_hosts", cfg.AllowedImageHosts,
		"basic_auth", auth,
		"organization_credentials", cfg.OrgAuthSecret != "",
		"admin_route", cfg.AdminToken != "",
		"embedding_cache_mb", cfg.EmbeddingCacheBytes>>20,
		"encoder_concurrency", cfg.EncoderConcurrency,
		"encoder_queue", cfg.EncoderQueue,
		"max_request_bytes", cfg.MaxRequestBytes,
		"max_json_depth", cfg.MaxJSONDepth,
		"max_image_bytes", cfg.MaxImageBytes,
		"max_image_pixels", cfg.MaxImagePixels,
		"fetch_timeout", cfg.FetchTimeout.String(),
		"health_interval", cfg.HealthInterval.String(),
		"health_verify_tokens", cfg.HealthVerifyTokens,
		"log_format", cfg.LogFormat)
	if !auth && (cfg.BasicAuthUser != "" || cfg.BasicAuthPass != "") {
		logger.Warn("basic auth is OFF: it needs both BASIC_AUTH_USER and BASIC_AUTH_PASS, and only one is set")
	}
	if cfg.HealthVerifyTokens && !cfg.UseOrgMiddleware && cfg.APIToken == "" {
		logger.Warn("HEALTH_VERIFY_TOKENS does nothing here: there is no credential to verify (no USE_ORG_MIDDLEWARE, no LABEL_STUDIO_API_KEY)")
	}
}

// NewLogger returns the logger cfg asks for: LOG_FORMAT at LOG_LEVEL.
func NewLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	return logging.New(w, cfg.LogLevel, cfg.LogFormat)
}

// credSetup is how image requests to Label Studio are authenticated.
type credSetup struct {
	source imagefetch.Credentials // nil: no credential
	inv    httpapi.Invalidator    // for the admin route; nil: nothing to forget
	db     *dbCheck               // the database's health; nil without one
	creds  *credCheck             // credential verification; nil when off
	// scope names the tenant of a project for the embedding cache; nil
	// with a single credential.
	scope func(ctx context.Context, project string) (string, error)
	// binder checks requests against the database; nil without one.
	binder predict.Binder
	// tenants checks organizations' projects; nil without a database.
	tenants httpapi.TenantChecker
	close   func()
}

// newCredentials builds what authenticates image requests to Label Studio:
// the organization middleware (with the static credential, if any, as its
// fallback), or the static credential alone, or nothing.
func newCredentials(cfg *config.Config, logger *slog.Logger, observe func(outcome string, d time.Duration)) (credSetup, error) {
	cs := credSetup{close: func() {}}
	var ex *lsauth.Exchanger
	if cfg.LabelStudioURL != nil {
		ex = lsauth.NewExchanger(cfg.LabelStudioURL, &http.Client{Timeout: cfg.FetchTimeout}, time.Now)
	}
	var static *lsauth.Static
	var staticInv httpapi.Invalidator
	if cfg.APIToken != "" {
		static = lsauth.NewStatic(cfg.APIToken, ex)
		staticInv = staticInvalidator{ex: ex, token: cfg.APIToken}
		logger.Info("static Label Studio credential configured", "kind", tokenKind(cfg.APIToken))
	}
	if !cfg.UseOrgMiddleware {
		if static != nil {
			cs.source, cs.inv = observedStatic{static, observe}, staticInv
			if cfg.HealthVerifyTokens {
				cs.creds = newCredCheck(cfg.LabelStudioURL, func() []credTarget {
					return []credTarget{{name: "static", src: static}}
				}, logger)
				bg, stop := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() { cs.creds.check(bg); run(bg, cfg.HealthInterval, cs.creds.check) })
				cs.close = func() { stop(); wg.Wait() }
			}
		}
		return cs, nil
	}

	var tokens *credentials.TokensFile
	if cfg.OrgTokensFile != "" {
		var err error
		if tokens, err = credentials.LoadTokensFile(cfg.OrgTokensFile); err != nil {
			return cs, err
		}
	}
	dblog := logger.With("component", "lsdb")
	var store *lsdb.Store
	var err error
	database := cfg.DBPath
	if cfg.DBURL != "" {
		database = cfg.RedactedDBURL()
		store, err = lsdb.OpenPostgres(cfg.DBURL, lsdb.Options{Logger: dblog})
	} else {
		store, err = lsdb.OpenSQLite(cfg.DBPath, lsdb.Options{Logger: dblog})
	}
	if err != nil {
		return cs, fmt.Errorf("open Label Studio's database: %w", err)
	}
	// Starting is not refused when the database is not readable yet: the
	// backend serves, says why each request fails, and recovers by itself.
	dbHealth := &dbCheck{db: store, log: dblog}
	dbHealth.check(context.Background())
	// A coarse clock keeps a cached resolution at tens of nanoseconds where
	// reading the system clock alone costs as much.
	clock := lru.NewCoarseClock(250 * time.Millisecond)
	resolver := credentials.New(dbStore{store}, ex, credentials.Options{
		CacheSize: cfg.OrgCacheSize,
		TTL:       cfg.OrgCacheTTL,
		Stale:     cfg.OrgCacheStale,
		Tokens:    tokens,
		Logger:    logger.With("component", "credentials"),
		Now:       clock.Now,
		Observe:   observe,
	})
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if tokens != nil {
		wg.Go(func() { tokens.Watch(bg, 2*time.Second, logger, func() { resolver.Invalidate(0, 0) }) })
	}
	wg.Go(func() { run(bg, cfg.HealthInterval, dbHealth.check) })
	logger.Info("organization middleware on", "database", database, "tokens_file_organizations", tokens.Len(),
		"fallback", static != nil)

	cs.source, cs.inv, cs.db = resolver, resolver, dbHealth
	var primary interface {
		credentials.Source
		orgSource
	} = resolver
	if cfg.HealthVerifyTokens {
		cs.creds = newCredCheck(cfg.LabelStudioURL, func() []credTarget {
			var ts []credTarget
			for org, project := range resolver.Projects() {
				ts = append(ts, credTarget{name: strconv.FormatInt(org, 10), project: project, src: resolver})
			}
			if static != nil {
				ts = append(ts, credTarget{name: "static", src: static})
			}
			return ts
		}, logger)
		wg.Go(func() { cs.creds.check(bg); run(bg, cfg.HealthInterval, cs.creds.check) })
		// A credential Label Studio refused at the check is not used
		// again; with a static credential, that one serves instead.
		primary = guarded{resolver, cs.creds}
	}
	cs.binder = taskBinder{db: store, log: logger}
	cs.tenants = tenantChecker{db: store}
	cs.scope = tenantScope(resolver, static != nil)
	if static != nil {
		cs.source = &credentials.Fallback{Primary: primary, Static: static, StaticName: cfg.APITokenName, Logger: logger, Observe: observe}
		cs.inv = invalidators{resolver, staticInv}
	}
	if cfg.OrgAuthSecret != "" {
		cs.source = orgBound{Source: cs.source, own: primary}
	}
	cs.close = func() {
		stop()
		wg.Wait()
		clock.Stop()
		store.Close()
	}
	return cs, nil
}

// tenantOf returns what names the tenant of an image key: with the
// organization middleware, the key's scope, "org<id>" (or "static"); nil
// with a single credential, where there is one tenant.
func (cs credSetup) tenantOf() func(string) string {
	if cs.scope == nil {
		return nil
	}
	return func(key string) string {
		tenant, _, _ := strings.Cut(key, "/")
		return tenant
	}
}

// tenantScope returns what names a project's tenant in the embedding
// cache: "org<id>" for the organization that owns it, "static" when that
// cannot be resolved and the static credential serves instead (fallback),
// and for a request made with an organization's own credentials
// "org<id>/own", a space of its own, so that an image cached for another
// kind of request (read from disk, say) is not served to it. The
// resolver's cached owner must then agree with the authenticated
// organization (which the tenant check read from the database): a project
// that moved meanwhile is refused, not served from the old space.
func tenantScope(resolver *credentials.Resolver, fallback bool) func(ctx context.Context, project string) (string, error) {
	return func(ctx context.Context, project string) (string, error) {
		authOrg, isOrg := httpapi.Organization(ctx)
		org, err := resolver.Organization(ctx, project)
		switch {
		case isOrg && err != nil:
			return "", err // no static fallback for an organization's own request
		case isOrg && org != authOrg:
			return "", notOrgProject(project, authOrg)
		case isOrg:
			return "org" + strconv.FormatInt(org, 10) + "/own", nil
		case err == nil:
			return "org" + strconv.FormatInt(org, 10), nil
		case fallback:
			return "static", nil // the fetch falls back to the static token too
		}
		return "", err
	}
}

// observedStatic is the static credential alone, its resolutions counted.
type observedStatic struct {
	*lsauth.Static
	observe func(outcome string, d time.Duration)
}

func (o observedStatic) Authorization(ctx context.Context, project string) (string, error) {
	start := time.Now()
	h, err := o.Static.Authorization(ctx, project)
	outcome := credentials.OutcomeStatic
	if err != nil {
		outcome = credentials.OutcomeError
	}
	o.observe(outcome, time.Since(start))
	return h, err
}

// dbStore adapts lsdb to what credentials needs.
type dbStore struct{ s *lsdb.Store }

func (d dbStore) Lookup(ctx context.Context, projectID int64) (credentials.Facts, error) {
	r, err := d.s.Resolve(ctx, projectID)
	var de *lsdb.DataError
	if errors.As(err, &de) {
		// The project is known but yields no token here: an
		// ORG_TOKENS_FILE entry for its organization may still serve.
		return credentials.Facts{ProjectID: projectID, OrganizationID: de.OrganizationID, ProjectCreatedAt: de.ProjectCreatedAt}, err
	}
	if err != nil {
		return credentials.Facts{}, err
	}
	return credentials.Facts{
		ProjectID:        r.ProjectID,
		OrganizationID:   r.OrganizationID,
		ProjectCreatedAt: r.ProjectCreatedAt,
		UserID:           r.UserID,
		UserSource:       r.UserSource,
		Token:            r.Token,
		LegacyEnabled:    r.LegacyEnabled,
	}, nil
}

// images adapts the fetcher to what predict needs. With the organization
// middleware, scope prefixes cache keys with the project's organization.
type images struct {
	f     *imagefetch.Fetcher
	scope func(ctx context.Context, project string) (string, error)
}

func (i images) Key(ctx context.Context, ref string, taskID int64, project string) (string, error) {
	loc, err := i.resolve(ctx, ref, taskID)
	if err != nil {
		return "", err
	}
	if i.scope == nil {
		return loc.Key(), nil
	}
	tenant, err := i.scope(ctx, project)
	if err != nil {
		return "", err
	}
	return tenant + "/" + loc.Key(), nil
}

func (i images) Fetch(ctx context.Context, ref string, taskID int64, project string) (image.Image, error) {
	loc, err := i.resolve(ctx, ref, taskID)
	if err != nil {
		return nil, err
	}
	return i.f.Fetch(ctx, loc, project)
}

// resolve locates the image. For a request made with an organization's
// own credentials, a local file is never read from disk, but asked of
// Label Studio with that organization's token, so that Label Studio says
// whether the organization may read it.
func (i images) resolve(ctx context.Context, ref string, taskID int64) (imagefetch.Location, error) {
	loc, err := i.f.Resolve(ref, taskID)
	if err != nil {
		return loc, err
	}
	if _, isOrg := httpapi.Organization(ctx); isOrg && loc.URL != "" {
		loc.Path = ""
	}
	return loc, nil
}

// invalidators passes an invalidation to each of several caches.
type invalidators []httpapi.Invalidator

func (is invalidators) Invalidate(project, organization int64) int {
	n := 0
	for _, i := range is {
		n += i.Invalidate(project, organization)
	}
	return n
}

// staticInvalidator forgets the access token a static personal access token
// was exchanged for. With one static credential every project and
// organization share it, so the ids do not narrow anything.
type staticInvalidator struct {
	ex    *lsauth.Exchanger
	token string
}

func (s staticInvalidator) Invalidate(project, organization int64) int {
	if !lsauth.IsJWT(s.token) {
		return 0
	}
	s.ex.Forget(s.token)
	return 1
}

func tokenKind(token string) string {
	if lsauth.IsJWT(token) {
		return "personal access token"
	}
	return "legacy API key"
}
