package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The outage tests run a private PostgreSQL server, created with initdb in
// the test's temporary directory and listening on 127.0.0.1 on a free port,
// which they stop and start under a running backend. They need
// PostgreSQL's server binaries (/usr/lib/postgresql/*/bin or on the PATH)
// and, when run as root, the postgres system user to run them as: without
// either they skip, unless SAM_REQUIRE_PG is 1.
const (
	requirePGEnv = "SAM_REQUIRE_PG"
	// pgPassword is in the backend's connection string although trust
	// authentication ignores it: it must appear nowhere the backend writes.
	pgPassword = "pw-Outage-7c1e9a2fS3cret"
	// pgPoll bounds every wait for the backend or the server to change
	// state.
	pgPoll = 15 * time.Second
)

// pgCluster is a private PostgreSQL server.
type pgCluster struct {
	bin     string // the directory of initdb, pg_ctl
	dir     string // owned by the server's user: data directory, socket, log
	port    int
	cred    *syscall.Credential // whom to run the binaries as; nil: this process's user
	running bool
}

// skipWithoutPG skips the test with msg, or fails it when requirePGEnv is 1.
func skipWithoutPG(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(requirePGEnv) == "1" {
		t.Fatalf("%s; %s=1 requires it", msg, requirePGEnv)
	}
	t.Skipf("%s; skipping (%s=1 makes this a failure)", msg, requirePGEnv)
}

// pgBinDir returns the directory of the newest PostgreSQL server binaries.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "pg_ctl"))
		return err != nil
	})
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if len(dirs) > 0 {
		return dirs[0], nil
	}
	p, err := exec.LookPath("pg_ctl")
	if err != nil {
		return "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin or on the PATH")
	}
	return filepath.Dir(p), nil
}

// newPGCluster creates a stopped PostgreSQL server in a new temporary
// directory. It is stopped at the end of the test if it runs then.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		skipWithoutPG(t, err.Error())
	}
	c := &pgCluster{bin: bin, dir: t.TempDir()}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			skipWithoutPG(t, fmt.Sprintf("running as root, and there is no postgres user to run PostgreSQL as: %v", err))
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		// The server's user needs the directory, and a way into it
		// through the test's own temporary directory.
		if err := os.Chown(c.dir, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(c.dir), 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.run("initdb", "--version"); err != nil {
		skipWithoutPG(t, fmt.Sprintf("cannot run PostgreSQL's initdb (as the postgres user when root): %v", err))
	}
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 20
shared_buffers = 16MB
fsync = off
full_page_writes = off
`, c.port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(f, conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.running {
			if err := c.run("pg_ctl", "stop", "-D", c.data(), "-m", "immediate", "-w", "-t", "60", "-s"); err != nil {
				t.Errorf("stop PostgreSQL: %v", err)
			}
		}
	})
	return c
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

// addr is the server's host:port.
func (c *pgCluster) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// url is the URL of database db, as user postgres with password.
func (c *pgCluster) url(password, db string) string {
	userinfo := "postgres"
	if password != "" {
		userinfo += ":" + password
	}
	return "postgres://" + userinfo + "@" + c.addr() + "/" + db + "?sslmode=disable"
}

// run runs one of the server's binaries as the server's user.
func (c *pgCluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// start starts the server and waits until it accepts connections.
func (c *pgCluster) start(t *testing.T) {
	t.Helper()
	logFile := filepath.Join(c.dir, "postgres.log")
	if err := c.run("pg_ctl", "start", "-D", c.data(), "-l", logFile, "-w", "-t", "60", "-s"); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("start PostgreSQL: %v\nserver log:\n%s", err, log)
	}
	c.running = true
}

// stop stops the server at once, as a crash or a kill does.
func (c *pgCluster) stop(t *testing.T) {
	t.Helper()
	if err := c.run("pg_ctl", "stop", "-D", c.data(), "-m", "immediate", "-w", "-t", "60", "-s"); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	c.running = false
}

// loadOrgs creates database labelstudio with Label Studio 1.23's schema and
// the rows of newOrgFixture: two organizations with legacy tokens enabled,
// each with its user, that user's token keys[org] and project org.
func (c *pgCluster) loadOrgs(t *testing.T, keys map[int64]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	load := func(dsn, sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("build database: %v\n%.200s", err, sql)
		}
	}
	ddl, err := os.ReadFile("../lsdb/testdata/label_studio_schema_pg.sql")
	if err != nil {
		t.Fatal(err)
	}
	load(c.url("", "postgres"), "CREATE DATABASE labelstudio")
	load(c.url("", "labelstudio"), "BEGIN;\n"+string(ddl)+"\n"+strings.Join(pgOrgRows(keys), ";\n")+";\nCOMMIT")
}

// pgOrgRows are newOrgFixture's rows spelled for PostgreSQL: booleans true
// and false, and timestamps that carry their offset to mean UTC whatever
// the session's TimeZone.
func pgOrgRows(keys map[int64]string) []string {
	const layout = "2006-01-02 15:04:05.999999"
	lit := func(t time.Time) string { return "'" + t.Format(layout) + "+00'" }
	base, _ := time.Parse(layout, orgCreatedAt)
	ts := lit(base)
	var stmts []string
	for org := int64(1); org <= 2; org++ {
		created := lit(base.Add(time.Duration(org) * time.Second)) // as orgProject expects
		stmts = append(stmts,
			fmt.Sprintf(`INSERT INTO htx_user (id, password, is_superuser, username, email, first_name, last_name, is_staff, is_active,
				date_joined, last_activity, activity_at, phone, avatar, active_organization_id, allow_newsletters)
				VALUES (%d, '!', false, 'u%d', 'u%d@example.com', '', '', false, true, %s, %s, %s, '', '', %d, false)`,
				org, org, org, ts, ts, ts, org),
			fmt.Sprintf(`INSERT INTO organization (id, title, created_at, updated_at, created_by_id, token) VALUES (%d, 'Org %d', %s, %s, %d, 'invite-%d')`,
				org, org, ts, ts, org, org),
			fmt.Sprintf(`INSERT INTO organizations_organizationmember (user_id, organization_id, created_at, updated_at) VALUES (%d, %d, %s, %s)`,
				org, org, ts, ts),
			fmt.Sprintf(`INSERT INTO jwt_auth_jwtsettings (organization_id, api_tokens_enabled, api_token_ttl_days, created_at, updated_at, legacy_api_tokens_enabled)
				VALUES (%d, true, 73000, %s, %s, true)`, org, ts, ts),
			fmt.Sprintf(`INSERT INTO authtoken_token (key, created, user_id) VALUES ('%s', %s, %d)`, keys[org], ts, org),
			fmt.Sprintf(`INSERT INTO project (id, title, show_instruction, is_published, created_at, updated_at,
				created_by_id, show_skip_button, show_collab_predictions, overlap_cohort_percentage, show_overlap_first, result_count,
				organization_id, is_draft, enable_empty_annotation, maximum_annotations, min_annotations_to_start_training,
				show_annotation_history, show_ground_truth_first, evaluate_predictions_automatically, reveal_preannotations_interactively)
				VALUES (%d, 'Project %d', false, false, %s, %s, %d, true, true, 100, false, 0, %d, false, true, 1, 0, false, false, false, false)`,
				org, org, created, created, org, org),
		)
	}
	return append(stmts, orgTaskRows("false", ts)...)
}

// outageBackend is a backend reading Label Studio's database from a
// private PostgreSQL server, with short cache and health intervals.
type outageBackend struct {
	url  string
	logs *syncBuffer
	// seen collects every response body and /health answer, to check
	// that none holds a secret.
	seen []string
}

func newOutageBackend(t *testing.T, f *orgFixture, pg *pgCluster) *outageBackend {
	t.Helper()
	b := &outageBackend{logs: &syncBuffer{}}
	a := newApp(t, map[string]string{
		"USE_ORG_MIDDLEWARE":  "true",
		"LABEL_STUDIO_DB_URL": pg.url(pgPassword, "labelstudio"),
		"LABEL_STUDIO_URL":    f.ls.URL,
		"ORG_CACHE_TTL":       "10ms", // the resolver's clock ticks every 250ms
		"HEALTH_INTERVAL":     "100ms",
		"EMBEDDING_CACHE_MB":  "0", // every prediction fetches, so needs a credential
		"LOG_LEVEL":           "DEBUG",
	}, b.logs)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	b.url = srv.URL
	return b
}

// predict posts a click on image n of organization org's project and
// returns the status and the response's detail (or the whole body).
func (b *outageBackend) predict(t *testing.T, org int64, n int) (int, string) {
	t.Helper()
	code, body := postPredict(b.url, orgRequest(t, org, n))
	b.seen = append(b.seen, body)
	var e struct{ Detail string }
	if code != http.StatusOK && json.Unmarshal([]byte(body), &e) == nil && e.Detail != "" {
		return code, e.Detail
	}
	return code, body
}

// health returns /health's checks.database status and error. /health must
// answer within 1 s, Label Studio's timeout, whatever the database does.
func (b *outageBackend) health(t *testing.T) (status, detail string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get(b.url + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v; want an answer within 1 s", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	b.seen = append(b.seen, string(body))
	var h struct {
		Checks struct {
			Database struct{ Status, Error string }
		}
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("GET /health: %v in %s", err, body)
	}
	return h.Checks.Database.Status, h.Checks.Database.Error
}

// waitHealth polls /health until checks.database.status is want.
func (b *outageBackend) waitHealth(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(pgPoll)
	for {
		status, detail := b.health(t)
		if status == want {
			return detail
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health checks.database: got %q (%s) after %s, want %q", status, detail, pgPoll, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPredict polls predictions on organization org's project, a new image
// each time starting at *n, until one succeeds. Meanwhile only a 503 is
// acceptable: anything else fails the test at once.
func (b *outageBackend) waitPredict(t *testing.T, org int64, n *int) {
	t.Helper()
	deadline := time.Now().Add(pgPoll)
	for {
		*n++
		code, detail := b.predict(t, org, *n)
		switch {
		case code == http.StatusOK:
			return
		case code != http.StatusServiceUnavailable:
			t.Fatalf("project %d while the database comes back: got %d %s, want 200 or, for a while, 503", org, code, detail)
		case time.Now().After(deadline):
			t.Fatalf("project %d: still %d %s after %s, want 200", org, code, detail, pgPoll)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkNoSecret fails the test if the log, a response or a /health answer
// holds a token of Label Studio's or the database password.
func (b *outageBackend) checkNoSecret(t *testing.T, keys map[int64]string) {
	t.Helper()
	out := b.logs.String() + strings.Join(b.seen, "\n")
	if strings.Contains(out, pgPassword) {
		t.Error("the database password appears in the log, a response or /health")
	}
	for org, key := range keys {
		// Any third of a token is enough to call it leaked.
		for _, part := range []string{key[:len(key)/3], key[len(key)/3 : 2*len(key)/3], key[2*len(key)/3:]} {
			if len(part) >= 12 && strings.Contains(out, part) {
				t.Errorf("part of organization %d's token appears in the log, a response or /health", org)
				break
			}
		}
	}
}

// TestPostgresOutage stops Label Studio's PostgreSQL under a running
// backend and starts it again: cached credentials keep serving, an
// uncached project gets a 503 that names the cause, /health reports the
// database down and still answers, and once the server is back the backend
// recovers by itself.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	ortLib(t) // skip before creating a server the test cannot use
	f := newOrgFixture(t)
	pg := newPGCluster(t)
	pg.start(t)
	pg.loadOrgs(t, f.keys)
	b := newOutageBackend(t, f, pg)
	n := 0

	// 1. The database is up.
	for range 2 {
		n++
		if code, detail := b.predict(t, 1, n); code != http.StatusOK {
			t.Fatalf("project 1 with the database up: got %d %s, want 200", code, detail)
		}
	}
	if status, detail := b.health(t); status != "up" {
		t.Fatalf("/health with the database up: got %q (%s), want \"up\"", status, detail)
	}

	// 2. The database goes down.
	pg.stop(t)
	// Project 1's credential is soon past its TTL; each prediction must
	// succeed until one has been served from the stale credential.
	deadline := time.Now().Add(pgPoll)
	for !strings.Contains(b.logs.String(), "serving a cached credential") {
		if time.Now().After(deadline) {
			t.Fatalf("no prediction of project 1 was served from the stale credential within %s", pgPoll)
		}
		n++
		if code, detail := b.predict(t, 1, n); code != http.StatusOK {
			t.Fatalf("project 1 (cached) with the database down: got %d %s, want 200 (stale-while-error)", code, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
	n++
	code, detail := b.predict(t, 2, n)
	if code != http.StatusServiceUnavailable || !strings.Contains(detail, "is unreachable: connection refused") || !strings.Contains(detail, pg.addr()) {
		t.Errorf("project 2 (never resolved) with the database down: got %d %s; want 503 saying %s is unreachable: connection refused", code, detail, pg.addr())
	}
	if detail := b.waitHealth(t, "down"); !strings.Contains(detail, pg.addr()) {
		t.Errorf("/health checks.database.error: got %q, want it to name %s", detail, pg.addr())
	}

	// 3. The database comes back; the backend is not restarted.
	pg.start(t)
	b.waitHealth(t, "up")
	b.waitPredict(t, 2, &n)
	n++
	if code, detail := b.predict(t, 1, n); code != http.StatusOK {
		t.Errorf("project 1 after the database came back: got %d %s, want 200", code, detail)
	}
	if log := b.logs.String(); !strings.Contains(log, "Label Studio's database is readable again") {
		t.Error("the log does not say that the database is readable again")
	}
	b.checkNoSecret(t, f.keys)
}

// TestPostgresOutageAtStart starts the backend while Label Studio's
// PostgreSQL is stopped: it starts, reports the database down, and serves
// once the server is started.
func TestPostgresOutageAtStart(t *testing.T) {
	t.Parallel()
	ortLib(t)
	f := newOrgFixture(t)
	pg := newPGCluster(t)
	pg.start(t)
	pg.loadOrgs(t, f.keys)
	pg.stop(t)

	b := newOutageBackend(t, f, pg)
	// The first check runs before the backend serves.
	if status, detail := b.health(t); status != "down" || !strings.Contains(detail, pg.addr()) {
		t.Errorf("/health at start with the database down: got %q (%s), want \"down\" naming %s", status, detail, pg.addr())
	}
	n := 0
	if code, detail := b.predict(t, 1, n); code != http.StatusServiceUnavailable || !strings.Contains(detail, "is unreachable: connection refused") {
		t.Errorf("project 1 with the database down: got %d %s, want 503 saying the database is unreachable", code, detail)
	}

	pg.start(t)
	b.waitHealth(t, "up")
	b.waitPredict(t, 1, &n)
	b.waitPredict(t, 2, &n)
	b.checkNoSecret(t, f.keys)
}
