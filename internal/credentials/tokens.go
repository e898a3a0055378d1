package credentials

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	sum    [sha256.Size]byte // of the contents last read
}

// LoadTokensFile reads the file at path.
func LoadTokensFile(path string) (*TokensFile, error) {
	t := &TokensFile{path: path}
	m, sum, err := readTokens(path)
	if err != nil {
		return nil, err
	}
	t.tokens.Store(&m)
	t.sum = sum
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

// Watch reads the file every interval until ctx ends (it is small), and
// reloads the tokens when its contents changed, then calls changed. A file
// that became unreadable or invalid is reported to log once, and the
// tokens loaded before stay in force.
func (t *TokensFile) Watch(ctx context.Context, interval time.Duration, log *slog.Logger, changed func()) {
	if t == nil {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var failing string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m, sum, err := readTokens(t.path)
		if err != nil {
			if msg := err.Error(); msg != failing {
				log.Warn("ORG_TOKENS_FILE cannot be used; keeping the tokens loaded before", "err", err)
				failing = msg
			}
			continue
		}
		failing = ""
		if sum == t.sum {
			continue
		}
		t.tokens.Store(&m)
		t.sum = sum
		log.Info("ORG_TOKENS_FILE reloaded", "organizations", len(m))
		changed()
	}
}

func readTokens(path string) (map[int64]string, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, sum, fmt.Errorf("read ORG_TOKENS_FILE: %w", err)
	}
	sum = sha256.Sum256(b)
	var raw map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(b), &raw); err != nil {
		// The JSON error can quote the file; keep only where it is.
		return nil, sum, fmt.Errorf("read ORG_TOKENS_FILE %s: want a JSON object such as {\"3\": \"<token>\"} mapping organization ids to tokens", path)
	}
	m := make(map[int64]string, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil || id <= 0 {
			// Never quote the key: a file written the wrong way round has
			// tokens there.
			return nil, sum, fmt.Errorf("read ORG_TOKENS_FILE %s: a key is not an organization id (keys are ids, values are tokens)", path)
		}
		if len(v) < 6 {
			return nil, sum, fmt.Errorf("read ORG_TOKENS_FILE %s: the token of organization %d is empty or too short", path, id)
		}
		m[id] = v
	}
	return m, sum, nil
}
