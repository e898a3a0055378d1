package lsdb_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
)

// The PostgreSQL tests run against a real server: by default the local
// one at 127.0.0.1:5432 (trust authentication, user root, database test),
// or the one the URL in pgDSNEnv names. Each test creates its own
// database and drops it at the end. Without a server they skip, unless
// requirePGEnv is 1.
const (
	pgDSNEnv     = "LSDB_TEST_PG_DSN"
	defaultPGDSN = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	requirePGEnv = "SAM_REQUIRE_PG"
)

// pgServer checks once whether the test server answers, and returns its URL.
var pgServer = sync.OnceValues(func() (string, error) {
	dsn := cmp.Or(os.Getenv(pgDSNEnv), defaultPGDSN)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return dsn, err
	}
	defer conn.Close(ctx)
	return dsn, conn.Ping(ctx)
})

// requirePG returns the URL of the test server's maintenance database. It
// skips the test when the server does not answer, or fails it when
// requirePGEnv is 1.
func requirePG(tb testing.TB) string {
	tb.Helper()
	dsn, err := pgServer()
	if err != nil {
		host := "?"
		if u, perr := url.Parse(dsn); perr == nil {
			host = u.Host
		}
		msg := fmt.Sprintf("PostgreSQL is not reachable at %s (%s names another server): %v", host, pgDSNEnv, err)
		if os.Getenv(requirePGEnv) == "1" {
			tb.Fatalf("%s; %s=1 requires it", msg, requirePGEnv)
		}
		tb.Skipf("%s; skipping (%s=1 makes this a failure)", msg, requirePGEnv)
	}
	return dsn
}

// pgConnect connects to dsn for the test's own statements; the connection
// closes at the end of the test.
func pgConnect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// pgExec runs statements on conn, each of which may hold several.
func pgExec(tb testing.TB, conn *pgx.Conn, stmts ...string) {
	tb.Helper()
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			tb.Fatalf("exec %.80q: %v", s, err)
		}
	}
}

// randomName returns prefix followed by 12 random lowercase letters and
// digits: a name no other test uses.
func randomName(prefix string) string {
	return prefix + strings.ToLower(rand.Text()[:12])
}

// withDatabase returns dsn naming database name instead.
func withDatabase(tb testing.TB, dsn, name string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// newPGDatabase creates an empty database on the test server, dropped at
// the end of the test, and returns its URL.
func newPGDatabase(tb testing.TB) string {
	tb.Helper()
	admin := requirePG(tb)
	name := randomName("lsdb_")
	pgExec(tb, pgConnect(tb, admin), "CREATE DATABASE "+name)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop database %s: %v", name, err)
		}
	})
	return withDatabase(tb, admin, name)
}

// loadLS123 creates Label Studio 1.23's schema (testdata/label_studio_schema_pg.sql)
// and the rows of seedLS123 through conn, in one transaction.
func loadLS123(tb testing.TB, conn *pgx.Conn) {
	tb.Helper()
	ddl, err := os.ReadFile(pgSchemaFile)
	if err != nil {
		tb.Fatal(err)
	}
	pgExec(tb, conn, "BEGIN;\n"+string(ddl)+"\n"+strings.Join(seedLS123(pgLiterals), ";\n")+";\nCOMMIT")
}

// buildLS123PG creates a database like buildLS123's on the test server and
// returns its URL and a connection to it.
func buildLS123PG(tb testing.TB) (string, *pgx.Conn) {
	tb.Helper()
	dsn := newPGDatabase(tb)
	conn := pgConnect(tb, dsn)
	loadLS123(tb, conn)
	return dsn, conn
}

// openPGStore opens dsn with OpenPostgres and closes it at the end of the
// test.
func openPGStore(tb testing.TB, dsn string, opts lsdb.Options) *lsdb.Store {
	tb.Helper()
	s, err := lsdb.OpenPostgres(dsn, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// pgAddr returns the host:port of dsn.
func pgAddr(tb testing.TB, dsn string) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Host
}

// pgTestDB builds the test database on the test server.
func pgTestDB(tb testing.TB) testDB {
	tb.Helper()
	dsn, conn := buildLS123PG(tb)
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return testDB{
		open: func(tb testing.TB, opts lsdb.Options) *lsdb.Store { return openPGStore(tb, dsn, opts) },
		exec: func(tb testing.TB, stmts ...string) {
			tb.Helper()
			pgExec(tb, conn, stmts...)
		},
		notLabelStudio: func(missing string) string {
			return fmt.Sprintf("PostgreSQL database %q at %s is not a Label Studio database: %s from the schemas on the search_path (set search_path in the connection string if Label Studio's tables are in another schema)",
				strings.TrimPrefix(u.Path, "/"), u.Host, missing)
		},
	}
}

// closedPort returns a local TCP port on which nothing listens.
func closedPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// fakeServer listens on a local port, and serves each connection with
// serve before closing it, until the end of the test. It returns the
// address.
func fakeServer(tb testing.TB, serve func(net.Conn)) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	return l.Addr().String()
}

// unavailable returns err as an *UnavailableError, failing the test when it
// is not one with reason want and HTTP status 503.
func unavailable(t *testing.T, err error, want lsdb.Reason) *lsdb.UnavailableError {
	t.Helper()
	var ue *lsdb.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v (%T), want an UnavailableError with reason %s", err, err, want)
	}
	if ue.Reason != want {
		t.Errorf("reason: got %s, want %s (%v)", ue.Reason, want, err)
	}
	if !errors.Is(err, lsdb.ErrUnavailable) {
		t.Errorf("errors.Is(%v, ErrUnavailable): got false, want true", err)
	}
	if got := ue.HTTPStatus(); got != http.StatusServiceUnavailable {
		t.Errorf("HTTPStatus: got %d, want %d", got, http.StatusServiceUnavailable)
	}
	return ue
}

// wantContains fails the test for each of wants that s lacks.
func wantContains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s %q lacks %q", what, s, w)
		}
	}
}

// TestPostgresSession checks the session settings every connection of the
// store gets, and that each transaction is read-only.
func TestPostgresSession(t *testing.T) {
	t.Parallel()
	dsn, _ := buildLS123PG(t)
	tests := []struct {
		name string
		dsn  string
		opts lsdb.Options
		want map[string]string
	}{
		{"defaults", dsn, lsdb.Options{}, map[string]string{
			"statement_timeout": "5s", "idle_in_transaction_session_timeout": "5s",
			"default_transaction_read_only": "on", "transaction_read_only": "on",
			"application_name": "sam-ml-backend",
		}},
		{"options", dsn, lsdb.Options{StatementTimeout: 1500 * time.Millisecond}, map[string]string{
			"statement_timeout": "1500ms", "idle_in_transaction_session_timeout": "1500ms",
		}},
		{"connection string", dsn + "&statement_timeout=2s&application_name=ml&default_transaction_read_only=off", lsdb.Options{}, map[string]string{
			"statement_timeout": "2s", "application_name": "ml",
			"default_transaction_read_only": "on", "transaction_read_only": "on",
		}},
		{"options override the connection string", dsn + "&statement_timeout=2s", lsdb.Options{StatementTimeout: 3 * time.Second}, map[string]string{
			"statement_timeout": "3s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openPGStore(t, tt.dsn, tt.opts)
			got := map[string]string{}
			err := lsdb.ReadInTx(t.Context(), s, func(ctx context.Context, tx *sql.Tx) error {
				for name := range tt.want {
					var v string
					if err := tx.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
						return err
					}
					got[name] = v
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s: got %q, want %q", name, got[name], want)
				}
			}
		})
	}
}

// TestReadOnly checks that nothing run through a store can write: not in
// its transactions and, on PostgreSQL, not outside them either.
func TestReadOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db testDB) {
		s := db.open(t, lsdb.Options{})
		writes := []string{
			"UPDATE htx_user SET first_name = 'written' WHERE id = 1",
			"INSERT INTO authtoken_token (key, created, user_id) VALUES ('tok-new', '2026-01-01 00:00:00', 8)",
			"CREATE TABLE written (id integer)",
		}
		for _, w := range writes {
			err := lsdb.ReadInTx(t.Context(), s, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, w)
				return err
			})
			if err == nil {
				t.Errorf("%s in the store's transaction: got success, want an error", w)
				continue
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code != "25006" { // read_only_sql_transaction
				t.Errorf("%s in the store's transaction: got %v, want SQLSTATE 25006", w, err)
			}
			if errors.Is(err, lsdb.ErrUnavailable) {
				t.Errorf("%s: got %v, want a plain error, not ErrUnavailable", w, err)
			}
		}
		if db.name == "postgres" {
			// default_transaction_read_only holds outside transactions too.
			_, err := lsdb.PoolOf(s).ExecContext(t.Context(), writes[0])
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "25006" {
				t.Errorf("%s outside a transaction: got %v, want SQLSTATE 25006", writes[0], err)
			}
		}
		res, err := s.Resolve(t.Context(), 1)
		if err != nil || res.Token != tokenByUser(1) {
			t.Errorf("Resolve(1) after the writes: got %v, %v; want user 1's token", res, err)
		}
	})
}

// TestPostgresStatementTimeout holds a lock, as a migration does, on a
// table the store reads: the store fails within its statement timeout with
// a retryable error, and reads again once the lock is released.
func TestPostgresStatementTimeout(t *testing.T) {
	t.Parallel()
	dsn, _ := buildLS123PG(t)
	const timeout = 200 * time.Millisecond
	log, buf := newLogger("")
	s := openPGStore(t, dsn, lsdb.Options{StatementTimeout: timeout, Logger: log})
	if _, err := s.Resolve(t.Context(), 1); err != nil { // prepared and warm
		t.Fatal(err)
	}

	ls := pgConnect(t, dsn)
	tx, err := ls.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	pgExec(t, ls, "LOCK TABLE project IN ACCESS EXCLUSIVE MODE")

	// Far longer than the timeout: a store that waited for the lock would
	// fail with the context's error instead.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = s.Resolve(ctx, 1)
	ue := unavailable(t, err, lsdb.ReasonTimeout)
	if !ue.Temporary() {
		t.Errorf("Temporary: got false, want true")
	}
	if ctx.Err() != nil {
		t.Errorf("the context expired: the store waited for the lock")
	}
	db := strings.TrimPrefix(mustURL(t, dsn).Path, "/")
	wantContains(t, "message", err.Error(), pgAddr(t, dsn), `"`+db+`"`, "statement timeout of 200ms", "SQLSTATE 57014", "try again later")
	if n := buf.count("retry reading"); n != 0 {
		t.Errorf("retries logged: got %d, want 0 (a timeout has waited long enough)", n)
	}

	// A statement that runs too long fails the same way.
	err = lsdb.ReadInTx(ctx, s, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "SELECT pg_sleep(30)")
		return err
	})
	unavailable(t, err, lsdb.ReasonTimeout)

	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("after the lock is released: got %v, want success", err)
	}
}

func mustURL(tb testing.TB, dsn string) *url.URL {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// TestPostgresMissingDatabase opens a database that does not exist yet; the
// same store reads it once it is created.
func TestPostgresMissingDatabase(t *testing.T) {
	t.Parallel()
	admin := requirePG(t)
	name := randomName("lsdb_missing_")
	dsn := withDatabase(t, admin, name)
	s := openPGStore(t, dsn, lsdb.Options{RetryDelay: time.Millisecond})
	want := fmt.Sprintf("PostgreSQL at %s has no database %q (SQLSTATE 3D000): check the database name the backend connects to", pgAddr(t, admin), name)
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"Resolve", func() error { _, err := s.Resolve(t.Context(), 1); return err }},
		{"Task", func() error { _, _, err := s.Task(t.Context(), 1); return err }},
		{"Ping", func() error { return s.Ping(t.Context()) }},
	} {
		err := call.run()
		ue := unavailable(t, err, lsdb.ReasonMissing)
		if got := errString(err); got != want {
			t.Errorf("%s: got %q, want %q", call.name, got, want)
		}
		if ue.Temporary() {
			t.Errorf("%s: Temporary: got true, want false", call.name)
		}
	}

	// The database appears: Label Studio has been set up.
	pgExec(t, pgConnect(t, admin), "CREATE DATABASE "+name)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	if err := s.Ping(t.Context()); !errors.Is(err, lsdb.ErrUnavailable) || !strings.Contains(err.Error(), "table project is missing") {
		t.Errorf("empty database: got %v, want not a Label Studio database", err)
	}
	loadLS123(t, pgConnect(t, dsn))
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("after the schema appeared: got %v, want success", err)
	}
}

// TestPostgresUnreachable points the store at addresses where no
// PostgreSQL answers. It needs no server.
func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		addr := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
		log, buf := newLogger("")
		s := openPGStore(t, "postgres://root@"+addr+"/labelstudio?sslmode=disable", lsdb.Options{Retries: 2, RetryDelay: time.Millisecond, Logger: log})
		_, err := s.Resolve(t.Context(), 1)
		ue := unavailable(t, err, lsdb.ReasonUnreachable)
		want := `Label Studio's PostgreSQL database "labelstudio" at ` + addr + " is unreachable: connection refused through 3 attempts: is PostgreSQL running and listening on " + addr + "?"
		if got := err.Error(); got != want {
			t.Errorf("message:\n got %q\nwant %q", got, want)
		}
		if !ue.Temporary() {
			t.Errorf("Temporary: got false, want true")
		}
		if got, want := ue.Path, "postgres://root@"+addr+"/labelstudio"; got != want {
			t.Errorf("Path: got %q, want %q", got, want)
		}
		if n := buf.count("retry reading"); n != 2 {
			t.Errorf("retries logged: got %d, want 2", n)
		}
		if err := s.Ping(t.Context()); !errors.Is(err, lsdb.ErrUnavailable) {
			t.Errorf("Ping: got %v, want ErrUnavailable", err)
		}
	})
	t.Run("host not found", func(t *testing.T) {
		t.Parallel()
		s := openPGStore(t, "postgres://root@lsdb-test.invalid:5432/labelstudio?sslmode=disable",
			lsdb.Options{Retries: -1, ConnectTimeout: 2 * time.Second})
		_, err := s.Resolve(t.Context(), 1)
		unavailable(t, err, lsdb.ReasonUnreachable)
		// "cannot be resolved", or a timeout where DNS does not answer.
		wantContains(t, "message", errString(err), `database "labelstudio" at lsdb-test.invalid:5432 is unreachable`)
	})
	t.Run("no answer", func(t *testing.T) {
		t.Parallel()
		addr := fakeServer(t, func(c net.Conn) { <-t.Context().Done() })
		log, buf := newLogger("")
		s := openPGStore(t, "postgres://root@"+addr+"/labelstudio", lsdb.Options{ConnectTimeout: 100 * time.Millisecond, Logger: log})
		_, err := s.Resolve(t.Context(), 1)
		ue := unavailable(t, err, lsdb.ReasonUnreachable)
		want := `Label Studio's PostgreSQL database "labelstudio" at ` + addr + " is unreachable: no answer within the connect timeout of 100ms"
		if got := err.Error(); got != want {
			t.Errorf("message:\n got %q\nwant %q", got, want)
		}
		if !ue.Temporary() {
			t.Errorf("Temporary: got false, want true")
		}
		if n := buf.count("retry reading"); n != 0 {
			t.Errorf("retries logged: got %d, want 0 (a timeout has waited long enough)", n)
		}
	})
	t.Run("connection closed", func(t *testing.T) {
		t.Parallel()
		addr := fakeServer(t, func(c net.Conn) {})
		log, buf := newLogger("")
		s := openPGStore(t, "postgres://root@"+addr+"/labelstudio", lsdb.Options{Retries: 1, RetryDelay: time.Millisecond, Logger: log})
		_, err := s.Resolve(t.Context(), 1)
		unavailable(t, err, lsdb.ReasonUnreachable)
		wantContains(t, "message", errString(err), `database "labelstudio" at `+addr+" is unreachable: the connection was lost through 2 attempts")
		if n := buf.count("retry reading"); n != 1 {
			t.Errorf("retries logged: got %d, want 1", n)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		s := openPGStore(t, fmt.Sprintf("postgres://root@127.0.0.1:%d/labelstudio", closedPort(t)), lsdb.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Resolve(ctx, 1); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

// TestPostgresPasswordNeverShown fails connections in every way that
// involves a password and checks that it appears in no error, no Path and
// no log line.
func TestPostgresPasswordNeverShown(t *testing.T) {
	const password = "pw-S3cret-9f2c"
	const special = "p@ss:w/rd?#S3cret"
	refused := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	host, port, _ := net.SplitHostPort(refused)
	tests := []struct {
		name     string
		dsn      string
		env      map[string]string
		needsPG  bool
		reason   lsdb.Reason
		openFail bool
		secrets  []string
	}{
		{name: "URL, refused", dsn: "postgres://root:" + password + "@" + refused + "/test", reason: lsdb.ReasonUnreachable},
		{name: "URL with escapes, refused", dsn: "postgres://root:" + url.QueryEscape(special) + "@" + refused + "/test",
			reason: lsdb.ReasonUnreachable, secrets: []string{special, url.QueryEscape(special), "S3cret"}},
		{name: "URL password parameter, refused", dsn: "postgres://root@" + refused + "/test?password=" + password, reason: lsdb.ReasonUnreachable},
		{name: "key=value, refused", dsn: "host=" + host + " port=" + port + " user=root password=" + password + " dbname=test", reason: lsdb.ReasonUnreachable},
		{name: "PGPASSWORD, refused", dsn: "postgres://root@" + refused + "/test", env: map[string]string{"PGPASSWORD": password}, reason: lsdb.ReasonUnreachable},
		{name: "malformed URL", dsn: "postgres://root:" + password + "@127.0.0.1:notaport/test", openFail: true},
		{name: "malformed key=value", dsn: "host=127.0.0.1 password='" + password + " dbname=test", openFail: true},
		{name: "URL, missing database", dsn: "postgres://root:" + password + "@{server}/" + randomName("lsdb_missing_") + "?sslmode=disable", needsPG: true, reason: lsdb.ReasonMissing},
		{name: "URL, unknown role", dsn: "postgres://" + randomName("lsdb_nobody_") + ":" + password + "@{server}/test?sslmode=disable", needsPG: true, reason: lsdb.ReasonAuthentication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v) // not parallel: the environment is the process's
			}
			dsn := tt.dsn
			if tt.needsPG {
				dsn = strings.ReplaceAll(dsn, "{server}", pgAddr(t, requirePG(t)))
			}
			secrets := append([]string{password}, tt.secrets...)
			log, buf := newLogger("")
			var outputs []string
			s, err := lsdb.OpenPostgres(dsn, lsdb.Options{Retries: 1, RetryDelay: time.Millisecond, Logger: log})
			if tt.openFail {
				if err == nil {
					s.Close()
					t.Fatalf("OpenPostgres: got a store, want an error")
				}
				outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				_, rerr := s.Resolve(t.Context(), 1)
				ue := unavailable(t, rerr, tt.reason)
				outputs = append(outputs, rerr.Error(), fmt.Sprintf("%+v", rerr), fmt.Sprintf("%#v", rerr), ue.Path, errString(ue.Err))
				log.Error("resolve", "err", rerr, "cause", ue.Err)
				if tt.reason == lsdb.ReasonAuthentication {
					wantContains(t, "message", rerr.Error(), "rejected user", "check the user and password")
				}
			}
			outputs = append(outputs, buf.String())
			for _, out := range outputs {
				for _, secret := range secrets {
					if strings.Contains(out, secret) {
						t.Errorf("output holds the password %q: %s", secret, out)
					}
				}
			}
		})
	}
}

// TestPostgresNotLabelStudio opens databases without Label Studio's tables,
// or whose tables are outside the search path.
func TestPostgresNotLabelStudio(t *testing.T) {
	t.Parallel()
	t.Run("empty database", func(t *testing.T) {
		t.Parallel()
		dsn := newPGDatabase(t)
		s := openPGStore(t, dsn, lsdb.Options{})
		for range 2 { // the second call answers from the schema the first read
			_, err := s.Resolve(t.Context(), 1)
			unavailable(t, err, lsdb.ReasonNotLabelStudio)
			wantContains(t, "message", errString(err), "is not a Label Studio database: table project is missing", pgAddr(t, dsn))
		}
	})
	t.Run("tables in another schema", func(t *testing.T) {
		t.Parallel()
		dsn := newPGDatabase(t)
		conn := pgConnect(t, dsn)
		pgExec(t, conn, "CREATE SCHEMA labelstudio", "SET search_path TO labelstudio")
		loadLS123(t, conn)
		if _, err := openPGStore(t, dsn, lsdb.Options{}).Resolve(t.Context(), 1); !errors.Is(err, lsdb.ErrUnavailable) {
			t.Errorf("default search_path: got %v, want not a Label Studio database", err)
		}
		res, err := openPGStore(t, dsn+"&search_path=labelstudio", lsdb.Options{}).Resolve(t.Context(), 1)
		if err != nil || res.Token != tokenByUser(1) {
			t.Errorf("search_path=labelstudio: got %v, %v; want user 1's token", res, err)
		}
	})
	t.Run("a table shadowed on the search path", func(t *testing.T) {
		// public.project comes first and lacks created_at: the store must
		// judge the table the queries would read, not labelstudio.project.
		t.Parallel()
		dsn := newPGDatabase(t)
		conn := pgConnect(t, dsn)
		pgExec(t, conn, "CREATE SCHEMA labelstudio", "SET search_path TO labelstudio")
		loadLS123(t, conn)
		pgExec(t, conn, "CREATE TABLE public.project (id integer PRIMARY KEY, organization_id integer, created_by_id integer)")
		_, err := openPGStore(t, dsn+"&search_path=public,labelstudio", lsdb.Options{}).Resolve(t.Context(), 1)
		unavailable(t, err, lsdb.ReasonNotLabelStudio)
		wantContains(t, "message", errString(err), "column project.created_at is missing")
	})
}

// TestPostgresPermission reads as a user that may not read every table
// the store reads, as a hand-made read-only role may be.
func TestPostgresPermission(t *testing.T) {
	t.Parallel()
	admin := requirePG(t)
	role := randomName("lsdb_reader_")
	// Registered first, so it runs last, after the database is dropped.
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	pgExec(t, pgConnect(t, admin), "CREATE ROLE "+role+" LOGIN")
	dsn, conn := buildLS123PG(t)
	u := mustURL(t, dsn)
	u.User = url.User(role)
	pgExec(t, conn, "GRANT SELECT ON project, task, organization, htx_user, authtoken_token, organizations_organizationmember, django_migrations TO "+role)

	s := openPGStore(t, u.String(), lsdb.Options{})
	_, err := s.Resolve(t.Context(), 1)
	unavailable(t, err, lsdb.ReasonPermission)
	wantContains(t, "message", errString(err), `PostgreSQL user "`+role+`" may not read table jwt_auth_jwtsettings`, u.Host, "grant it SELECT")

	pgExec(t, conn, "GRANT SELECT ON jwt_auth_jwtsettings TO "+role)
	res, err := s.Resolve(t.Context(), 2)
	if err != nil {
		t.Fatalf("after GRANT: %v", err)
	}
	if res.LegacyEnabled {
		t.Errorf("after GRANT: LegacyEnabled: got true, want false (organization 2 disables legacy tokens)")
	}

	// SELECT on some columns only is not enough.
	pgExec(t, conn, "REVOKE SELECT ON htx_user FROM "+role, "GRANT SELECT (id, is_active) ON htx_user TO "+role)
	_, err = s.Resolve(t.Context(), 1)
	unavailable(t, err, lsdb.ReasonPermission)
	wantContains(t, "message", errString(err), `PostgreSQL user "`+role+`" may not read table htx_user`)
}

// TestPostgresConnectionsLost terminates the store's sessions, as a
// restart of PostgreSQL does: the next call reconnects by itself.
func TestPostgresConnectionsLost(t *testing.T) {
	t.Parallel()
	dsn, conn := buildLS123PG(t)
	s := openPGStore(t, dsn, lsdb.Options{RetryDelay: time.Millisecond})
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	var n int
	err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'sam-ml-backend'`).Scan(&n)
	if err != nil || n == 0 {
		t.Fatalf("terminate the store's sessions: got %d, %v; want at least 1", n, err)
	}
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("after the sessions were terminated: got %v, want success", err)
	}
}

// TestPostgresConcurrentResolve resolves from many goroutines on a fresh
// store and checks that the pool stayed within its bound.
func TestPostgresConcurrentResolve(t *testing.T) {
	t.Parallel()
	dsn, conn := buildLS123PG(t)
	const maxConns = 3
	s := openPGStore(t, dsn, lsdb.Options{MaxOpenConns: maxConns})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			got, err := s.Resolve(t.Context(), 4)
			switch {
			case err != nil:
				errs <- err
			case got.UserID != 7:
				errs <- fmt.Errorf("got user %d, want 7", got.UserID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'sam-ml-backend'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n > maxConns {
		t.Errorf("the store's sessions: got %d, want at most %d", n, maxConns)
	}
}

func TestOpenPostgresEmpty(t *testing.T) {
	for _, dsn := range []string{"", "  "} {
		if s, err := lsdb.OpenPostgres(dsn, lsdb.Options{}); err == nil {
			s.Close()
			t.Errorf("OpenPostgres(%q): got a store, want an error", dsn)
		}
	}
}
