package lsdb

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// generation is the state built from one reading of the schema: the
// prepared statements for it, or the error saying the database is not
// Label Studio's. A read uses the generation only after checking, inside
// its transaction, that the schema version is still the one it was built
// for, and that the pool has opened no connection since (a new connection
// may see a different file under the same path).
//
// Statements stay open while reads use them: a replaced generation is
// retired, and closed when its last reader releases it.
type generation struct {
	version int64        // the dialect's schema version
	schema  schema       // what introspection found
	opened  atomic.Int64 // the pool's connection count when last checked
	err     error        // non-nil: not a Label Studio database

	versionStmt               *sql.Stmt // owned by the Store
	project, candidates, task *sql.Stmt // owned by the generation

	mu      sync.Mutex
	refs    int
	retired bool
}

// prepare prepares the statements of q.
func (g *generation) prepare(ctx context.Context, db *sql.DB, q queries) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&g.project, q.project},
		{&g.candidates, q.candidates},
		{&g.task, q.task},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			g.closeStmts()
			return err
		}
		*p.dst = st
	}
	return nil
}

// acquire registers a reader. It reports false when g is retired.
func (g *generation) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return false
	}
	g.refs++
	return true
}

// release unregisters a reader, closing a retired g's statements when it
// was the last.
func (g *generation) release() {
	g.mu.Lock()
	g.refs--
	last := g.retired && g.refs == 0
	g.mu.Unlock()
	if last {
		g.closeStmts()
	}
}

// retire marks g replaced; its statements close once no reader holds it.
func (g *generation) retire() {
	g.mu.Lock()
	g.retired = true
	last := g.refs == 0
	g.mu.Unlock()
	if last {
		g.closeStmts()
	}
}

// closeStmts closes the statements g owns.
func (g *generation) closeStmts() {
	for _, st := range []*sql.Stmt{g.project, g.candidates, g.task} {
		if st != nil {
			st.Close()
		}
	}
}

// sameState reports whether g describes the schema s with error err, so
// that a refresh can keep g.
func (g *generation) sameState(version int64, s schema, err error) bool {
	if g.version != version || g.schema != s {
		return false
	}
	if g.err == nil || err == nil {
		return g.err == nil && err == nil
	}
	return g.err.Error() == err.Error()
}
