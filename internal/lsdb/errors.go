package lsdb

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels that callers branch on with errors.Is.
var (
	// ErrNotFound means the project or task is not in Label Studio's
	// database. Errors that match it are *NotFoundError.
	ErrNotFound = errors.New("not found")

	// ErrUnavailable means Label Studio's database cannot be read at all:
	// it is missing, unreadable, locked, in a state a read-only reader
	// cannot handle, not a Label Studio database, or (PostgreSQL) its
	// server cannot be reached or refuses the backend. Errors that match it
	// are *UnavailableError.
	ErrUnavailable = errors.New("database unavailable")

	// ErrNoToken means the user chosen for an organization has no legacy
	// token row (authtoken_token). Errors that match it are *DataError.
	ErrNoToken = errors.New("no auth token")

	// ErrNoUser means no user of the resolution chain is active. Errors
	// that match it are *DataError.
	ErrNoUser = errors.New("no active user")

	// ErrNoOrganization means the project has no organization. Errors that
	// match it are *DataError.
	ErrNoOrganization = errors.New("no organization")
)

// NotFoundError reports a project or task that Label Studio's database does
// not hold. A soft-deleted project counts as absent. Its text is safe to
// show to clients.
type NotFoundError struct {
	// Kind is "project" or "task".
	Kind string
	// ID is the id that was looked up.
	ID int64
}

// Error returns the message, which says why a project may be missing.
func (e *NotFoundError) Error() string {
	if e.Kind == "project" {
		return fmt.Sprintf("project %d not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)", e.ID)
	}
	return fmt.Sprintf("%s %d not found in Label Studio's database", e.Kind, e.ID)
}

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// HTTPStatus returns 404.
func (e *NotFoundError) HTTPStatus() int { return http.StatusNotFound }

// Reason classifies an UnavailableError. Its values are stable and short,
// fit for a metric label.
type Reason string

// Reasons of an UnavailableError.
const (
	// ReasonMissing: the database file does not exist, or the PostgreSQL
	// server has no database of that name (SQLSTATE 3D000).
	ReasonMissing Reason = "missing"
	// ReasonPermission: the process may not read the file or its
	// directory, or the PostgreSQL user may not read one of Label Studio's
	// tables (SQLSTATE 42501).
	ReasonPermission Reason = "permission"
	// ReasonLocked: a writer held a lock through every retry (SQLITE_BUSY).
	ReasonLocked Reason = "locked"
	// ReasonHotJournal: a crashed writer left a journal that a read-only
	// reader cannot roll back (SQLITE_READONLY_ROLLBACK).
	ReasonHotJournal Reason = "hot_journal"
	// ReasonWAL: the database is in WAL mode and its -shm file can be
	// neither found nor created (SQLITE_READONLY_DIRECTORY and kin).
	ReasonWAL Reason = "wal_read_only"
	// ReasonNotDatabase: the file is not an SQLite database (SQLITE_NOTADB),
	// or the path is a directory.
	ReasonNotDatabase Reason = "not_a_database"
	// ReasonNotLabelStudio: a database without Label Studio's tables or
	// columns.
	ReasonNotLabelStudio Reason = "not_label_studio"
	// ReasonCorrupt: SQLite found the database malformed (SQLITE_CORRUPT).
	ReasonCorrupt Reason = "corrupt"
	// ReasonSchemaChanging: the schema changed on every try, as while
	// Label Studio applies migrations.
	ReasonSchemaChanging Reason = "schema_changing"
	// ReasonIO: any other failure to open or read the file, or to connect
	// to PostgreSQL (TLS, for instance).
	ReasonIO Reason = "io"
	// ReasonUnreachable: the PostgreSQL server cannot be reached: the
	// connection was refused, timed out or was lost, or the host name does
	// not resolve.
	ReasonUnreachable Reason = "unreachable"
	// ReasonNotReady: the PostgreSQL server is starting up, shutting down
	// or recovering, and accepts no connections (SQLSTATE 57P03).
	ReasonNotReady Reason = "not_ready"
	// ReasonTooManyConnections: the PostgreSQL server has no connection
	// slot left (SQLSTATE 53300).
	ReasonTooManyConnections Reason = "too_many_connections"
	// ReasonAuthentication: the PostgreSQL server rejected the user, its
	// password or the client's address (SQLSTATE class 28).
	ReasonAuthentication Reason = "authentication"
	// ReasonTimeout: a PostgreSQL read ran past the statement timeout, as
	// behind a lock held by a migration (SQLSTATE 57014, 55P03).
	ReasonTimeout Reason = "timeout"
)

// UnavailableError reports that Label Studio's database cannot be read.
// Its text names the file (or the PostgreSQL server's host:port and the
// database) and says what to do; it is safe to show to clients (it holds
// paths, addresses and user names, never a password or a token).
type UnavailableError struct {
	// Path is the database path as configured or, for PostgreSQL,
	// postgres://user@host:port/database, without the password.
	Path string
	// Reason classifies the failure.
	Reason Reason
	// Msg is the message returned by Error.
	Msg string
	// Err is the driver's error, or nil; for logs.
	Err error
}

// Error returns Msg.
func (e *UnavailableError) Error() string { return e.Msg }

// Unwrap returns the driver's error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is reports whether target is ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// HTTPStatus returns 503: the backend cannot serve the request now, and
// retrying later may help once the database is fixed or unlocked.
func (e *UnavailableError) HTTPStatus() int { return http.StatusServiceUnavailable }

// Temporary reports whether the condition clears by itself: a lock held by
// a writer, a hot journal that Label Studio rolls back when it next opens
// the database, migrations in progress, or a PostgreSQL server that is
// restarting, unreachable, out of connection slots or too slow for the
// statement timeout. Everything else needs an operator.
func (e *UnavailableError) Temporary() bool {
	switch e.Reason {
	case ReasonLocked, ReasonHotJournal, ReasonSchemaChanging,
		ReasonUnreachable, ReasonNotReady, ReasonTooManyConnections, ReasonTimeout:
		return true
	}
	return false
}

// DataError reports that the database was read but its rows do not yield a
// credential: the project has no organization, nobody in the organization
// is active, or the chosen user has no token. Its text is safe to show to
// clients and never holds a token.
type DataError struct {
	// Msg is the message returned by Error.
	Msg string
	// Err is ErrNoToken, ErrNoUser or ErrNoOrganization.
	Err error
	// OrganizationID and ProjectCreatedAt are what was found of the
	// project before the failure (0 with ErrNoOrganization), so that a
	// caller with another source of tokens can still serve it.
	OrganizationID, ProjectCreatedAt int64
}

// Error returns Msg.
func (e *DataError) Error() string { return e.Msg }

// Unwrap returns the sentinel that classifies the error.
func (e *DataError) Unwrap() error { return e.Err }

// HTTPStatus returns 502: the backend works, but what the upstream Label
// Studio holds does not let it act on the request.
func (e *DataError) HTTPStatus() int { return http.StatusBadGateway }
