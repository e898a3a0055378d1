package lsdb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

func TestResolve(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	const created = 1784280859 // 2026-07-17 09:34:19 UTC, as in reference §5
	tests := []struct {
		name    string
		project int64
		want    lsdb.Resolution
	}{
		{"organization creator", 1, lsdb.Resolution{OrganizationID: 1, UserID: 1, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: true}},
		{"legacy tokens disabled", 2, lsdb.Resolution{OrganizationID: 2, UserID: 2, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: false}},
		{"creator deleted: project creator", 3, lsdb.Resolution{OrganizationID: 3, UserID: 3, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
		{"creators deleted or inactive: earliest active member", 4, lsdb.Resolution{OrganizationID: 4, UserID: 7, UserSource: lsdb.SourceMember, LegacyEnabled: true}},
		{"no JWTSettings row after jwt_auth 0002", 12, lsdb.Resolution{OrganizationID: 6, UserID: 9, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: false}},
		{"prefers a user whose token Label Studio accepts", 7, lsdb.Resolution{OrganizationID: 7, UserID: 11, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
		{"skips a creator without token", 8, lsdb.Resolution{OrganizationID: 8, UserID: 13, UserSource: lsdb.SourceProjectCreator, LegacyEnabled: true}},
		{"no active organization: legacy allowed", 9, lsdb.Resolution{OrganizationID: 9, UserID: 14, UserSource: lsdb.SourceOrganizationCreator, LegacyEnabled: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Resolve(t.Context(), tt.project)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.ProjectID = tt.project
			want.ProjectCreatedAt = created
			want.Token = tokenByUser(want.UserID)
			if diff := cmp.Diff(*got, want); diff != "" {
				t.Errorf("Resolve(%d) (-got +want):\n%s", tt.project, diff)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	tests := []struct {
		name       string
		project    int64
		msg        string
		sentinel   error
		httpStatus int
	}{
		{"soft-deleted project", 6,
			"project 6 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
			lsdb.ErrNotFound, http.StatusNotFound},
		{"unknown project", 99,
			"project 99 not found in Label Studio's database (deleted, or the database belongs to another Label Studio instance)",
			lsdb.ErrNotFound, http.StatusNotFound},
		{"user without token", 5,
			"No auth token found for user 8 in organization 5",
			lsdb.ErrNoToken, http.StatusBadGateway},
		{"project without organization", 10,
			"project 10 has no organization in Label Studio's database",
			lsdb.ErrNoOrganization, http.StatusBadGateway},
		{"nobody active", 11,
			"no active user found for organization 10 of project 11: its creator, the project's creator and its members are all deleted or inactive",
			lsdb.ErrNoUser, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Resolve(t.Context(), tt.project)
			if err == nil {
				t.Fatalf("Resolve(%d): got %v, want an error", tt.project, res)
			}
			if got := err.Error(); got != tt.msg {
				t.Errorf("message:\n got %q\nwant %q", got, tt.msg)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v): got false, want true", err, tt.sentinel)
			}
			var hs interface{ HTTPStatus() int }
			if !errors.As(err, &hs) {
				t.Fatalf("%T has no HTTPStatus", err)
			}
			if got := hs.HTTPStatus(); got != tt.httpStatus {
				t.Errorf("HTTPStatus: got %d, want %d", got, tt.httpStatus)
			}
			if errors.Is(err, lsdb.ErrUnavailable) {
				t.Errorf("errors.Is(%v, ErrUnavailable): got true, want false", err)
			}
		})
	}
}

// TestLegacyRowMissing follows the JWTSettings row that Label Studio
// creates lazily: without it, legacy tokens are allowed only while jwt_auth
// 0002 is not applied. The store must see a change of django_migrations
// while it runs.
func TestLegacyRowMissing(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	rw := openRW(t, path)
	steps := []struct {
		name string
		sql  string
		want bool
	}{
		{"0002 applied", "", false},
		{"0002 not applied", "DELETE FROM django_migrations WHERE name = '" + jwtMigration0002 + "'", true},
		{"row created by Label Studio 1.23", "INSERT INTO jwt_auth_jwtsettings (organization_id, api_tokens_enabled, api_token_ttl_days, created_at, updated_at, legacy_api_tokens_enabled) VALUES (6, 1, 73000, '2026-07-18 00:00:00', '2026-07-18 00:00:00', 0)", false},
		{"legacy enabled in the UI", "UPDATE jwt_auth_jwtsettings SET legacy_api_tokens_enabled = 1 WHERE organization_id = 6", true},
	}
	for _, st := range steps {
		if st.sql != "" {
			execSQL(t, rw, st.sql)
		}
		res, err := s.Resolve(t.Context(), 12)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.LegacyEnabled != st.want {
			t.Errorf("%s: LegacyEnabled: got %t, want %t", st.name, res.LegacyEnabled, st.want)
		}
	}
}

// TestSchemaChange checks that a schema changed while the store runs (as
// by a Label Studio upgrade or downgrade) is read again.
func TestSchemaChange(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	rw := openRW(t, path)

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
	execSQL(t, rw, "DROP TABLE jwt_auth_jwtsettings", "ALTER TABLE project DROP COLUMN deleted_at")
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

	// A table the store needs disappears.
	execSQL(t, rw, "DROP TABLE authtoken_token")
	_, err = s.Resolve(t.Context(), 1)
	want := path + " is not a Label Studio database: table authtoken_token is missing"
	if err == nil || err.Error() != want {
		t.Errorf("after DROP: got %v, want %q", err, want)
	}
}

func TestTask(t *testing.T) {
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
	tests := []struct {
		name    string
		task    int64
		project int64
		data    string
		err     string
	}{
		{"plain", 1, 1, `{"image": "/data/upload/1/0a1b2c3d-cat.png"}`, ""},
		{"$undefined$ key kept raw", 2, 2, `{"$undefined$": "/data/upload/2/4e5f6a7b-dog.png"}`, ""},
		{"task without project", 3, 0, "", "task 3 not found in Label Studio's database"},
		{"unknown task", 42, 0, "", "task 42 not found in Label Studio's database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			project, data, err := s.Task(t.Context(), tt.task)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || !errors.Is(err, lsdb.ErrNotFound) {
					t.Fatalf("Task(%d): got %v, want ErrNotFound %q", tt.task, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if project != tt.project || string(data) != tt.data {
				t.Errorf("Task(%d): got (%d, %s), want (%d, %s)", tt.task, project, data, tt.project, tt.data)
			}
		})
	}
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
	path := buildLS123(t)
	s := openStore(t, path, lsdb.Options{})
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
