package credentials

import (
	"context"
	"log/slog"
)

// Source supplies and takes back Authorization values; *Resolver and
// lsauth's static credential both are one.
type Source interface {
	Authorization(ctx context.Context, project string) (string, error)
	Rejected(project, header string)
}

// Fallback uses Primary and, when it fails, Static: the way to migrate from
// a static token to per-organization credentials without an outage.
type Fallback struct {
	Primary, Static Source
	Logger          *slog.Logger
}

// Authorization returns Primary's answer, or Static's with a warning when
// Primary fails.
func (f *Fallback) Authorization(ctx context.Context, project string) (string, error) {
	h, err := f.Primary.Authorization(ctx, project)
	if err == nil {
		return h, nil
	}
	f.Logger.Warn("organization credentials failed; using the static LABEL_STUDIO_API_KEY instead", "project", project, "err", err)
	return f.Static.Authorization(ctx, project)
}

// Rejected passes the rejection to both: each drops the value only if it
// is its own.
func (f *Fallback) Rejected(project, header string) {
	f.Primary.Rejected(project, header)
	f.Static.Rejected(project, header)
}
