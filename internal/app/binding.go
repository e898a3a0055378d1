package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/credentials"
	"github.com/sam-ml-backend/sam-ml-backend/internal/httpapi"
	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lsdb"
	"github.com/sam-ml-backend/sam-ml-backend/internal/predict"
)

// taskBinder checks requests against Label Studio's database: a caller
// who holds the backend's URL and credentials must not be able to name
// another organization's project with an image of its choosing.
type taskBinder struct {
	db  *lsdb.Store
	log *slog.Logger
}

func (b taskBinder) CheckTask(ctx context.Context, project string, taskID int64, dataKey, ref string) error {
	forbid := func(format string, args ...any) error {
		return &predict.Error{Status: http.StatusForbidden, Msg: fmt.Sprintf(format, args...)}
	}
	p, err := ls.ParseProjectRef(project)
	if err != nil {
		return &predict.Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	pid, data, err := b.db.Task(ctx, taskID)
	switch {
	case errors.Is(err, lsdb.ErrNotFound):
		return forbid("task %d is not in Label Studio's database", taskID)
	case errors.Is(err, lsdb.ErrUnavailable):
		if org, isOrg := httpapi.Organization(ctx); isOrg {
			// An organization's own request is refused rather than
			// let through unchecked.
			return &predict.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second, Err: err,
				Msg: fmt.Sprintf("cannot check task %d of organization %d: Label Studio's database cannot be read; the backend's log has the details", taskID, org)}
		}
		// Otherwise the binding applies whenever the database can say;
		// the credential step reports the outage itself.
		b.log.WarnContext(ctx, "cannot check the task against Label Studio's database", "task", taskID, "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("check task %d: %w", taskID, err)
	}
	if pid != p.ID {
		return forbid("task %d does not belong to project %d", taskID, p.ID)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return forbid("task %d has no data the backend can read", taskID)
	}
	stored, err := ls.Task{ID: taskID, Data: fields}.ImageRef(dataKey)
	if err != nil || stored != ref {
		return forbid("the image of the request is not task %d's image in Label Studio's database", taskID)
	}
	return nil
}

// tenantChecker checks, in Label Studio's database, that a request
// authenticated with an organization's own credentials names one of that
// organization's projects. It fails closed: when the database cannot say,
// the request is refused.
type tenantChecker struct {
	db *lsdb.Store
}

func (c tenantChecker) CheckProject(ctx context.Context, org int64, project string) error {
	p, err := ls.ParseProjectRef(project)
	if err != nil {
		return &predict.Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	owner, created, err := c.db.ProjectOrganization(ctx, p.ID)
	// A project that does not exist, one without an organization and one
	// of another organization get the same answer, so that the check
	// cannot be used to list projects.
	var de *lsdb.DataError
	if errors.Is(err, lsdb.ErrNotFound) || errors.As(err, &de) || err == nil && owner != org {
		return notOrgProject(strconv.FormatInt(p.ID, 10), org)
	}
	if err != nil {
		return &predict.Error{Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second, Err: err,
			Msg: fmt.Sprintf("cannot check that project %d is organization %d's: Label Studio's database cannot be read; the backend's log has the details", p.ID, org)}
	}
	if p.HasCreatedAt && p.CreatedAt != created {
		return &predict.Error{Status: http.StatusConflict,
			Msg: fmt.Sprintf("project %d in Label Studio's database was created at %d, but the request says %d", p.ID, created, p.CreatedAt)}
	}
	return nil
}

// orgBound serves a request made with an organization's own credentials
// from that organization's credential alone: never from the static
// fallback, which can read every organization's images, and only when
// the project still resolves to that organization. Other requests go
// through Source.
type orgBound struct {
	credentials.Source
	own orgSource
}

// orgSource gives a project's credential with the organization it belongs
// to, from one answer.
type orgSource interface {
	OrganizationAuthorization(ctx context.Context, project string) (org int64, header string, err error)
}

func (o orgBound) Authorization(ctx context.Context, project string) (string, error) {
	org, isOrg := httpapi.Organization(ctx)
	if !isOrg {
		return o.Source.Authorization(ctx, project)
	}
	owner, h, err := o.own.OrganizationAuthorization(ctx, project)
	if err != nil {
		return "", err
	}
	if owner != org {
		return "", notOrgProject(project, org)
	}
	return h, nil
}

// notOrgProject refuses a request of organization org that names project,
// which is not one of its own.
func notOrgProject(project string, org int64) error {
	return &predict.Error{Status: http.StatusForbidden,
		Msg: fmt.Sprintf("project %s is not one of organization %d's projects; these credentials (org-%d) work only for its own", ls.ClipText(project), org, org)}
}
