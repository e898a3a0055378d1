package lsdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
)

// SQLite result codes this package acts on (sqlite.org/rescode.html). The
// driver reports extended codes; the primary code is the low byte.
const (
	sqliteCantOpen          = 14
	sqliteBusy              = 5
	sqlitePerm              = 3
	sqliteAuth              = 23
	sqliteReadOnly          = 8
	sqliteIOErr             = 10
	sqliteCorrupt           = 11
	sqliteNotADB            = 26
	sqliteReadOnlyRecovery  = sqliteReadOnly | 1<<8 // 264
	sqliteReadOnlyCantLock  = sqliteReadOnly | 2<<8 // 520
	sqliteReadOnlyRollback  = sqliteReadOnly | 3<<8 // 776: hot journal
	sqliteReadOnlyCantInit  = sqliteReadOnly | 5<<8 // 1288
	sqliteReadOnlyDirectory = sqliteReadOnly | 6<<8 // 1544: WAL, no -shm, unwritable directory
)

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// sqliteDSN returns the DSN that opens path read-only with a busy timeout.
// The path is made a file: URI: the characters SQLite's URI parser treats
// specially are escaped, and filepath.Clean removes a leading "//" that
// would read as an authority. mode=ro never creates the file and takes the
// usual locks; immutable is never used (reference §2).
func sqliteDSN(path string, busy time.Duration) string {
	p := filepath.Clean(path)
	var b strings.Builder
	b.WriteString("file:")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	fmt.Fprintf(&b, "?mode=ro&_pragma=busy_timeout(%d)", busy.Milliseconds())
	return b.String()
}

// sqliteConnector opens connections with modernc.org/sqlite's driver
// without registering it: sql.OpenDB takes the connector, so no blank
// import and no global registry are involved. It counts the connections it
// opens so that the Store re-reads the schema whenever one is opened.
type sqliteConnector struct {
	dsn    string
	drv    *sqlite.Driver
	opened *atomic.Int64
}

// Connect implements driver.Connector.
func (c *sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	c.opened.Add(1)
	return conn, nil
}

// Driver implements driver.Connector.
func (c *sqliteConnector) Driver() driver.Driver { return c.drv }

// sqliteDialect is the dialect of SQLite.
type sqliteDialect struct {
	path string
	busy time.Duration
	file *fileIdentity
}

// fileIdentity remembers which file the pool's connections opened.
type fileIdentity struct {
	mu   sync.Mutex
	last os.FileInfo
	idle int // the pool's idle connections, restored after a drop
}

// precheck looks at the database file before each read: open connections
// keep reading a file that was removed or replaced (an unmounted volume, a
// restored backup), so a missing file is reported at once, and a replaced
// one makes the pool drop its idle connections and open the new file.
func (d sqliteDialect) precheck(db *sql.DB) error {
	fi, err := os.Stat(d.path)
	if err != nil {
		u := d.classifyOpen(err)
		u.Err = err
		return u
	}
	const readable = 4 // R_OK: open connections would still read a file made unreadable
	if err := syscall.Access(d.path, readable); err != nil {
		return &UnavailableError{Path: d.path, Reason: ReasonPermission, Msg: "Permission denied: " + d.path, Err: err}
	}
	d.file.mu.Lock()
	defer d.file.mu.Unlock()
	if d.file.last != nil && !os.SameFile(d.file.last, fi) {
		db.SetMaxIdleConns(0) // closes the idle connections to the old file
		db.SetMaxIdleConns(d.file.idle)
	}
	d.file.last = fi
	return nil
}

func (sqliteDialect) rebind(q string) string { return q }

func (sqliteDialect) versionQuery() string { return "PRAGMA schema_version" }

func (sqliteDialect) columnsQuery(tables []string) (string, []any) {
	args := make([]any, len(tables))
	for i, t := range tables {
		args[i] = t
	}
	q := `SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p
WHERE m.type = 'table' AND m.name IN (?` + strings.Repeat(", ?", len(tables)-1) + `)`
	return q, args
}

func (sqliteDialect) retryable(err error) bool {
	code := sqliteCode(err)
	return code&0xff == sqliteBusy || code == sqliteReadOnlyRollback
}

func (d sqliteDialect) notLabelStudio(missing string) *UnavailableError {
	return &UnavailableError{
		Path:   d.path,
		Reason: ReasonNotLabelStudio,
		Msg:    fmt.Sprintf("%s is not a Label Studio database: %s", d.path, missing),
	}
}

// unreadable is never called for SQLite, whose columnsQuery returns no
// NULL column: the file is readable whole or not at all.
func (d sqliteDialect) unreadable(table string) *UnavailableError {
	return &UnavailableError{Path: d.path, Reason: ReasonPermission, Msg: "Permission denied: " + d.path}
}

func (d sqliteDialect) schemaChanging() *UnavailableError {
	return &UnavailableError{
		Path:   d.path,
		Reason: ReasonSchemaChanging,
		Msg:    fmt.Sprintf("the schema of Label Studio's database %s kept changing while it was read: Label Studio may be migrating; try again later", d.path),
	}
}

func (d sqliteDialect) classify(err error, attempts int) *UnavailableError {
	code := sqliteCode(err)
	if code == 0 {
		return nil
	}
	u := &UnavailableError{Path: d.path, Err: err}
	switch {
	case code&0xff == sqliteCantOpen, code&0xff == sqliteIOErr:
		return d.classifyOpen(err)
	case code&0xff == sqliteBusy:
		u.Reason = ReasonLocked
		u.Msg = fmt.Sprintf("Label Studio's database %s stayed locked by a writer (SQLITE_BUSY) through %d %s with a %s busy timeout: Label Studio may be running a long write or a migration; try again later",
			d.path, attempts, plural(attempts, "attempt", "attempts"), d.busy)
	case code == sqliteReadOnlyRollback:
		u.Reason = ReasonHotJournal
		u.Msg = fmt.Sprintf("Label Studio's database %s has a hot journal (%s-journal) left by an interrupted write, which a read-only reader cannot roll back (SQLITE_READONLY_ROLLBACK): Label Studio rolls it back the next time it opens the database; start Label Studio if it is not running",
			d.path, d.path)
	case code == sqliteReadOnlyDirectory, code == sqliteReadOnlyCantInit, code == sqliteReadOnlyRecovery, code == sqliteReadOnlyCantLock:
		u.Reason = ReasonWAL
		u.Msg = fmt.Sprintf("Label Studio's database %s is in WAL mode and its -shm file is missing or not writable, and the directory %s is not writable, so a read-only reader cannot create it (%s): mount the directory read-write (the backend still opens the database read-only), or run Label Studio on PostgreSQL",
			d.path, filepath.Dir(d.path), readOnlyName(code))
	case code == sqliteNotADB:
		u.Reason = ReasonNotDatabase
		u.Msg = fmt.Sprintf("%s is not an SQLite database (SQLITE_NOTADB): point the backend at Label Studio's label_studio.sqlite3", d.path)
	case code&0xff == sqliteCorrupt:
		u.Reason = ReasonCorrupt
		u.Msg = fmt.Sprintf("Label Studio's database %s is malformed (SQLITE_CORRUPT)", d.path)
	case code&0xff == sqlitePerm, code&0xff == sqliteAuth:
		u.Reason = ReasonPermission
		u.Msg = "Permission denied: " + d.path
	default:
		return nil
	}
	return u
}

// classifyOpen explains SQLITE_CANTOPEN and SQLITE_IOERR by looking at
// the file: SQLite's own messages ("unable to open database file", "disk
// I/O error") do not say why.
func (d sqliteDialect) classifyOpen(err error) *UnavailableError {
	u := &UnavailableError{Path: d.path, Err: err}
	fi, serr := os.Stat(d.path)
	switch {
	case errors.Is(serr, fs.ErrNotExist):
		u.Reason, u.Msg = ReasonMissing, "Database file not found at "+d.path
	case errors.Is(serr, fs.ErrPermission):
		u.Reason, u.Msg = ReasonPermission, "Permission denied: "+d.path
	case serr != nil:
		u.Reason, u.Msg = ReasonIO, fmt.Sprintf("open Label Studio's database %s: %v", d.path, serr)
	case fi.IsDir():
		u.Reason, u.Msg = ReasonNotDatabase, fmt.Sprintf("%s is a directory, not Label Studio's database file", d.path)
	default:
		f, oerr := os.Open(d.path)
		if oerr == nil {
			f.Close()
		}
		if errors.Is(oerr, fs.ErrPermission) {
			u.Reason, u.Msg = ReasonPermission, "Permission denied: "+d.path
		} else {
			u.Reason, u.Msg = ReasonIO, fmt.Sprintf("read Label Studio's database %s: %v", d.path, err)
		}
	}
	return u
}

// readOnlyName names the SQLITE_READONLY_* codes of a WAL database.
func readOnlyName(code int) string {
	switch code {
	case sqliteReadOnlyDirectory:
		return "SQLITE_READONLY_DIRECTORY"
	case sqliteReadOnlyCantInit:
		return "SQLITE_READONLY_CANTINIT"
	case sqliteReadOnlyRecovery:
		return "SQLITE_READONLY_RECOVERY"
	case sqliteReadOnlyCantLock:
		return "SQLITE_READONLY_CANTLOCK"
	}
	return fmt.Sprintf("SQLite code %d", code)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
