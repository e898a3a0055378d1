package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// TokensFile is ORG_TOKENS_FILE: a JSON object mapping organization ids to
// tokens (legacy keys or personal access tokens), for organizations whose
// token cannot come from the database. Watch reloads it when it changes.
// A nil *TokensFile holds nothing.
type TokensFile struct {
	path   string
	tokens atomic.Pointer[map[int64]string]
	stamp  fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadTokensFile reads the file at path.
func LoadTokensFile(path string) (*TokensFile, error) {
	t := &TokensFile{path: path}
	m, stamp, err := readTokens(path)
	if err != nil {
		return nil, err
	}
	t.tokens.Store(&m)
	t.stamp = stamp
	return t, nil
}

// Lookup returns the token for an organization.
func (t *TokensFile) Lookup(org int64) (string, bool) {
	if t == nil {
		return "", false
	}
	tok, ok := (*t.tokens.Load())[org]
	return tok, ok
}

// Len returns the number of organizations in the file.
func (t *TokensFile) Len() int {
	if t == nil {
		return 0
	}
	return len(*t.tokens.Load())
}

// Watch checks the file every interval until ctx ends, and reloads it when
// its modification time or size changed. After a reload it calls changed.
// A file that became unreadable or invalid is reported to log and the
// tokens loaded before stay in force.
func (t *TokensFile) Watch(ctx context.Context, interval time.Duration, log *slog.Logger, changed func()) {
	if t == nil {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := os.Stat(t.path)
		if err != nil || (fileStamp{st.ModTime(), st.Size()}) == t.stamp {
			continue
		}
		m, stamp, err := readTokens(t.path)
		if err != nil {
			log.Warn("ORG_TOKENS_FILE changed but cannot be used; keeping the tokens loaded before", "err", err)
			t.stamp = stamp
			continue
		}
		t.tokens.Store(&m)
		t.stamp = stamp
		log.Info("ORG_TOKENS_FILE reloaded", "organizations", len(m))
		changed()
	}
}

func readTokens(path string) (map[int64]string, fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("read ORG_TOKENS_FILE: %w", err)
	}
	stamp := fileStamp{st.ModTime(), st.Size()}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, stamp, fmt.Errorf("read ORG_TOKENS_FILE: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(b), &raw); err != nil {
		// The JSON error can quote the file; keep only where it is.
		return nil, stamp, fmt.Errorf("read ORG_TOKENS_FILE %s: want a JSON object such as {\"3\": \"<token>\"} mapping organization ids to tokens", path)
	}
	m := make(map[int64]string, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id <= 0 {
			return nil, stamp, fmt.Errorf("read ORG_TOKENS_FILE %s: key %q is not an organization id", path, k)
		}
		if len(v) < 6 {
			return nil, stamp, fmt.Errorf("read ORG_TOKENS_FILE %s: the token of organization %d is empty or too short", path, id)
		}
		m[id] = v
	}
	return m, stamp, nil
}
