package lsdb

import (
	"errors"
	"fmt"
	"time"
)

// timeLayouts are the forms a datetime takes in Label Studio's databases,
// after a 'T' separator is turned into a space. Django's SQLite backend
// writes the first (UTC, no offset, the fraction omitted when it is zero);
// the others cover offsets as other writers and PostgreSQL's text output
// spell them. Each accepts an optional fraction of up to nine digits.
var timeLayouts = [...]string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-0700",
	"2006-01-02 15:04:05.999999999-07",
}

// parseTime parses a datetime stored as text by Label Studio:
// "2026-07-17 09:34:19.135947" or "2026-07-17 09:34:19", in UTC. It also
// accepts a 'T' between date and time and a trailing "Z" or numeric offset.
// A value without an offset is UTC; the result is always in UTC.
func parseTime(s string) (time.Time, error) {
	if len(s) > 10 && s[10] == 'T' {
		s = s[:10] + " " + s[11:]
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("parse datetime %q: want YYYY-MM-DD HH:MM:SS[.ffffff][offset]", truncate(s, 40))
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// dbTime scans a datetime column: a time.Time from drivers that convert
// (modernc.org/sqlite does for columns declared datetime, PostgreSQL's
// drivers for timestamptz), or text that parseTime reads.
type dbTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (d *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		*d = dbTime{Time: v, Valid: true}
		return nil
	case string:
		t, err := parseTime(v)
		*d = dbTime{Time: t, Valid: err == nil}
		return err
	case []byte:
		t, err := parseTime(string(v))
		*d = dbTime{Time: t, Valid: err == nil}
		return err
	}
	return errors.New("scan datetime: unsupported type " + fmt.Sprintf("%T", v))
}
