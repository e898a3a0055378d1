// Package lsdb reads, and never writes, Label Studio's own database to
// find what a project's credential is made of: its organization, the user
// whose legacy API token applies, that token, and whether Label Studio
// still accepts legacy tokens for that user (SPEC §4,
// reference/label-studio-internals.md §1–§3 and §6).
//
// OpenSQLite reads Label Studio's default SQLite file and OpenPostgres a
// PostgreSQL database (pgx through database/sql). Both return the same
// Store running the same queries: what differs between them
// (placeholders, schema introspection, the driver's error codes) sits
// behind the unexported dialect interface.
//
// The schema is introspected rather than assumed, so every Label Studio
// from 1.13 to 1.23 and later works: optional tables and columns
// (project.deleted_at, organizations_organizationmember.deleted_at,
// jwt_auth_jwtsettings, ...) are used only where they exist, and no query
// says SELECT *. Introspection runs again whenever the database reports a
// new schema version or the pool opens a new connection.
//
// SQLite is opened with mode=ro and a busy timeout, never immutable. Each
// call runs its few queries in one short read transaction, because in
// Label Studio's default rollback-journal mode a reader's lock delays
// Label Studio's commits. A lock (SQLITE_BUSY) or a hot journal
// (SQLITE_READONLY_ROLLBACK) is retried a few times with a short backoff.
//
// On PostgreSQL every session is read-only (default_transaction_read_only,
// and each call runs in a READ ONLY transaction), every statement has a
// timeout (Options.StatementTimeout), and the pool is small and bounded.
// A refused, reset or lost connection, a server that is starting up or
// shutting down, and a full server are retried like SQLite's locks.
// Messages name the server's host:port, the database and the user, never
// the password.
//
// Errors are *NotFoundError (errors.Is ErrNotFound, HTTP 404),
// *UnavailableError (errors.Is ErrUnavailable, HTTP 503: the database
// cannot be read, with a message that says how to fix it), *DataError
// (HTTP 502: the rows do not yield a credential), or, for anything
// unexpected, a plain wrapped error (treat as 500). No error ever holds a
// token.
package lsdb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Defaults for Options.
const (
	// DefaultBusyTimeout is how long SQLite waits for a writer's lock
	// before a read fails with SQLITE_BUSY. Label Studio's own timeout is
	// Python's default of 5 s.
	DefaultBusyTimeout = 5 * time.Second

	// DefaultRetries is how many times a read that failed with
	// SQLITE_BUSY or a hot journal, or with a transient PostgreSQL
	// connection failure, is tried again.
	DefaultRetries = 3

	// DefaultRetryDelay is the pause before the first retry; it doubles
	// before each further one.
	DefaultRetryDelay = 50 * time.Millisecond

	// DefaultMaxOpenConns bounds the connection pool. Reads are short, so
	// a few connections serve many concurrent callers.
	DefaultMaxOpenConns = 4

	// connMaxLifetime bounds how long a connection is reused, so that a
	// database file replaced under the same path (a restore, a reset) is
	// picked up within that time rather than read through an old file
	// descriptor forever.
	connMaxLifetime = time.Minute

	// maxRetryDelay caps the doubling pause between retries.
	maxRetryDelay = 2 * time.Second

	// maxRefreshes bounds how often one call re-reads the schema when it
	// keeps changing under it, as during Label Studio's migrations.
	maxRefreshes = 4
)

// Options configure a Store. The zero value uses the defaults.
type Options struct {
	// BusyTimeout is SQLite's busy timeout; 0 means DefaultBusyTimeout.
	// PostgreSQL ignores it.
	BusyTimeout time.Duration
	// Retries is how many times a locked read or a hot journal (SQLite),
	// or a refused or lost connection, a server starting up or out of
	// connection slots (PostgreSQL) is retried; 0 means DefaultRetries, a
	// negative value means none.
	Retries int
	// RetryDelay is the pause before the first retry, doubled before each
	// further one up to 2 s; 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxOpenConns bounds the pool; 0 means DefaultMaxOpenConns.
	MaxOpenConns int
	// Logger receives retries and schema changes at DEBUG; nil discards.
	Logger *slog.Logger

	// StatementTimeout is PostgreSQL's statement_timeout (and
	// idle_in_transaction_session_timeout) for the store's sessions; 0
	// means the connection string's statement_timeout if it sets one, else
	// DefaultStatementTimeout. A read that runs past it, as behind a lock
	// held by a migration, fails with ReasonTimeout and is not retried.
	StatementTimeout time.Duration
	// ConnectTimeout bounds opening one PostgreSQL connection; 0 means the
	// connection string's connect_timeout if it sets one, else
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// User sources: which link of the resolution chain supplied the user.
const (
	SourceOrganizationCreator = "organization creator"
	SourceProjectCreator      = "project creator"
	SourceMember              = "earliest active member"
)

// Resolution is what Label Studio's database says about a project's
// credential. Its String, GoString and LogValue methods hide Token, so a
// Resolution may be printed or logged whole.
type Resolution struct {
	// ProjectID is the project looked up.
	ProjectID int64
	// OrganizationID is the project's organization.
	OrganizationID int64
	// ProjectCreatedAt is project.created_at in unix seconds (UTC),
	// truncated as Label Studio truncates it in the "<id>.<ts>" project
	// reference it sends to ML backends.
	ProjectCreatedAt int64
	// UserID is the user whose legacy token applies.
	UserID int64
	// UserSource is SourceOrganizationCreator, SourceProjectCreator or
	// SourceMember.
	UserSource string
	// Token is the user's legacy key (authtoken_token.key); never empty.
	// It is a secret: never log it.
	Token string
	// LegacyEnabled reports whether Label Studio accepts legacy tokens for
	// the user: jwt_auth_jwtsettings.legacy_api_tokens_enabled of the
	// user's active organization (true before LS 1.17, without an active
	// organization, or without a row while jwt_auth 0002 is not applied).
	LegacyEnabled bool
}

// String describes r without its token.
func (r Resolution) String() string {
	return fmt.Sprintf("project %d (created %d): organization %d, user %d (%s), token [redacted], legacy tokens enabled: %t",
		r.ProjectID, r.ProjectCreatedAt, r.OrganizationID, r.UserID, r.UserSource, r.LegacyEnabled)
}

// GoString is String, so that %#v hides the token too.
func (r Resolution) GoString() string { return r.String() }

// LogValue implements slog.LogValuer without the token.
func (r Resolution) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("project", r.ProjectID),
		slog.Int64("organization", r.OrganizationID),
		slog.Int64("user", r.UserID),
		slog.String("user_source", r.UserSource),
		slog.Bool("legacy_enabled", r.LegacyEnabled),
	)
}

// Store reads Label Studio's database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	d       dialect
	log     *slog.Logger
	retries int
	delay   time.Duration

	// opened counts the connections the pool has opened; a generation
	// made before the latest one is re-checked.
	opened *atomic.Int64

	gen       atomic.Pointer[generation]
	refreshMu sync.Mutex
	versionMu sync.Mutex
	version   *sql.Stmt // the dialect's versionQuery, prepared once
}

// OpenSQLite returns a Store reading the SQLite database at path. It opens
// nothing yet: a missing or unreadable file is reported by each call
// (Resolve, Task, Ping), so a backend can start before the database
// exists, and recovers as soon as it appears. Close releases the pool.
func OpenSQLite(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open Label Studio's database: empty path")
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	opened := new(atomic.Int64)
	conn := &sqliteConnector{
		dsn:    sqliteDSN(path, opts.BusyTimeout),
		drv:    &sqlite.Driver{},
		opened: opened,
	}
	return newStore(sql.OpenDB(conn), sqliteDialect{path: path, busy: opts.BusyTimeout, file: &fileIdentity{idle: cmp.Or(opts.MaxOpenConns, DefaultMaxOpenConns)}}, opened, opts), nil
}

// newStore wraps db, whose connections are counted by opened.
func newStore(db *sql.DB, d dialect, opened *atomic.Int64, opts Options) *Store {
	s := &Store{db: db, d: d, log: opts.Logger, retries: opts.Retries, delay: opts.RetryDelay, opened: opened}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case s.retries == 0:
		s.retries = DefaultRetries
	case s.retries < 0:
		s.retries = 0
	}
	if s.delay <= 0 {
		s.delay = DefaultRetryDelay
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = DefaultMaxOpenConns
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(connMaxLifetime)
	return s
}

// Close closes the pool. Calls after Close fail.
func (s *Store) Close() error {
	if g := s.gen.Swap(nil); g != nil {
		g.retire()
	}
	s.versionMu.Lock()
	if s.version != nil {
		s.version.Close()
		s.version = nil
	}
	s.versionMu.Unlock()
	return s.db.Close()
}

// Ping checks that the database can be opened and read and is Label
// Studio's.
func (s *Store) Ping(ctx context.Context) error {
	return s.read(ctx, func(context.Context, *sql.Tx, *generation) error { return nil })
}

// Resolve reads, in one short read transaction, what is needed to pick a
// credential for project projectID.
//
// The user is the first of this chain who is active (htx_user.is_active)
// and has a legacy token: the organization's creator, then the project's
// creator, then the organization's members (not removed) by the date they
// joined, lowest membership id first on a tie (the first 16 active members
// are considered). Among those, the first whose token
// Label Studio accepts (LegacyEnabled) is preferred; when none is, the
// first with a token is returned with LegacyEnabled false, so the caller
// can say that legacy tokens are disabled. Users without a token are
// skipped; when nobody has one, the error names the first active user:
// "No auth token found for user <U> in organization <O>".
func (s *Store) Resolve(ctx context.Context, projectID int64) (*Resolution, error) {
	var res *Resolution
	err := s.read(ctx, func(ctx context.Context, tx *sql.Tx, g *generation) error {
		var err error
		res, err = resolve(ctx, tx, g, projectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Task returns task taskID's project id and its data column as stored: raw
// JSON, with Label Studio's "$undefined$" key left in place for the caller
// to replace with the label config's data key.
func (s *Store) Task(ctx context.Context, taskID int64) (projectID int64, data []byte, err error) {
	err = s.read(ctx, func(ctx context.Context, tx *sql.Tx, g *generation) error {
		var pid sql.NullInt64
		var raw []byte
		err := tx.StmtContext(ctx, g.task).QueryRowContext(ctx, taskID).Scan(&pid, &raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return &NotFoundError{Kind: "task", ID: taskID}
		case err != nil:
			return fmt.Errorf("query task %d: %w", taskID, err)
		case !pid.Valid:
			return &NotFoundError{Kind: "task", ID: taskID}
		}
		projectID, data = pid.Int64, raw
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return projectID, data, nil
}

// ProjectOrganization returns the id of the organization that owns project
// projectID, and the project's created_at in unix seconds. A project that
// is not in the database, or is deleted, is a *NotFoundError; one without
// an organization is a *DataError.
func (s *Store) ProjectOrganization(ctx context.Context, projectID int64) (org, createdAt int64, err error) {
	err = s.read(ctx, func(ctx context.Context, tx *sql.Tx, g *generation) error {
		p, err := readProject(ctx, tx, g, projectID)
		org, createdAt = p.org, p.createdAt
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return org, createdAt, nil
}

// projectRow is a project's row as the project query reads it.
type projectRow struct {
	org, createdAt             int64
	projectCreator, orgCreator sql.NullInt64
}

// readProject reads project projectID's row in tx. A missing or deleted
// project is a *NotFoundError; one without an organization a *DataError.
func readProject(ctx context.Context, tx *sql.Tx, g *generation, projectID int64) (projectRow, error) {
	var p projectRow
	var org sql.NullInt64
	var created dbTime
	err := tx.StmtContext(ctx, g.project).QueryRowContext(ctx, projectID).
		Scan(&org, &p.projectCreator, &created, &p.orgCreator)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return p, &NotFoundError{Kind: "project", ID: projectID}
	case err != nil:
		return p, fmt.Errorf("query project %d: %w", projectID, err)
	case !org.Valid:
		return p, &DataError{Err: ErrNoOrganization,
			Msg: fmt.Sprintf("project %d has no organization in Label Studio's database", projectID)}
	case !created.Valid:
		return p, fmt.Errorf("query project %d: created_at is NULL", projectID)
	}
	p.org, p.createdAt = org.Int64, created.Time.Unix()
	return p, nil
}

// resolve runs Resolve's queries in tx.
func resolve(ctx context.Context, tx *sql.Tx, g *generation, projectID int64) (*Resolution, error) {
	p, err := readProject(ctx, tx, g, projectID)
	if err != nil {
		return nil, err
	}
	res := &Resolution{
		ProjectID:        projectID,
		OrganizationID:   p.org,
		ProjectCreatedAt: p.createdAt,
	}

	rows, err := tx.StmtContext(ctx, g.candidates).QueryContext(ctx, p.orgCreator, p.projectCreator, p.org)
	if err != nil {
		return nil, fmt.Errorf("query users of organization %d: %w", p.org, err)
	}
	defer rows.Close()
	var (
		firstActive int64 = -1
		fallback    *Resolution
	)
	for rows.Next() {
		var src, user int64
		var token sql.NullString
		var legacy bool
		if err := rows.Scan(&src, &user, &token, &legacy); err != nil {
			return nil, fmt.Errorf("query users of organization %d: %w", p.org, err)
		}
		if firstActive < 0 {
			firstActive = user
		}
		if !token.Valid || token.String == "" {
			continue
		}
		r := *res
		r.UserID, r.UserSource, r.Token, r.LegacyEnabled = user, sourceName(src), token.String, legacy
		if legacy {
			return &r, nil
		}
		if fallback == nil {
			fallback = &r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query users of organization %d: %w", p.org, err)
	}
	switch {
	case fallback != nil:
		return fallback, nil
	case firstActive >= 0:
		return nil, &DataError{Err: ErrNoToken, OrganizationID: p.org, ProjectCreatedAt: res.ProjectCreatedAt,
			Msg: fmt.Sprintf("No auth token found for user %d in organization %d", firstActive, p.org)}
	}
	return nil, &DataError{Err: ErrNoUser, OrganizationID: p.org, ProjectCreatedAt: res.ProjectCreatedAt,
		Msg: fmt.Sprintf("no active user found for organization %d of project %d: its creator, the project's creator and its members are all deleted or inactive", p.org, projectID)}
}

// sourceName names a candidate source of the candidates query.
func sourceName(src int64) string {
	switch src {
	case sourceOrgCreator:
		return SourceOrganizationCreator
	case sourceProjectCreator:
		return SourceProjectCreator
	}
	return SourceMember
}

// read runs fn in a read transaction with a current generation of
// statements, retrying what the dialect calls retryable and classifying
// the final error.
func (s *Store) read(ctx context.Context, fn func(context.Context, *sql.Tx, *generation) error) error {
	if err := s.d.precheck(s.db); err != nil {
		return err
	}
	attempts := 0
	for {
		attempts++
		err := s.readOnce(ctx, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read Label Studio's database: %w", ctx.Err())
		}
		if attempts > s.retries || !s.d.retryable(err) {
			return s.finish(err, attempts)
		}
		delay := s.delay
		for i := 1; i < attempts && delay < maxRetryDelay; i++ {
			delay *= 2
		}
		delay = min(delay, maxRetryDelay)
		s.log.DebugContext(ctx, "retry reading Label Studio's database",
			"attempt", attempts, "delay", delay, "cause", err.Error())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("read Label Studio's database: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// finish turns the final error of read into this package's errors.
func (s *Store) finish(err error, attempts int) error {
	var nf *NotFoundError
	var de *DataError
	var ue *UnavailableError
	if errors.As(err, &nf) || errors.As(err, &de) || errors.As(err, &ue) {
		return err
	}
	if u := s.d.classify(err, attempts); u != nil {
		return u
	}
	return fmt.Errorf("read Label Studio's database: %w", err)
}

// readOnce runs fn once in a read transaction, first bringing the
// generation up to date with the schema.
func (s *Store) readOnce(ctx context.Context, fn func(context.Context, *sql.Tx, *generation) error) error {
	for refreshes := 0; ; refreshes++ {
		g := s.gen.Load()
		if g != nil && !g.acquire() {
			continue // retired between Load and acquire: load its successor
		}
		// A new connection makes the generation stale once per call;
		// after a refresh only a schema change does.
		stale, err := s.tryRead(ctx, g, refreshes == 0, fn)
		if g != nil {
			g.release()
		}
		if err != nil || !stale {
			return err
		}
		if refreshes >= maxRefreshes {
			return s.d.schemaChanging()
		}
		if err := s.refresh(ctx); err != nil {
			return err
		}
	}
}

// tryRead begins a read transaction and, when g is current, runs fn in it.
// It reports stale, with no error, when g is nil or out of date; with
// checkOpened, also when the pool opened a connection since g was checked.
func (s *Store) tryRead(ctx context.Context, g *generation, checkOpened bool, fn func(context.Context, *sql.Tx, *generation) error) (stale bool, err error) {
	if g == nil || checkOpened && g.opened.Load() != s.opened.Load() {
		return true, nil
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var v int64
	if err := tx.StmtContext(ctx, g.versionStmt).QueryRowContext(ctx).Scan(&v); err != nil {
		return false, err
	}
	// BeginTx may itself have opened a connection.
	if v != g.version || checkOpened && g.opened.Load() != s.opened.Load() {
		return true, nil
	}
	if g.err != nil {
		return false, g.err
	}
	if err := fn(ctx, tx, g); err != nil {
		return false, err
	}
	return false, tx.Commit()
}

// refresh reads the schema again and replaces the generation when the
// schema differs from the current one's; otherwise it marks the current
// one checked. Concurrent callers wait for each other. No connection is
// held while statements are prepared, so a full pool cannot deadlock it.
func (s *Store) refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	cur := s.gen.Load()
	version, err := s.versionStmt(ctx)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	opened := s.opened.Load() // after BeginTx, which may open a connection
	var v int64
	if err := tx.StmtContext(ctx, version).QueryRowContext(ctx).Scan(&v); err != nil {
		tx.Rollback()
		return err
	}
	sch, serr := loadSchema(ctx, tx, s.d)
	tx.Rollback()
	var ue *UnavailableError
	if serr != nil && !errors.As(serr, &ue) {
		return serr
	}
	if cur != nil && cur.sameState(v, sch, serr) {
		cur.opened.Store(opened)
		return nil
	}
	g := &generation{version: v, schema: sch, err: serr, versionStmt: version}
	g.opened.Store(opened)
	if serr == nil {
		if err := g.prepare(ctx, s.db, buildQueries(s.d, sch)); err != nil {
			return err
		}
	}
	s.log.DebugContext(ctx, "read Label Studio's schema", "schema_version", v,
		"project_deleted_at", sch.projectDeletedAt, "member_deleted_at", sch.memberDeletedAt,
		"jwt_settings", sch.jwtSettings, "active_organization", sch.userActiveOrg,
		"label_studio", serr == nil)
	if old := s.gen.Swap(g); old != nil {
		old.retire()
	}
	return nil
}

// versionStmt returns the prepared version query, preparing it once.
func (s *Store) versionStmt(ctx context.Context) (*sql.Stmt, error) {
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	if s.version != nil {
		return s.version, nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.versionQuery())
	if err != nil {
		return nil, err
	}
	s.version = st
	return st, nil
}
