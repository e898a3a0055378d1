package lsdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// dialect is what differs between the SQL databases Label Studio runs on.
// The queries themselves are written once, in SQL that SQLite and
// PostgreSQL both accept, with ? placeholders that rebind rewrites.
type dialect interface {
	// rebind rewrites a query written with ? placeholders into the
	// dialect's placeholder syntax.
	rebind(query string) string

	// versionQuery is a query returning one integer that changes whenever
	// the schema may have changed (SQLite: PRAGMA schema_version;
	// PostgreSQL: a fingerprint of the catalog rows of the tables read).
	versionQuery() string

	// columnsQuery returns a query, and its arguments, whose rows are
	// (table, column) pairs for those of tables that exist, and
	// (table, NULL) for a table that exists but may not be read.
	columnsQuery(tables []string) (string, []any)

	// classify turns a driver error into an *UnavailableError when it
	// describes the state of the database file, and returns nil otherwise.
	// attempts is how many times the read was tried.
	classify(err error, attempts int) *UnavailableError

	// retryable reports whether a read that failed with err may succeed
	// if tried again shortly: a lock, a hot journal.
	retryable(err error) bool

	// schemaChanging returns the error for a schema that kept changing
	// while it was read.
	schemaChanging() *UnavailableError

	// notLabelStudio returns the error for a database that lacks what is
	// named by missing, e.g. "table project is missing".
	notLabelStudio(missing string) *UnavailableError

	// unreadable returns the error for a table that exists but that the
	// database user may not read.
	unreadable(table string) *UnavailableError

	// precheck runs before each read. It returns an error when the
	// database is known to be gone, and may close the pool's idle
	// connections when they would read something stale.
	precheck(db *sql.DB) error
}

// Tables and columns this package reads. Everything in required must exist
// in every Label Studio database since 1.13; the rest is detected.
var (
	required = []struct {
		table   string
		columns []string
	}{
		{"project", []string{"id", "organization_id", "created_by_id", "created_at"}},
		{"task", []string{"id", "project_id", "data"}},
		{"organization", []string{"id", "created_by_id"}},
		{"htx_user", []string{"id", "is_active"}},
		{"authtoken_token", []string{"key", "user_id"}},
		{"organizations_organizationmember", []string{"id", "organization_id", "user_id", "created_at"}},
	}
	optionalTables = []string{"jwt_auth_jwtsettings", "django_migrations"}
)

// schemaTables returns the names of the tables this package reads: the
// required ones first, in order, then the optional ones.
func schemaTables() []string {
	tables := make([]string, 0, len(required)+len(optionalTables))
	for _, r := range required {
		tables = append(tables, r.table)
	}
	return append(tables, optionalTables...)
}

// schema is what introspection found.
type schema struct {
	projectDeletedAt bool // project.deleted_at (projects 0032, LS 1.20+)
	memberDeletedAt  bool // organizations_organizationmember.deleted_at
	userActiveOrg    bool // htx_user.active_organization_id
	jwtSettings      bool // jwt_auth_jwtsettings (LS 1.17+)
	migrations       bool // django_migrations
}

// loadSchema introspects the tables this package reads. It returns an
// *UnavailableError from d.unreadable when the user may not read one of
// them, and from d.notLabelStudio when a required table or column is
// missing.
func loadSchema(ctx context.Context, tx *sql.Tx, d dialect) (schema, error) {
	tables := schemaTables()
	q, args := d.columnsQuery(tables)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return schema{}, err
	}
	defer rows.Close()
	cols := map[string]map[string]bool{}
	denied := map[string]bool{}
	for rows.Next() {
		var t string
		var c sql.NullString
		if err := rows.Scan(&t, &c); err != nil {
			return schema{}, err
		}
		t = strings.ToLower(t)
		if !c.Valid {
			denied[t] = true
			continue
		}
		if cols[t] == nil {
			cols[t] = map[string]bool{}
		}
		cols[t][strings.ToLower(c.String)] = true
	}
	if err := rows.Err(); err != nil {
		return schema{}, err
	}
	for _, t := range tables {
		if denied[t] {
			return schema{}, d.unreadable(t)
		}
	}
	for _, r := range required {
		if cols[r.table] == nil {
			return schema{}, d.notLabelStudio("table " + r.table + " is missing")
		}
		for _, c := range r.columns {
			if !cols[r.table][c] {
				return schema{}, d.notLabelStudio("column " + r.table + "." + c + " is missing")
			}
		}
	}
	jwt := cols["jwt_auth_jwtsettings"]
	mig := cols["django_migrations"]
	return schema{
		projectDeletedAt: cols["project"]["deleted_at"],
		memberDeletedAt:  cols["organizations_organizationmember"]["deleted_at"],
		userActiveOrg:    cols["htx_user"]["active_organization_id"],
		jwtSettings:      jwt["organization_id"] && jwt["legacy_api_tokens_enabled"],
		migrations:       mig["app"] && mig["name"],
	}, nil
}

// maxMembers bounds how many members of an organization the candidate
// query considers after the organization's and the project's creators.
const maxMembers = 16

// Candidate sources, in the order of the resolution chain.
const (
	sourceOrgCreator     = 0
	sourceProjectCreator = 1
	sourceMember         = 2
)

// jwtMigration is the migration that flipped JWTSettings' defaults to
// legacy tokens disabled (reference §1, jwt_auth).
const jwtMigration = "0002_alter_jwtsettings_api_tokens_enabled_and_more"

// queries are the SQL texts for one schema, in the dialect's placeholders.
type queries struct {
	project    string
	candidates string
	task       string
}

// buildQueries writes the queries for schema s. They are plain SQL that
// SQLite and PostgreSQL both run: CAST for typed parameters (BIGINT, so
// that PostgreSQL takes any int64 id, and compares it with integer or
// bigint columns through their indexes), a typed NULL where a UNION needs
// one (PostgreSQL resolves a column of bare NULLs as text), booleans only
// in WHERE and CASE WHEN, no SELECT *.
func buildQueries(d dialect, s schema) queries {
	notDeleted := func(col string) string {
		return " AND " + col + " IS NULL"
	}

	project := `SELECT p.organization_id, p.created_by_id, p.created_at, o.created_by_id
FROM project AS p LEFT JOIN organization AS o ON o.id = p.organization_id
WHERE p.id = CAST(? AS BIGINT)`
	if s.projectDeletedAt {
		project += notDeleted("p.deleted_at")
	}

	// legacy says whether Label Studio accepts the user's legacy token
	// (reference §3, TokenAuthenticationPhaseout): by the JWTSettings row of
	// the user's active organization; allowed without the table or without
	// an active organization; a missing row is created lazily with the
	// defaults of the running version, which disallow legacy tokens once
	// jwt_auth 0002 is applied.
	legacy := "1"
	jwtJoin := ""
	if s.jwtSettings && s.userActiveOrg {
		rowMissing := "1"
		if s.migrations {
			rowMissing = `CASE WHEN EXISTS (SELECT 1 FROM django_migrations WHERE app = 'jwt_auth' AND name = '` + jwtMigration + `') THEN 0 ELSE 1 END`
		}
		legacy = `CASE WHEN u.active_organization_id IS NULL THEN 1
  WHEN j.organization_id IS NULL THEN ` + rowMissing + `
  WHEN j.legacy_api_tokens_enabled THEN 1 ELSE 0 END`
		jwtJoin = "\nLEFT JOIN jwt_auth_jwtsettings AS j ON j.organization_id = u.active_organization_id"
	}
	member := ""
	if s.memberDeletedAt {
		member = notDeleted("m.deleted_at")
	}
	candidates := fmt.Sprintf(`SELECT c.src, u.id, t.key, %s
FROM (
  SELECT %d AS src, CAST(? AS BIGINT) AS uid, CAST(NULL AS TIMESTAMP) AS joined, 0 AS mid
  UNION ALL SELECT %d, CAST(? AS BIGINT), NULL, 0
  UNION ALL SELECT src, uid, joined, mid FROM (
    SELECT %d AS src, m.user_id AS uid, m.created_at AS joined, m.id AS mid
    FROM organizations_organizationmember AS m JOIN htx_user AS mu ON mu.id = m.user_id
    WHERE m.organization_id = CAST(? AS BIGINT) AND mu.is_active%s
    ORDER BY m.created_at, m.id LIMIT %d) AS members
) AS c
JOIN htx_user AS u ON u.id = c.uid
LEFT JOIN authtoken_token AS t ON t.user_id = u.id%s
WHERE u.is_active
ORDER BY c.src, c.joined, c.mid`,
		legacy, sourceOrgCreator, sourceProjectCreator, sourceMember, member, maxMembers, jwtJoin)

	task := `SELECT project_id, data FROM task WHERE id = CAST(? AS BIGINT)`

	return queries{
		project:    d.rebind(project),
		candidates: d.rebind(candidates),
		task:       d.rebind(task),
	}
}
