package lsdb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
)

func TestResolveReal2025(t *testing.T) {
	s := openStore(t, real2025, lsdb.Options{})
	got, err := s.Resolve(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := &lsdb.Resolution{
		ProjectID:        1,
		OrganizationID:   1,
		ProjectCreatedAt: time.Date(2025, 3, 23, 18, 24, 36, 605459000, time.UTC).Unix(),
		UserID:           1,
		UserSource:       lsdb.SourceOrganizationCreator,
		Token:            tokenOf(t, real2025, 1),
		LegacyEnabled:    true, // LS 1.15/1.16: no jwt_auth_jwtsettings table
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Resolve(1) (-got +want):\n%s", diff)
	}

	_, err = s.Resolve(t.Context(), 2)
	if !errors.Is(err, lsdb.ErrNotFound) {
		t.Errorf("Resolve(2): got %v, want ErrNotFound", err)
	}
}

func TestTaskReal2025(t *testing.T) {
	s := openStore(t, real2025, lsdb.Options{})
	project, data, err := s.Task(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if project != 1 {
		t.Errorf("project: got %d, want 1", project)
	}
	if got, want := string(data), `{"ocr": "/data/upload/1/ec986df7-city_main.png"}`; got != want {
		t.Errorf("data: got %s, want %s", got, want)
	}
}

// lsCreated is the created_at of the built database's projects in unix
// seconds: 2026-07-17 09:34:19 UTC, as in reference §5.
const lsCreated = 1784280859

// lsCases are the Resolve and Task cases of the Label Studio 1.23 test
// database (seedLS123), run against every store by TestLabelStudio123.
var lsCases = []struct {
	name string
	call string // "Resolve", "Task" or "ProjectOrganization"
	id   int64

	// Resolve's result; ProjectID, ProjectCreatedAt and Token are filled in.
	want lsdb.Resolution
	// Task's and ProjectOrganization's results.
	project int64
	data    string

	// A failure: its message, the sentinel it matches and its HTTP status.
	err      string
	sentinel error
	status   int
}{
	{name: "organization creator", call: "Resolve", id: 1,
		want: lsdb.Resolution{OrganizationID: 1, UserID: 1, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: true}},
	{name: "legacy tokens disabled", call: "Resolve", id: 2,
		want: lsdb.Resolution{OrganizationID: 2, UserID: 2, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: false}},
	{name: "creator deleted: project creator", call: "Resolve", id: 3,
		want: lsdb.Resolution{OrganizationID: 3, UserID: 3, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
	{name: "creators deleted or inactive: earliest active member", call: "Resolve", id: 4,
		want: lsdb.Resolution{OrganizationID: 4, UserID: 7, UserSource: lsdb.SourceMember, LegacyEnabled: true}},
	{name: "no JWTSettings row after jwt_auth 0002", call: "Resolve", id: 12,
		want: lsdb.Resolution{OrganizationID: 6, UserID: 9, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: false}},
	{name: "prefers a user whose token Label Studio accepts", call: "Resolve", id: 7,
		want: lsdb.Resolution{OrganizationID: 7, UserID: 11, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
	{name: "skips a creator without token", call: "Resolve", id: 8,
		want: lsdb.Resolution{OrganizationID: 8, UserID: 13, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
	{name: "no active organization: legacy allowed", call: "Resolve", id: 9,
		want: lsdb.Resolution{OrganizationID: 9, UserID: 14, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: true}},

	{name: "soft-deleted project", call: "Resolve", id: 6,
		err:      "project 6 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
		sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "unknown project", call: "Resolve", id: 99,
		err:      "project 99 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
		sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "project id beyond 32 bits", call: "Resolve", id: 1 << 40,
		err:      "project 1099511627776 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
		sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "user without token", call: "Resolve", id: 5,
		err: "No auth token found for user 8 in organization 5", sentinel: lsdb.ErrNoToken, status: http.StatusBadGateway},
	{name: "project without organization", call: "Resolve", id: 10,
		err: "project 10 has no organization in Label Studio's database", sentinel: lsdb.ErrNoOrganization, status: http.StatusBadGateway},
	{name: "nobody active", call: "Resolve", id: 11,
		err:      "no active user found for organization 10 of project 11: its creator, the project's creator and its members are all deleted or inactive",
		sentinel: lsdb.ErrNoUser, status: http.StatusBadGateway},

	{name: "organization of a project", call: "ProjectOrganization", id: 7, project: 7, data: "1784280859"},
	{name: "organization of a project whose users have no token", call: "ProjectOrganization", id: 11, project: 10, data: "1784280859"},
	{name: "organization of a soft-deleted project", call: "ProjectOrganization", id: 6,
		err:      "project 6 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
		sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "organization of an unknown project", call: "ProjectOrganization", id: 99,
		err:      "project 99 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
		sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "organization of a project without one", call: "ProjectOrganization", id: 10,
		err: "project 10 has no organization in Label Studio's database", sentinel: lsdb.ErrNoOrganization, status: http.StatusBadGateway},

	{name: "task", call: "Task", id: 1, project: 1, data: `{"image": "/data/upload/1/0a1b2c3d-cat.png"}`},
	{name: "task with $undefined$ key kept raw", call: "Task", id: 2, project: 2, data: `{"$undefined$": "/data/upload/2/4e5f6a7b-dog.png"}`},
	{name: "task without project", call: "Task", id: 3,
		err: "task 3 not found in Label Studio's database", sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "unknown task", call: "Task", id: 42,
		err: "task 42 not found in Label Studio's database", sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
	{name: "task id beyond 32 bits", call: "Task", id: 1 << 40,
		err: "task 1099511627776 not found in Label Studio's database", sentinel: lsdb.ErrNotFound, status: http.StatusNotFound},
}

// TestLabelStudio123 runs lsCases against every store, each on the same
// rows: subtests sqlite/<case> and postgres/<case>.
func TestLabelStudio123(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db testDB) {
		s := db.open(t, lsdb.Options{})
		for _, tt := range lsCases {
			t.Run(tt.name, func(t *testing.T) {
				var got any
				var err error
				switch tt.call {
				case "Resolve":
					var res *lsdb.Resolution
					res, err = s.Resolve(t.Context(), tt.id)
					if res != nil {
						got = *res
					}
				case "Task":
					project, data, terr := s.Task(t.Context(), tt.id)
					got, err = fmt.Sprintf("(%d, %s)", project, data), terr
				case "ProjectOrganization":
					org, created, oerr := s.ProjectOrganization(t.Context(), tt.id)
					got, err = fmt.Sprintf("(%d, %d)", org, created), oerr
				}
				if tt.err != "" {
					checkFailure(t, fmt.Sprintf("%s(%d)", tt.call, tt.id), got, err, tt.err, tt.sentinel, tt.status)
					return
				}
				if err != nil {
					t.Fatalf("%s(%d): %v", tt.call, tt.id, err)
				}
				var want any = fmt.Sprintf("(%d, %s)", tt.project, tt.data)
				if tt.call == "Resolve" {
					w := tt.want
					w.ProjectID, w.ProjectCreatedAt, w.Token = tt.id, lsCreated, tokenByUser(w.UserID)
					want = w
				}
				if diff := cmp.Diff(got, want); diff != "" {
					t.Errorf("%s(%d) (-got +want):\n%s", tt.call, tt.id, diff)
				}
			})
		}
	})
}

// checkFailure checks that call failed with message msg, an error matching
// sentinel (and not ErrUnavailable) with HTTP status status.
func checkFailure(t *testing.T, call string, got any, err error, msg string, sentinel error, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got %v, want an error", call, got)
	}
	if got := err.Error(); got != msg {
		t.Errorf("%s: message:\n got %q\nwant %q", call, got, msg)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v): got false, want true", err, sentinel)
	}
	var hs interface{ HTTPStatus() int }
	if !errors.As(err, &hs) {
		t.Fatalf("%T has no HTTPStatus", err)
	}
	if got := hs.HTTPStatus(); got != status {
		t.Errorf("HTTPStatus: got %d, want %d", got, status)
	}
	if errors.Is(err, lsdb.ErrUnavailable) {
		t.Errorf("errors.Is(%v, ErrUnavailable): got true, want false", err)
	}
}

// TestLegacyRowMissing follows the JWTSettings row that Label Studio
// creates lazily: without it, legacy tokens are allowed only while jwt_auth
// 0002 is not applied. The store must see a change of django_migrations
// while it runs.
func TestLegacyRowMissing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db testDB) {
		s := db.open(t, lsdb.Options{})
		steps := []struct {
			name string
			sql  string
			want bool
		}{
			{"0002 applied", "", false},
			{"0002 not applied", "DELETE FROM django_migrations WHERE name = '" + jwtMigration0002 + "'", true},
			{"row created by Label Studio 1.23", "INSERT INTO jwt_auth_jwtsettings (organization_id, api_tokens_enabled, api_token_ttl_days, created_at, updated_at, legacy_api_tokens_enabled) VALUES (6, TRUE, 73000, '2026-07-18 00:00:00', '2026-07-18 00:00:00', FALSE)", false},
			{"legacy enabled in the UI", "UPDATE jwt_auth_jwtsettings SET legacy_api_tokens_enabled = TRUE WHERE organization_id = 6", true},
		}
		for _, st := range steps {
			if st.sql != "" {
				db.exec(t, st.sql)
			}
			res, err := s.Resolve(t.Context(), 12)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if res.LegacyEnabled != st.want {
				t.Errorf("%s: LegacyEnabled: got %t, want %t", st.name, res.LegacyEnabled, st.want)
			}
		}
	})
}

// TestSchemaChange checks that a schema changed while the store runs (as
// by a Label Studio upgrade or downgrade) is read again.
func TestSchemaChange(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db testDB) {
		s := db.open(t, lsdb.Options{})

		res, err := s.Resolve(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if res.LegacyEnabled {
			t.Fatalf("before: LegacyEnabled: got true, want false")
		}
		if _, err := s.Resolve(t.Context(), 6); !errors.Is(err, lsdb.ErrNotFound) {
			t.Fatalf("before: Resolve(6): got %v, want ErrNotFound", err)
		}

		// Back to a pre-1.17 schema: no JWT settings, no soft delete.
		db.exec(t, "DROP TABLE jwt_auth_jwtsettings", "ALTER TABLE project DROP COLUMN deleted_at")
		res, err = s.Resolve(t.Context(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if !res.LegacyEnabled {
			t.Errorf("after: LegacyEnabled: got false, want true (no jwt_auth_jwtsettings)")
		}
		if _, err := s.Resolve(t.Context(), 6); err != nil {
			t.Errorf("after: Resolve(6): got %v, want the project (no deleted_at column)", err)
		}

		// Upgraded again: the soft delete is back (a type name both
		// databases accept).
		db.exec(t, "ALTER TABLE project ADD COLUMN deleted_at timestamp with time zone NULL",
			"UPDATE project SET deleted_at = '2026-07-18 00:00:00' WHERE id = 6")
		if _, err := s.Resolve(t.Context(), 6); !errors.Is(err, lsdb.ErrNotFound) {
			t.Errorf("after ADD COLUMN: Resolve(6): got %v, want ErrNotFound", err)
		}

		// A table the store needs disappears.
		db.exec(t, "DROP TABLE authtoken_token")
		_, err = s.Resolve(t.Context(), 1)
		want := db.notLabelStudio("table authtoken_token is missing")
		if err == nil || err.Error() != want {
			t.Errorf("after DROP: got %v, want %q", err, want)
		}
		var ue *lsdb.UnavailableError
		if !errors.As(err, &ue) || ue.Reason != lsdb.ReasonNotLabelStudio {
			t.Errorf("after DROP: got %#v, want an UnavailableError with reason %s", err, lsdb.ReasonNotLabelStudio)
		}
	})
}

func TestResolutionHidesToken(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	res, err := s.Resolve(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	log, buf := newLogger("")
	log.Info("resolved", "resolution", res, "value", *res)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", res),
		"%+v":  fmt.Sprintf("%+v", *res),
		"%#v":  fmt.Sprintf("%#v", *res),
		"%s":   fmt.Sprintf("%s", res),
		"slog": buf.String(),
	}
	for verb, out := range outputs {
		if strings.Contains(out, res.Token) {
			t.Errorf("%s output holds the token: %s", verb, out)
		}
		if !strings.Contains(out, "1") {
			t.Errorf("%s output is empty: %q", verb, out)
		}
	}
}

// TestErrorsHoldNoToken runs every error path of the built database and
// checks that no token leaks into a message.
func TestErrorsHoldNoToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, db testDB) {
		s := db.open(t, lsdb.Options{})
		for p := int64(1); p <= 13; p++ {
			_, err := s.Resolve(t.Context(), p)
			if err == nil {
				continue
			}
			for _, u := range lsUsers {
				if u.token != "" && strings.Contains(err.Error(), u.token) {
					t.Errorf("Resolve(%d): error holds user %d's token: %v", p, u.id, err)
				}
			}
		}
	})
}

func TestConcurrentResolve(t *testing.T) {
	path := copyReal2025(t)
	s := openStore(t, path, lsdb.Options{})
	want, err := s.Resolve(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh store, so that the 64 calls also race on the first schema
	// read and on opening the pool's connections.
	s = openStore(t, path, lsdb.Options{})
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			got, err := s.Resolve(t.Context(), 1)
			switch {
			case err != nil:
				errs <- err
			case *got != *want:
				errs <- fmt.Errorf("got %v, want %v", got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPing(t *testing.T) {
	s := openStore(t, real2025, lsdb.Options{})
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Errorf("Ping after Close: got nil, want an error")
	}
}

func TestResolveCanceled(t *testing.T) {
	s := openStore(t, real2025, lsdb.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Resolve(ctx, 1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// TestReplacedOrRemovedFile: pooled connections keep reading a file that was
// replaced or removed. The store notices: a replaced file is read anew, a
// removed one is reported missing at once.
func TestReplacedOrRemovedFile(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	ctx := context.Background()
	before, err := s.Resolve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(real2025)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // a restored backup
		t.Fatal(err)
	}
	after, err := s.Resolve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if after.Token == before.Token {
		t.Error("still reading the replaced file")
	}
	if err := os.WriteFile(tmp, []byte("not a database, but a file of text that is long enough to look like a header"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // a broken copy
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, 1); !errors.Is(err, lsdb.ErrUnavailable) || !strings.Contains(err.Error(), "not an SQLite database") {
		t.Errorf("file replaced by a non-database: %v, want the not-a-database message", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err = s.Resolve(ctx, 1)
	if !errors.Is(err, lsdb.ErrUnavailable) || !strings.Contains(err.Error(), "Database file not found at "+path) {
		t.Errorf("removed file: %v, want the not-found message", err)
	}
}
