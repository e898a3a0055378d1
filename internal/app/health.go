package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// pinger is what dbCheck watches: Label Studio's database.
type pinger interface {
	Ping(ctx context.Context) error
}

// dbCheck pings Label Studio's database in the background, so that /health
// can report it without doing any I/O itself.
type dbCheck struct {
	db     pinger
	log    *slog.Logger
	status atomic.Pointer[dbStatus]
}

type dbStatus struct {
	ok      bool
	checked time.Time
	lastOK  time.Time
	err     string
}

// check pings once, records the result and logs a change of state.
func (c *dbCheck) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.db.Ping(ctx)
	now := time.Now()
	prev := c.status.Load()
	next := &dbStatus{ok: err == nil, checked: now}
	if prev != nil {
		next.lastOK = prev.lastOK
	}
	if err == nil {
		next.lastOK = now
		if prev != nil && !prev.ok {
			c.log.Info("Label Studio's database is readable again")
		}
	} else {
		next.err = err.Error()
		if prev == nil || prev.ok {
			c.log.Warn("Label Studio's database cannot be read; cached credentials keep serving for ORG_CACHE_STALE", "err", err)
		}
	}
	c.status.Store(next)
}

// run checks every interval until ctx ends.
func (c *dbCheck) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.check(ctx)
		}
	}
}

// checks returns the latest result for /health.
func (c *dbCheck) checks() map[string]any {
	st := c.status.Load()
	if st == nil {
		return map[string]any{"database": map[string]any{"status": "unknown"}}
	}
	db := map[string]any{
		"status":              "up",
		"checked_seconds_ago": int(time.Since(st.checked).Seconds()),
	}
	if !st.ok {
		db["status"] = "down"
		db["error"] = st.err
	}
	if !st.lastOK.IsZero() {
		db["last_ok_seconds_ago"] = int(time.Since(st.lastOK).Seconds())
	}
	return map[string]any{"database": db}
}
