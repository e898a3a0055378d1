package lsdb_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"modernc.org/sqlite"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
)

// real2025 is a real Label Studio 1.15/1.16 database (pre-JWT), scrubbed;
// see reference/label-studio-internals.md §7.
const real2025 = "testdata/label_studio_2025_prejwt_uploads.sqlite3"

// openRW opens path read-write, creating it, the way Label Studio does.
func openRW(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	c, err := sqlite.NewConnector("file:" + path + "?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(c)
	tb.Cleanup(func() { db.Close() })
	return db
}

// execSQL runs statements on db.
func execSQL(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			tb.Fatalf("exec %.80q: %v", s, err)
		}
	}
}

// openStore opens path with OpenSQLite and closes it at the end of the test.
func openStore(tb testing.TB, path string, opts lsdb.Options) *lsdb.Store {
	tb.Helper()
	s, err := lsdb.OpenSQLite(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// copyFile copies src to dst with mode 0644.
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// copyReal2025 copies the real 2025 database into a new directory.
func copyReal2025(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "label_studio.sqlite3")
	copyFile(tb, real2025, p)
	return p
}

// tokenOf reads a user's legacy key with an independent connection.
func tokenOf(tb testing.TB, path string, user int64) string {
	tb.Helper()
	c, err := sqlite.NewConnector("file:" + path + "?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var key string
	if err := db.QueryRow("SELECT key FROM authtoken_token WHERE user_id = ?", user).Scan(&key); err != nil {
		tb.Fatalf("read token of user %d: %v", user, err)
	}
	return key
}

// lsUser is a row of htx_user in a built database.
type lsUser struct {
	id        int64
	active    bool
	activeOrg int64 // 0: NULL
	token     string
}

// The LS 1.23 database built by buildLS123. Organizations:
//
//	1: creator 1; legacy tokens on
//	2: creator 2; legacy tokens off
//	3: creator deleted (NULL); project 3 by user 3
//	4: creator NULL; project 4 by inactive user 4; members by join date:
//	   5 (inactive), 6 (membership removed), 7, 15 (same date as 7, later row)
//	5: creator 8, who has no token and is alone
//	6: creator 9; no JWTSettings row; project 12
//	7: creator 10, whose active organization (2) disables legacy tokens;
//	   project 7 by user 11, whose active organization (7) allows them
//	8: creator 12, no token; project 8 by user 13
//	9: creator 14, whose active organization is NULL; legacy off for 9
//	10: no creator; project 11 without creator; no members
//
// Project 6 (organization 1) is soft-deleted; project 10 has no
// organization.
var lsUsers = []lsUser{
	{1, true, 1, "tok-alice-0000000001"},
	{2, true, 2, "tok-bob-000000000002"},
	{3, true, 3, "tok-carol-0000000003"},
	{4, false, 4, "tok-dave-00000000004"},
	{5, false, 4, "tok-erin-00000000005"},
	{6, true, 4, "tok-frank-0000000006"},
	{7, true, 4, "tok-grace-0000000007"},
	{8, true, 5, ""},
	{9, true, 6, "tok-ivan-00000000009"},
	{10, true, 2, "tok-judy-00000000010"},
	{11, true, 7, "tok-mallory-00000011"},
	{12, true, 8, ""},
	{13, true, 8, "tok-olivia-000000013"},
	{14, true, 0, "tok-peggy-0000000014"},
	{15, true, 4, "tok-trent-0000000015"},
}

// tokenByUser maps the users of buildLS123 to their tokens.
func tokenByUser(id int64) string {
	for _, u := range lsUsers {
		if u.id == id {
			return u.token
		}
	}
	return ""
}

// jwtMigration0002 is the jwt_auth migration that made legacy tokens off by
// default.
const jwtMigration0002 = "0002_alter_jwtsettings_api_tokens_enabled_and_more"

// sqlLiterals spell values the way one database stores them.
type sqlLiterals struct {
	// boolean spells a BooleanField.
	boolean func(bool) string
	// time quotes a DateTimeField given as UTC text, as Django's SQLite
	// backend stores it: "YYYY-MM-DD HH:MM:SS[.ffffff]".
	time func(string) string
}

// sqliteLiterals: booleans are 0/1, datetimes UTC text without an offset.
var sqliteLiterals = sqlLiterals{
	boolean: func(b bool) string { return fmt.Sprint(b2i(b)) },
	time:    func(s string) string { return "'" + s + "'" },
}

// pgLiterals: boolean and timestamptz, whose text must carry its offset
// to mean UTC whatever the session's TimeZone.
var pgLiterals = sqlLiterals{
	boolean: func(b bool) string { return fmt.Sprint(b) },
	time:    func(s string) string { return "'" + s + "+00'" },
}

// seedLS123 returns the INSERT statements of the rows described above
// (lsUsers and the organizations, memberships, projects and tasks below),
// for a database with Label Studio 1.23's schema, spelled with lit. The
// SQLite and the PostgreSQL test databases are both built from it.
func seedLS123(lit sqlLiterals) []string {
	const ts = "2026-07-17 09:34:19.135947"
	f, t := lit.boolean(false), lit.boolean(true)
	var stmts []string
	for _, u := range lsUsers {
		org := "NULL"
		if u.activeOrg != 0 {
			org = fmt.Sprint(u.activeOrg)
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO htx_user (id, password, is_superuser, username, email,
first_name, last_name, is_staff, is_active, date_joined, last_activity, activity_at, phone, avatar,
active_organization_id, allow_newsletters) VALUES (%d, '!', %s, 'user%d', 'user%d@example.com', '', '', %s, %s,
%s, %s, %s, '', '', %s, %s)`, u.id, f, u.id, u.id, f, lit.boolean(u.active), lit.time(ts), lit.time(ts), lit.time(ts), org, f))
		if u.token != "" {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO authtoken_token (key, created, user_id) VALUES ('%s', %s, %d)`, u.token, lit.time(ts), u.id))
		}
	}
	const noRow = -1 // no JWTSettings row
	orgs := []struct {
		id      int64
		creator string
		legacy  int // 1, 0 or noRow
	}{
		{1, "1", 1}, {2, "2", 0}, {3, "NULL", 1}, {4, "NULL", 1}, {5, "8", 1},
		{6, "9", noRow}, {7, "10", 1}, {8, "12", 1}, {9, "14", 0}, {10, "NULL", 1},
	}
	for _, o := range orgs {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO organization (id, title, created_at, updated_at, created_by_id, token)
VALUES (%d, 'Org %d', %s, %s, %s, 'invite-%d')`, o.id, o.id, lit.time(ts), lit.time(ts), o.creator, o.id))
		if o.legacy != noRow {
			stmts = append(stmts, fmt.Sprintf(`INSERT INTO jwt_auth_jwtsettings (organization_id, api_tokens_enabled,
api_token_ttl_days, created_at, updated_at, legacy_api_tokens_enabled) VALUES (%d, %s, 73000, %s, %s, %s)`, o.id, t, lit.time(ts), lit.time(ts), lit.boolean(o.legacy == 1)))
		}
	}
	members := []struct {
		org, user int64
		joined    string
		deleted   bool
	}{
		{1, 1, "2026-01-01 00:00:00", false},
		{2, 2, "2026-01-01 00:00:00", false},
		{3, 3, "2026-01-01 00:00:00", false},
		{4, 5, "2020-01-01 00:00:00", false},
		{4, 6, "2020-01-02 00:00:00", true},
		{4, 7, "2020-01-03 00:00:00.5", false},
		{4, 15, "2020-01-03 00:00:00.5", false},
		{4, 4, "2020-01-04 00:00:00", false},
		{5, 8, "2026-01-01 00:00:00", false},
		{6, 9, "2026-01-01 00:00:00", false},
		{7, 10, "2026-01-01 00:00:00", false},
		{7, 11, "2026-01-02 00:00:00", false},
		{8, 12, "2026-01-01 00:00:00", false},
		{8, 13, "2026-01-02 00:00:00", false},
		{9, 14, "2026-01-01 00:00:00", false},
	}
	for _, m := range members {
		del := "NULL"
		if m.deleted {
			del = lit.time("2021-01-01 00:00:00")
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO organizations_organizationmember (created_at, updated_at, organization_id, user_id, deleted_at)
VALUES (%s, %s, %d, %d, %s)`, lit.time(m.joined), lit.time(m.joined), m.org, m.user, del))
	}
	projects := []struct {
		id           int64
		org, creator string
		createdAt    string
		deletedAt    string // "": not deleted
	}{
		{1, "1", "1", "2026-07-17 09:34:19.135947", ""},
		{2, "2", "2", "2026-07-17 09:34:19", ""},
		{3, "3", "3", "2026-07-17 09:34:19", ""},
		{4, "4", "4", "2026-07-17 09:34:19", ""},
		{5, "5", "8", "2026-07-17 09:34:19", ""},
		{6, "1", "1", "2026-07-17 09:34:19", "2026-07-18 00:00:00"},
		{7, "7", "11", "2026-07-17 09:34:19", ""},
		{8, "8", "13", "2026-07-17 09:34:19", ""},
		{9, "9", "14", "2026-07-17 09:34:19", ""},
		{10, "NULL", "1", "2026-07-17 09:34:19", ""},
		{11, "10", "NULL", "2026-07-17 09:34:19", ""},
		{12, "6", "9", "2026-07-17 09:34:19", ""},
	}
	for _, p := range projects {
		del := "NULL"
		if p.deletedAt != "" {
			del = lit.time(p.deletedAt)
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO project (id, title, show_instruction, is_published, created_at, updated_at,
created_by_id, show_skip_button, show_collab_predictions, overlap_cohort_percentage, show_overlap_first, result_count,
organization_id, is_draft, enable_empty_annotation, maximum_annotations, min_annotations_to_start_training,
show_annotation_history, show_ground_truth_first, evaluate_predictions_automatically, reveal_preannotations_interactively,
token, deleted_at) VALUES (%d, 'Project %d', %s, %s, %s, %s, %s, %s, %s, 100, %s, 0, %s, %s, %s, 1, 0, %s, %s, %s, %s, 'project-invite-%d', %s)`,
			p.id, p.id, f, f, lit.time(p.createdAt), lit.time(p.createdAt), p.creator, t, t, f, p.org, f, t, f, f, f, f, p.id, del))
	}
	for _, tk := range lsTasks {
		project := "NULL"
		if tk.project != 0 {
			project = fmt.Sprint(tk.project)
		}
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO task (id, data, created_at, updated_at, is_labeled, project_id, overlap,
total_annotations, cancelled_annotations, total_predictions, comment_count, unresolved_comment_count)
VALUES (%d, '%s', %s, %s, %s, %s, 1, 0, 0, 0, 0, 0)`, tk.id, tk.data, lit.time(ts), lit.time(ts), f, project))
	}
	return append(stmts,
		`INSERT INTO django_migrations (app, name, applied) VALUES ('jwt_auth', '0001_initial', `+lit.time(ts)+`)`,
		`INSERT INTO django_migrations (app, name, applied) VALUES ('jwt_auth', '`+jwtMigration0002+`', `+lit.time(ts)+`)`,
	)
}

// lsTask is a row of task in a built database.
type lsTask struct {
	id      int64
	project int64 // 0: NULL
	data    string
}

// lsTasks are the tasks of the built database. Their JSON is as jsonb
// prints it (one key), so both databases return it unchanged.
var lsTasks = []lsTask{
	{1, 1, `{"image": "/data/upload/1/0a1b2c3d-cat.png"}`},
	{2, 2, `{"$undefined$": "/data/upload/2/4e5f6a7b-dog.png"}`},
	{3, 0, `{"image": "/data/upload/9/orphan.png"}`},
}

// buildLS123 creates, in a new directory, a database with Label Studio
// 1.23's schema (testdata/label_studio_schema.sql) and the rows of
// seedLS123, and returns its path.
func buildLS123(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "label_studio.sqlite3")
	ddl, err := os.ReadFile(sqliteSchemaFile)
	if err != nil {
		tb.Fatal(err)
	}
	db := openRW(tb, path)
	execSQL(tb, db, "PRAGMA synchronous = OFF", "BEGIN;\n"+string(ddl)+"\nCOMMIT")
	execSQL(tb, db, "BEGIN;\n"+strings.Join(seedLS123(sqliteLiterals), ";\n")+";\nCOMMIT")
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// logBuffer collects log output and reports lines as they arrive.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	match string
	once  sync.Once
	seen  chan struct{}
}

// newLogger returns a DEBUG logger writing to a logBuffer, whose seen
// channel closes when a line containing match is written.
func newLogger(match string) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{match: match, seen: make(chan struct{})}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.match != "" && bytes.Contains(p, []byte(l.match)) {
		l.once.Do(func() { close(l.seen) })
	}
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many lines contain s.
func (l *logBuffer) count(s string) int {
	return strings.Count(l.String(), s)
}

var _ io.Writer = (*logBuffer)(nil)

// testDB is the Label Studio 1.23 test database (buildLS123's rows) in
// one of the databases the package reads.
type testDB struct {
	// name is the backend's: "sqlite" or "postgres".
	name string
	// open returns a store on the database, closed at the end of the test.
	open func(tb testing.TB, opts lsdb.Options) *lsdb.Store
	// exec runs statements on the database read-write, as Label Studio
	// does.
	exec func(tb testing.TB, stmts ...string)
	// notLabelStudio is the store's message for the database when it
	// lacks what missing names ("table project is missing").
	notLabelStudio func(missing string) string
}

// backends build the test database in each database the package reads.
var backends = []struct {
	name  string
	build func(tb testing.TB) testDB
}{
	{"sqlite", sqliteTestDB},
	{"postgres", pgTestDB},
}

// forEachBackend runs fn, in parallel subtests named after the backends,
// each on a new test database. A backend that is not available (a
// PostgreSQL server) skips its subtest.
func forEachBackend(t *testing.T, fn func(t *testing.T, db testDB)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := b.build(t)
			db.name = b.name
			fn(t, db)
		})
	}
}

// sqliteTestDB builds the test database in an SQLite file.
func sqliteTestDB(tb testing.TB) testDB {
	tb.Helper()
	path := buildLS123(tb)
	return testDB{
		open: func(tb testing.TB, opts lsdb.Options) *lsdb.Store { return openStore(tb, path, opts) },
		exec: func(tb testing.TB, stmts ...string) {
			tb.Helper()
			execSQL(tb, openRW(tb, path), stmts...)
		},
		notLabelStudio: func(missing string) string { return path + " is not a Label Studio database: " + missing },
	}
}
