package lsdb_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
)

// nobody is the unprivileged user that reads the database when the tests
// run as root, whose permission bypass (CAP_DAC_OVERRIDE) would otherwise
// hide every permission problem.
const nobody = 65534

// openDir returns a new directory that an unprivileged user can traverse
// (t.TempDir's parents are private). It is removed at the end of the test.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lsdb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			os.Chmod(p, 0o755) // so that a non-root run can remove it
			return nil
		})
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// resolveUnprivileged resolves project 1 of path as a process without
// root's permission bypass: in this process when the tests do not run as
// root, else in a copy of the test binary run as user nobody. It skips the
// test when the process may not switch users.
func resolveUnprivileged(t *testing.T, path string) readerResult {
	t.Helper()
	if os.Geteuid() != 0 {
		return resolveOnce(path, 1)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(openDir(t), "lsdb.test")
	copyFile(t, self, bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = []string{helperEnv + "=resolve", "LSDB_TEST_PATH=" + path, "LSDB_TEST_PROJECT=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot run a reader as uid %d to escape root's permission bypass: %v", nobody, err)
	}
	if err != nil {
		t.Fatalf("reader as uid %d: %v\n%s", nobody, err, stderr.String())
	}
	var r readerResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("reader output %q: %v", out, err)
	}
	return r
}

// makeWAL converts the database at path to WAL mode and closes it, so that
// SQLite removes the -wal and -shm files.
func makeWAL(t *testing.T, path string) {
	t.Helper()
	db := openRW(t, path)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("PRAGMA journal_mode = WAL: got %q, %v; want wal", mode, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after close: got %v, want it gone", suffix, err)
		}
	}
}

func TestPermissionDenied(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, path string)
	}{
		{"file mode 000", func(t *testing.T, dir, path string) {
			if err := os.Chmod(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory mode 000", func(t *testing.T, dir, path string) {
			if err := os.Chmod(dir, 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(openDir(t), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "label_studio.sqlite3")
			copyFile(t, real2025, path)
			tt.setup(t, dir, path)
			got := resolveUnprivileged(t, path)
			want := readerResult{Err: "Permission denied: " + path, Reason: string(lsdb.ReasonPermission), Status: http.StatusServiceUnavailable}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestWAL(t *testing.T) {
	t.Run("no -shm, directory not writable", func(t *testing.T) {
		dir := filepath.Join(openDir(t), "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "label_studio.sqlite3")
		copyFile(t, real2025, path)
		makeWAL(t, path)
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		got := resolveUnprivileged(t, path)
		if got.OK || got.Reason != string(lsdb.ReasonWAL) || got.Status != http.StatusServiceUnavailable {
			t.Fatalf("got %+v, want reason %s", got, lsdb.ReasonWAL)
		}
		for _, want := range []string{"Label Studio's database " + path + " is in WAL mode", "SQLITE_READONLY_DIRECTORY", "mount the directory read-write", "PostgreSQL"} {
			if !strings.Contains(got.Err, want) {
				t.Errorf("message %q lacks %q", got.Err, want)
			}
		}
	})

	t.Run("-shm present, directory not writable", func(t *testing.T) {
		// While Label Studio has the database open, -wal and -shm exist
		// and a read-only reader can use them.
		dir := filepath.Join(openDir(t), "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "label_studio.sqlite3")
		copyFile(t, real2025, path)
		makeWAL(t, path)
		ls := openRW(t, path)
		execSQL(t, ls, "UPDATE htx_user SET first_name = 'wal'")
		if _, err := os.Stat(path + "-shm"); err != nil {
			t.Fatalf("-shm while Label Studio runs: %v", err)
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		if got := resolveUnprivileged(t, path); !got.OK {
			t.Errorf("got %+v, want success", got)
		}
	})

	t.Run("no -shm, directory writable", func(t *testing.T) {
		path := copyReal2025(t)
		makeWAL(t, path)
		s := openStore(t, path, lsdb.Options{})
		if _, err := s.Resolve(t.Context(), 1); err != nil {
			t.Errorf("got %v, want success (SQLite creates -shm)", err)
		}
	})
}

func TestLocked(t *testing.T) {
	// lock makes a second connection, like Label Studio's, take the
	// EXCLUSIVE lock, and returns the function that releases it.
	lock := func(t *testing.T, path string) (release func()) {
		t.Helper()
		ls := openRW(t, path)
		conn, err := ls.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			if _, err := conn.ExecContext(t.Context(), "COMMIT"); err != nil {
				t.Error(err)
			}
			conn.Close()
		}
	}

	t.Run("busy timeout waits for the writer", func(t *testing.T) {
		path := copyReal2025(t)
		s := openStore(t, path, lsdb.Options{})
		release := lock(t, path)
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(300 * time.Millisecond)
			release()
		}()
		if _, err := s.Resolve(t.Context(), 1); err != nil {
			t.Errorf("got %v, want success once the writer commits", err)
		}
		<-done
	})

	t.Run("retried after the busy timeout", func(t *testing.T) {
		path := copyReal2025(t)
		log, buf := newLogger("retry reading")
		s := openStore(t, path, lsdb.Options{BusyTimeout: time.Millisecond, Retries: 10, RetryDelay: 10 * time.Millisecond, Logger: log})
		release := lock(t, path)
		done := make(chan struct{})
		go func() {
			defer close(done)
			<-buf.seen // the first attempt failed with SQLITE_BUSY
			release()
		}()
		if _, err := s.Resolve(t.Context(), 1); err != nil {
			t.Errorf("got %v, want success after a retry", err)
		}
		<-done
		if n := buf.count("retry reading"); n < 1 {
			t.Errorf("retries logged: got %d, want at least 1", n)
		}
	})

	t.Run("gives up while still locked", func(t *testing.T) {
		path := copyReal2025(t)
		log, buf := newLogger("")
		s := openStore(t, path, lsdb.Options{BusyTimeout: time.Millisecond, Retries: 2, RetryDelay: time.Millisecond, Logger: log})
		release := lock(t, path)
		defer release()
		_, err := s.Resolve(t.Context(), 1)
		var ue *lsdb.UnavailableError
		if !errors.As(err, &ue) || ue.Reason != lsdb.ReasonLocked || !ue.Temporary() {
			t.Fatalf("got %v, want a temporary UnavailableError with reason %s", err, lsdb.ReasonLocked)
		}
		want := "Label Studio's database " + path + " stayed locked by a writer (SQLITE_BUSY) through 3 attempts with a 1ms busy timeout"
		if !strings.HasPrefix(err.Error(), want) {
			t.Errorf("message:\n got %q\nwant prefix %q", err, want)
		}
		if n := buf.count("retry reading"); n != 2 {
			t.Errorf("retries logged: got %d, want 2", n)
		}
	})
}

func TestHotJournal(t *testing.T) {
	path := copyReal2025(t)

	// A writer dies in the middle of a transaction.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=crash-mid-write", "LSDB_TEST_PATH="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("writer: got %q, %v; want ready\n%s", line, err, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if fi, err := os.Stat(path + "-journal"); err != nil || fi.Size() == 0 {
		t.Fatalf("-journal after the crash: %v, want a non-empty file", err)
	}

	log, buf := newLogger("")
	s := openStore(t, path, lsdb.Options{Retries: 2, RetryDelay: time.Millisecond, Logger: log})
	_, err = s.Resolve(t.Context(), 1)
	var ue *lsdb.UnavailableError
	if !errors.As(err, &ue) || ue.Reason != lsdb.ReasonHotJournal || !ue.Temporary() || ue.HTTPStatus() != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a temporary UnavailableError with reason %s", err, lsdb.ReasonHotJournal)
	}
	want := "Label Studio's database " + path + " has a hot journal (" + path + "-journal) left by an interrupted write"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message:\n got %q\nwant prefix %q", err, want)
	}
	if n := buf.count("retry reading"); n != 2 {
		t.Errorf("retries logged: got %d, want 2", n)
	}

	// Label Studio opens the database again and rolls the journal back.
	ls := openRW(t, path)
	var name string
	if err := ls.QueryRow("SELECT first_name FROM htx_user WHERE id = 1").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if name == "crashed" {
		t.Fatalf("first_name: got %q, want the write rolled back", name)
	}
	ls.Close()
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("after rollback: got %v, want success", err)
	}
}

func TestMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "label_studio.sqlite3")
	s := openStore(t, path, lsdb.Options{})
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"Resolve", func() error { _, err := s.Resolve(t.Context(), 1); return err }},
		{"Task", func() error { _, _, err := s.Task(t.Context(), 1); return err }},
		{"Ping", func() error { return s.Ping(t.Context()) }},
	} {
		err := call.run()
		if got, want := errString(err), "Database file not found at "+path; got != want {
			t.Errorf("%s: got %q, want %q", call.name, got, want)
		}
		var ue *lsdb.UnavailableError
		if !errors.As(err, &ue) || ue.Reason != lsdb.ReasonMissing || ue.Temporary() || !errors.Is(err, lsdb.ErrUnavailable) {
			t.Errorf("%s: got %#v, want an UnavailableError with reason %s", call.name, err, lsdb.ReasonMissing)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the store created %s: %v", path, err)
	}

	// The database appears: the same store reads it.
	copyFile(t, real2025, path)
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("after the file appeared: got %v, want success", err)
	}
}

func TestNotLabelStudio(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, path string)
		msg    string
		reason lsdb.Reason
	}{
		{"not an SQLite file", func(t *testing.T, path string) {
			b := []byte(strings.Repeat("this is a text file, not a database\n", 200))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "{path} is not an SQLite database (SQLITE_NOTADB): point the backend at Label Studio's label_studio.sqlite3", lsdb.ReasonNotDatabase},
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "{path} is not a Label Studio database: table project is missing", lsdb.ReasonNotLabelStudio},
		{"SQLite without Label Studio's tables", func(t *testing.T, path string) {
			db := openRW(t, path)
			execSQL(t, db, "CREATE TABLE notes (id integer PRIMARY KEY, body text)")
			db.Close()
		}, "{path} is not a Label Studio database: table project is missing", lsdb.ReasonNotLabelStudio},
		{"project table without created_at", func(t *testing.T, path string) {
			db := openRW(t, path)
			execSQL(t, db, "CREATE TABLE project (id integer PRIMARY KEY, organization_id integer, created_by_id integer)")
			db.Close()
		}, "{path} is not a Label Studio database: column project.created_at is missing", lsdb.ReasonNotLabelStudio},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "{path} is a directory, not Label Studio's database file", lsdb.ReasonNotDatabase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "label_studio.sqlite3")
			tt.setup(t, path)
			s := openStore(t, path, lsdb.Options{})
			want := strings.ReplaceAll(tt.msg, "{path}", path)
			// Every call says the same; the later ones answer from the
			// schema read by the first.
			for _, call := range []struct {
				name string
				run  func() error
			}{
				{"Resolve", func() error { _, err := s.Resolve(t.Context(), 1); return err }},
				{"Ping", func() error { return s.Ping(t.Context()) }},
				{"Task", func() error { _, _, err := s.Task(t.Context(), 1); return err }},
			} {
				err := call.run()
				if got := errString(err); got != want {
					t.Errorf("%s: got %q, want %q", call.name, got, want)
				}
				var ue *lsdb.UnavailableError
				if !errors.As(err, &ue) || ue.Reason != tt.reason || ue.HTTPStatus() != http.StatusServiceUnavailable {
					t.Errorf("%s: got %#v, want an UnavailableError with reason %s", call.name, err, tt.reason)
				}
			}
		})
	}
}

// TestPathNeedsEscaping opens a database whose path holds the characters
// that a file: URI gives a meaning.
func TestPathNeedsEscaping(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a ?b#c%20d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "label_studio.sqlite3")
	copyFile(t, real2025, path)
	s := openStore(t, path, lsdb.Options{})
	if _, err := s.Resolve(t.Context(), 1); err != nil {
		t.Errorf("got %v, want success", err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil || len(entries) != 1 {
		t.Errorf("the store created files beside %s: %v, %v", dir, entries, err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
