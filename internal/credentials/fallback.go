package credentials

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
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
	// StaticName is the variable the static token came from, for the log.
	StaticName string
	// Logger receives a warning at every fallback; it must be set.
	Logger *slog.Logger
	// Observe, if set, is called with OutcomeFallback and the time taken
	// whenever Static serves in Primary's place.
	Observe func(outcome string, d time.Duration)
}

// Authorization returns Primary's answer, or Static's with a warning when
// Primary fails. A request that is itself wrong (a 400, such as a malformed
// project) or was cancelled does not fall back.
func (f *Fallback) Authorization(ctx context.Context, project string) (string, error) {
	var start time.Time
	if f.Observe != nil {
		start = time.Now()
	}
	h, err := f.Primary.Authorization(ctx, project)
	if err == nil {
		return h, nil
	}
	var se interface{ HTTPStatus() int }
	if ctx.Err() != nil || errors.As(err, &se) && se.HTTPStatus() == http.StatusBadRequest {
		return "", err
	}
	f.Logger.WarnContext(ctx, "organization credentials failed; using the static "+f.StaticName+" instead", "project", project, "err", err)
	h, err = f.Static.Authorization(ctx, project)
	if f.Observe != nil {
		outcome := OutcomeFallback
		if err != nil {
			outcome = OutcomeError
		}
		f.Observe(outcome, time.Since(start))
	}
	return h, err
}

// Rejected passes the rejection to both: each drops the value only if it
// is its own.
func (f *Fallback) Rejected(project, header string) {
	f.Primary.Rejected(project, header)
	f.Static.Rejected(project, header)
}
