package lsdb_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"modernc.org/sqlite"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
)

// The test binary doubles as a helper process when LSDB_TEST_HELPER is set:
//
//   - "crash-mid-write": open LSDB_TEST_PATH read-write, begin a write,
//     change a page, print "ready" and wait to be killed, leaving a hot
//     journal behind;
//   - "resolve": resolve project LSDB_TEST_PROJECT of LSDB_TEST_PATH and
//     print a readerResult as JSON (used to read as an unprivileged user).
const helperEnv = "LSDB_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "crash-mid-write":
		if err := crashMidWrite(os.Getenv("LSDB_TEST_PATH")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	case "resolve":
		project, _ := strconv.ParseInt(os.Getenv("LSDB_TEST_PROJECT"), 10, 64)
		res := resolveOnce(os.Getenv("LSDB_TEST_PATH"), project)
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// crashMidWrite begins a write transaction the way Label Studio does and
// modifies more pages than its page cache holds, so that SQLite syncs the
// journal and writes pages into the database file before the commit (a
// cache spill). It then waits for SIGKILL. What it leaves is a hot journal:
// a database file with uncommitted pages and the journal that undoes them.
// (Killed before a spill, the journal's header would still be zero and not
// hot.)
func crashMidWrite(path string) error {
	c, err := sqlite.NewConnector("file:" + path)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	for _, s := range []string{
		"PRAGMA cache_size = 2",
		"BEGIN IMMEDIATE",
		"UPDATE htx_user SET first_name = 'crashed'",
		"UPDATE task SET meta = '{\"crashed\": true}'",
		"UPDATE data_import_fileupload SET file = file || '.crashed'",
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return errors.New("not killed within a minute")
}

// readerResult is what a "resolve" helper reports.
type readerResult struct {
	OK     bool   `json:"ok"`
	Err    string `json:"err,omitempty"`
	Reason string `json:"reason,omitempty"`
	Status int    `json:"status,omitempty"`
}

// resolveOnce resolves project of path with a fresh store.
func resolveOnce(path string, project int64) readerResult {
	s, err := lsdb.OpenSQLite(path, lsdb.Options{BusyTimeout: 100 * time.Millisecond, Retries: 1, RetryDelay: time.Millisecond})
	if err != nil {
		return readerResult{Err: err.Error()}
	}
	defer s.Close()
	_, err = s.Resolve(context.Background(), project)
	if err == nil {
		return readerResult{OK: true}
	}
	r := readerResult{Err: err.Error()}
	var ue *lsdb.UnavailableError
	if errors.As(err, &ue) {
		r.Reason = string(ue.Reason)
		r.Status = ue.HTTPStatus()
	}
	return r
}
