package lsdb

import (
	"context"
	"database/sql"
)

// ReadInTx runs fn in one of s's read transactions, as Resolve runs its
// queries: with the same retries and classification of errors. It lets
// tests check what a query of the store may and may not do.
func ReadInTx(ctx context.Context, s *Store, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.read(ctx, func(ctx context.Context, tx *sql.Tx, _ *generation) error { return fn(ctx, tx) })
}

// PoolOf returns s's connection pool, for tests that run statements
// outside the store's transactions.
func PoolOf(s *Store) *sql.DB { return s.db }
