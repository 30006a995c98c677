package store

import (
	"context"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/crypt"
)

// SignInThrottle is the sign-in throttle's failure log in the database
// (auth.FailureLog), shared by every instance. Keys are stored as blind
// indexes, never as emails or addresses.
type SignInThrottle struct {
	db     *DB
	crypto Crypto
}

// NewSignInThrottle returns the shared failure log.
func NewSignInThrottle(db *DB, c Crypto) *SignInThrottle { return &SignInThrottle{db: db, crypto: c} }

var _ auth.FailureLog = (*SignInThrottle)(nil)

func (s *SignInThrottle) index(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = s.crypto.Index.Exact(crypt.DomainSignIn, k)
	}
	return out
}

// Read implements auth.FailureLog.
func (s *SignInThrottle) Read(ctx context.Context, keys []string, now time.Time, window time.Duration) (map[string]auth.Run, error) {
	ix := s.index(keys)
	rows, err := s.db.Pool.Query(ctx, `SELECT key, failures, last_at FROM sign_in_throttle WHERE key = ANY($1) AND last_at >= $2`, ix, now.Add(-window))
	if err != nil {
		return nil, dbError(err, "Sign-in failures")
	}
	defer rows.Close()
	type row struct {
		key      []byte
		failures int
		last     time.Time
	}
	var found []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.failures, &r.last); err != nil {
			return nil, dbError(err, "Sign-in failures")
		}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(err, "Sign-in failures")
	}
	out := map[string]auth.Run{}
	for _, r := range found {
		for i, k := range ix {
			if string(k) == string(r.key) {
				out[keys[i]] = auth.Run{Failures: r.failures, Last: r.last}
			}
		}
	}
	return out, nil
}

// Add implements auth.FailureLog: one statement counts the failure under
// every key (a run a window old starts again), another clears the runs
// that ended.
func (s *SignInThrottle) Add(ctx context.Context, keys []string, now time.Time, window time.Duration) error {
	cut := now.Add(-window)
	if _, err := s.db.Pool.Exec(ctx, `INSERT INTO sign_in_throttle AS f (key, failures, last_at) SELECT k, 1, $2 FROM unnest($1::bytea[]) AS k
		ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN f.last_at < $3 THEN 1 ELSE f.failures + 1 END, last_at = excluded.last_at`,
		s.index(keys), now, cut); err != nil {
		return dbError(err, "Sign-in failures")
	}
	_, err := s.db.Pool.Exec(ctx, `DELETE FROM sign_in_throttle WHERE last_at < $1`, cut)
	return dbError(err, "Sign-in failures")
}

// Clear implements auth.FailureLog.
func (s *SignInThrottle) Clear(ctx context.Context, key string) error {
	_, err := s.db.Pool.Exec(ctx, `DELETE FROM sign_in_throttle WHERE key = $1`, s.index([]string{key})[0])
	return dbError(err, "Sign-in failures")
}
