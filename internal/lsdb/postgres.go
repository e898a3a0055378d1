package lsdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults for the PostgreSQL fields of Options.
const (
	// DefaultStatementTimeout is PostgreSQL's statement_timeout for the
	// store's sessions. A resolution takes a few milliseconds; one that
	// waits this long is stuck behind a lock, as during a migration.
	DefaultStatementTimeout = 5 * time.Second

	// DefaultConnectTimeout bounds opening one PostgreSQL connection.
	DefaultConnectTimeout = 5 * time.Second

	// pgConnMaxLifetime bounds how long a PostgreSQL connection is reused,
	// so that a failover behind the same host name is followed.
	pgConnMaxLifetime = 30 * time.Minute

	// pgConnMaxIdleTime closes connections idle this long, so that an idle
	// backend does not hold the server's connection slots.
	pgConnMaxIdleTime = 5 * time.Minute

	// pgApplicationName names the store's sessions in pg_stat_activity
	// unless the connection string names them.
	pgApplicationName = "sam-ml-backend"
)

// SQLSTATE codes this package acts on
// (postgresql.org/docs/current/errcodes-appendix.html).
const (
	pgInvalidCatalogName    = "3D000" // database does not exist
	pgInsufficientPrivilege = "42501"
	pgUndefinedTable        = "42P01"
	pgUndefinedColumn       = "42703"
	pgFeatureNotSupported   = "0A000" // with routine RevalidateCachedQuery: a prepared plan's result changed
	pgCannotConnectNow      = "57P03" // starting up, shutting down, in recovery
	pgAdminShutdown         = "57P01" // terminating connection due to administrator command
	pgCrashShutdown         = "57P02"
	pgQueryCanceled         = "57014" // statement_timeout
	pgLockNotAvailable      = "55P03" // lock_timeout
	pgTooManyConnections    = "53300"
	pgSerializationFailure  = "40001"
	pgDeadlockDetected      = "40P01"
	pgClassConnection       = "08" // connection exception
	pgClassAuthorization    = "28" // invalid authorization specification, invalid password
)

// pgRoutineRevalidatePlan is the server function that reports a prepared
// statement whose result columns changed ("cached plan must not change
// result type"), as PgError.Routine, which unlike the message is not
// translated.
const pgRoutineRevalidatePlan = "RevalidateCachedQuery"

// OpenPostgres returns a Store reading Label Studio's PostgreSQL database
// at dsn: a URL (postgres://user:password@host:port/database?sslmode=...)
// or key=value pairs (host=... port=... dbname=...), read as libpq reads
// them, so the PG* environment variables and the password file apply too.
//
// Every session is read-only (default_transaction_read_only=on, and each
// call runs in a READ ONLY transaction) and has a statement timeout; the
// pool holds at most opts.MaxOpenConns connections. The session parameter
// application_name is sam-ml-backend unless dsn sets it.
//
// Like OpenSQLite it connects to nothing yet: an unreachable server is
// reported by each call (Resolve, Task, Ping), so a backend can start
// before its database and recovers as soon as the database answers. The
// error for a malformed dsn does not quote it, as it may hold a password.
// Close releases the pool.
func OpenPostgres(dsn string, opts Options) (*Store, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("open Label Studio's PostgreSQL database: empty connection string")
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx masks passwords in its message only on a best-effort basis
		// (and its cause, a *url.Error, not at all), so neither is shown.
		return nil, errors.New("parse Label Studio's PostgreSQL connection string: malformed; want postgres://user:password@host:port/database or key=value pairs (host=... port=... dbname=...); the string is not shown because it may hold a password")
	}

	switch {
	case opts.ConnectTimeout > 0:
		cfg.ConnectTimeout = opts.ConnectTimeout
	case cfg.ConnectTimeout <= 0:
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	params := cfg.RuntimeParams
	timeout, set := params["statement_timeout"] // PostgreSQL reads a bare number as milliseconds
	if ms, err := strconv.ParseInt(timeout, 10, 64); err == nil {
		timeout = (time.Duration(ms) * time.Millisecond).String()
	}
	if opts.StatementTimeout > 0 || !set {
		st := opts.StatementTimeout
		if st <= 0 {
			st = DefaultStatementTimeout
		}
		ms := max(st.Milliseconds(), 1)
		params["statement_timeout"] = strconv.FormatInt(ms, 10)
		timeout = (time.Duration(ms) * time.Millisecond).String()
	}
	// A transaction of this package lasts milliseconds; one left open
	// would hold locks that block Label Studio's migrations.
	if _, ok := params["idle_in_transaction_session_timeout"]; !ok {
		params["idle_in_transaction_session_timeout"] = params["statement_timeout"]
	}
	params["default_transaction_read_only"] = "on"
	if _, ok := params["application_name"]; !ok {
		params["application_name"] = pgApplicationName
	}

	d := newPGDialect(cfg, timeout)
	// The store re-reads the schema whenever the pool opens a connection,
	// as it does for SQLite, so that a database restored or replaced
	// behind the same address is introspected again.
	opened := new(atomic.Int64)
	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(context.Context, *pgx.Conn) error {
		opened.Add(1)
		return nil
	}))
	s := newStore(db, d, opened, opts)
	db.SetConnMaxLifetime(pgConnMaxLifetime)
	db.SetConnMaxIdleTime(pgConnMaxIdleTime)
	return s, nil
}

// pgDialect is the dialect of PostgreSQL. It holds what its messages name:
// never the password.
type pgDialect struct {
	addr     string        // host:port of the first host
	database string        // the database name
	user     string        // the user name
	url      string        // postgres://user@host:port/database, for UnavailableError.Path
	timeout  string        // the statement timeout, as its messages state it
	connect  time.Duration // the connect timeout
	version  string        // versionQuery
}

// newPGDialect describes the server and database of cfg.
func newPGDialect(cfg *pgx.ConnConfig, timeout string) pgDialect {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory
		addr = fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	database := cfg.Database
	if database == "" {
		database = cfg.User // the server's default
	}
	return pgDialect{
		addr:     addr,
		database: database,
		user:     cfg.User,
		url:      "postgres://" + cfg.User + "@" + addr + "/" + database,
		timeout:  timeout,
		connect:  cfg.ConnectTimeout,
		version:  pgVersionQuery(schemaTables()),
	}
}

// where names the database in messages.
func (d pgDialect) where() string {
	return fmt.Sprintf("Label Studio's PostgreSQL database %q at %s", d.database, d.addr)
}

// rebind numbers the ? placeholders of q outside string literals: $1, $2...
func (pgDialect) rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n, quoted := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (d pgDialect) versionQuery() string { return d.version }

// pgVersionQuery returns a query for a fingerprint of the tables named
// tables as the search path resolves them: each table's oid and the row
// versions (xmin) of its pg_class row and of its columns' pg_attribute
// rows. Any DDL that changes what columnsQuery returns writes new row
// versions there: a table created, dropped, restored or renamed, a column
// added, dropped or renamed, a GRANT or REVOKE on a table or a column.
// It reads only the catalogs, so no lock on Label Studio's tables blocks
// it. (PostgreSQL has no counter like SQLite's schema_version; hashing the
// column names and ACLs instead costs a third more per read.)
func pgVersionQuery(tables []string) string {
	return `SELECT COALESCE(sum(pg_catalog.hashtext(c.oid::text || ':' || c.xmin::text)::bigint
    + (SELECT COALESCE(sum(pg_catalog.hashtext(a.attnum::text || ':' || a.xmin::text)::bigint), 0)
       FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0)), 0)::bigint
FROM unnest('{` + strings.Join(tables, ",") + `}'::text[]) AS n (name)
JOIN pg_catalog.pg_class AS c ON c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(n.name))`
}

// columnsQuery reads information_schema.columns for the tables as the
// search path resolves them (the first schema on it holding a table of
// that name, as an unqualified query finds it), and adds (table, NULL) for
// a table that exists but on which the user lacks the table-level SELECT
// privilege: information_schema hides the columns the user may not
// access, so such a table would pass for absent, or for one without some
// column, and an optional table or column wrongly taken as absent changes
// results.
func (pgDialect) columnsQuery(tables []string) (string, []any) {
	args := make([]any, len(tables))
	values := make([]string, len(tables))
	for i, t := range tables {
		args[i] = t
		values[i] = fmt.Sprintf("($%d::text)", i+1)
	}
	q := `WITH wanted (name, rel) AS (
  SELECT v.name, pg_catalog.to_regclass(pg_catalog.quote_ident(v.name))
  FROM (VALUES ` + strings.Join(values, ", ") + `) AS v (name)
)
SELECT w.name, c.column_name::text
FROM information_schema.columns AS c JOIN wanted AS w ON c.table_name::text = w.name
WHERE w.rel = pg_catalog.to_regclass(pg_catalog.quote_ident(c.table_schema::text) || '.' || pg_catalog.quote_ident(c.table_name::text))
UNION ALL
SELECT w.name, NULL FROM wanted AS w
WHERE w.rel IS NOT NULL AND NOT pg_catalog.has_table_privilege(w.rel, 'SELECT')`
	return q, args
}

// retryable reports errors that a new attempt, on a new connection if
// need be, may not meet: a connection refused, reset or lost (a restart,
// a failover, a connection terminated by an administrator), a server
// starting up or out of connection slots, and a table or column that
// changed under a running read. A timeout is not retried: it already
// waited as long as a caller should.
func (pgDialect) retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgCannotConnectNow, pgAdminShutdown, pgCrashShutdown, pgTooManyConnections,
			pgSerializationFailure, pgDeadlockDetected, pgUndefinedTable, pgUndefinedColumn:
			return true
		case pgFeatureNotSupported:
			return pe.Routine == pgRoutineRevalidatePlan
		}
		return strings.HasPrefix(pe.Code, pgClassConnection)
	}
	if isTimeout(err) {
		return false
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, syscall.ECONNREFUSED) || connectionLost(err)
}

// isTimeout reports a connect or network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// connectionLost reports a connection that broke under a read.
func connectionLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, pgconn.ErrConnClosed)
}

func (d pgDialect) classify(err error, attempts int) *UnavailableError {
	u := &UnavailableError{Path: d.url, Err: err}
	tries := fmt.Sprintf("%d %s", attempts, plural(attempts, "attempt", "attempts"))
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == pgInvalidCatalogName:
			u.Reason = ReasonMissing
			u.Msg = fmt.Sprintf("PostgreSQL at %s has no database %q (SQLSTATE %s): check the database name the backend connects to",
				d.addr, d.database, pe.Code)
		case strings.HasPrefix(pe.Code, pgClassAuthorization):
			u.Reason = ReasonAuthentication
			u.Msg = fmt.Sprintf("PostgreSQL at %s rejected user %q for database %q: %s (SQLSTATE %s): check the user and password the backend connects with",
				d.addr, d.user, d.database, pe.Message, pe.Code)
		case pe.Code == pgInsufficientPrivilege:
			u.Reason = ReasonPermission
			u.Msg = fmt.Sprintf("PostgreSQL user %q may not read %s: %s (SQLSTATE %s): grant it SELECT on Label Studio's tables",
				d.user, d.where(), pe.Message, pe.Code)
		case pe.Code == pgCannotConnectNow:
			u.Reason = ReasonNotReady
			u.Msg = fmt.Sprintf("%s is not accepting connections through %s: %s (SQLSTATE %s): PostgreSQL is starting up, shutting down or recovering; try again shortly",
				d.where(), tries, pe.Message, pe.Code)
		case pe.Code == pgTooManyConnections:
			u.Reason = ReasonTooManyConnections
			u.Msg = fmt.Sprintf("%s refused the connection through %s: %s (SQLSTATE %s): the server's max_connections is used up by other clients; try again later",
				d.where(), tries, pe.Message, pe.Code)
		case pe.Code == pgQueryCanceled, pe.Code == pgLockNotAvailable:
			u.Reason = ReasonTimeout
			u.Msg = fmt.Sprintf("a read of %s ran past the statement timeout of %s: %s (SQLSTATE %s): a lock held by a migration or a long write, or an overloaded server; try again later",
				d.where(), d.timeout, pe.Message, pe.Code)
		case pe.Code == pgAdminShutdown, pe.Code == pgCrashShutdown, strings.HasPrefix(pe.Code, pgClassConnection):
			u.Reason = ReasonUnreachable
			u.Msg = fmt.Sprintf("%s closed the connection through %s: %s (SQLSTATE %s): PostgreSQL may be restarting; try again shortly",
				d.where(), tries, pe.Message, pe.Code)
		case pe.Code == pgUndefinedTable, pe.Code == pgUndefinedColumn,
			pe.Code == pgFeatureNotSupported && pe.Routine == pgRoutineRevalidatePlan:
			return d.schemaChanging()
		default:
			return nil
		}
		return u
	}

	var dns *net.DNSError
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		u.Reason = ReasonUnreachable
		u.Msg = fmt.Sprintf("%s is unreachable: connection refused through %s: is PostgreSQL running and listening on %s?",
			d.where(), tries, d.addr)
	case errors.As(err, &dns):
		u.Reason = ReasonUnreachable
		u.Msg = fmt.Sprintf("%s is unreachable: host %q cannot be resolved (%s)", d.where(), dns.Name, dns.Err)
	case isTimeout(err) && errors.As(err, &ce):
		u.Reason = ReasonUnreachable
		u.Msg = fmt.Sprintf("%s is unreachable: no answer within the connect timeout of %s", d.where(), d.connect)
	case isTimeout(err):
		u.Reason = ReasonUnreachable
		u.Msg = fmt.Sprintf("%s stopped answering (%v)", d.where(), err)
	case connectionLost(err) || pgconn.SafeToRetry(err):
		u.Reason = ReasonUnreachable
		u.Msg = fmt.Sprintf("%s is unreachable: the connection was lost through %s (%v): PostgreSQL may be restarting; try again shortly",
			d.where(), tries, err)
	case errors.As(err, &ce):
		// The connection failed for another reason, such as TLS. pgx's
		// message names the user and database, never the password.
		u.Reason = ReasonIO
		u.Msg = fmt.Sprintf("connect to %s: %v", d.where(), err)
	default:
		return nil
	}
	return u
}

func (d pgDialect) schemaChanging() *UnavailableError {
	return &UnavailableError{
		Path:   d.url,
		Reason: ReasonSchemaChanging,
		Msg:    fmt.Sprintf("the schema of %s kept changing while it was read: Label Studio may be migrating; try again later", d.where()),
	}
}

func (d pgDialect) notLabelStudio(missing string) *UnavailableError {
	return &UnavailableError{
		Path:   d.url,
		Reason: ReasonNotLabelStudio,
		Msg: fmt.Sprintf("PostgreSQL database %q at %s is not a Label Studio database: %s from the schemas on the search_path (set search_path in the connection string if Label Studio's tables are in another schema)",
			d.database, d.addr, missing),
	}
}

func (d pgDialect) unreadable(table string) *UnavailableError {
	return &UnavailableError{
		Path:   d.url,
		Reason: ReasonPermission,
		Msg: fmt.Sprintf("PostgreSQL user %q may not read table %s of %s: grant it SELECT on Label Studio's tables",
			d.user, table, d.where()),
	}
}

// precheck does nothing: a PostgreSQL server reports its own state.
func (pgDialect) precheck(*sql.DB) error { return nil }
