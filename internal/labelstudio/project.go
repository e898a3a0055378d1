package labelstudio

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ProjectRef is a parsed project reference.
type ProjectRef struct {
	// ID is the project id.
	ID int64
	// CreatedAt is the unix time of the project's created_at, when the
	// reference carried one.
	CreatedAt int64
	// HasCreatedAt reports whether it did.
	HasCreatedAt bool
}

// ParseProjectRef parses "<id>.<unix seconds>" or a bare "<id>". Label
// Studio builds it as f"{project.id}.{int(project.created_at.timestamp())}".
// Only that canonical form is accepted (no sign, no leading zeros), so
// that one project has one reference with a timestamp and one without,
// and caches keyed by the reference cannot be flooded with aliases.
func ParseProjectRef(s string) (ProjectRef, error) {
	idText, tsText, hasTS := strings.Cut(s, ".")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != idText {
		return ProjectRef{}, fmt.Errorf("project %q is not \"<id>.<timestamp>\" or \"<id>\"", clip(s))
	}
	ref := ProjectRef{ID: id}
	if hasTS {
		ts, err := strconv.ParseInt(tsText, 10, 64)
		if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != tsText {
			return ProjectRef{}, fmt.Errorf("project %q has a bad timestamp after the dot", clip(s))
		}
		ref.CreatedAt, ref.HasCreatedAt = ts, true
	}
	return ref, nil
}

// ClipText shortens hostile input before it goes into a message.
func ClipText(s string) string { return clip(s) }

// clip shortens hostile input before it goes into an error message.
func clip(s string) string { return clipTo(s, 40) }

// clipTo shortens s to at most max bytes and an ellipsis. It cuts at a rune
// boundary, so that valid UTF-8 stays valid (a fuzzed "é…" once came back
// ending in half an "é").
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > max-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
