package store

import (
	"bytes"
	"context"
	"slices"
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

// Begin implements auth.FailureLog: one statement counts the attempt in
// flight under every key and returns each key's run as it was before, so
// attempts arriving together each see those ahead of them (the row lock
// orders them). In-flight counts older than auth.InFlightFor are stale (an
// attempt whose end was lost) and start again.
func (s *SignInThrottle) Begin(ctx context.Context, keys []string, now time.Time, window time.Duration) (map[string]auth.Run, error) {
	ix := s.index(keys)
	rows, err := s.db.Pool.Query(ctx, `WITH begun AS (
			INSERT INTO sign_in_throttle AS f (key, failures, last_at, in_flight, began_at)
			SELECT k, 0, $2, 1, $2 FROM unnest($1::bytea[]) AS k ORDER BY k
			ON CONFLICT (key) DO UPDATE SET in_flight = CASE WHEN f.began_at < $4 THEN 1 ELSE f.in_flight + 1 END, began_at = excluded.began_at
			RETURNING f.key, f.failures, f.last_at, f.in_flight)
		SELECT key, CASE WHEN last_at >= $3 THEN failures ELSE 0 END, last_at, in_flight - 1 FROM begun`,
		sorted(ix), now, now.Add(-window), now.Add(-auth.InFlightFor))
	if err != nil {
		return nil, dbError(err, "Sign-in failures")
	}
	defer rows.Close()
	type row struct {
		key      []byte
		failures int
		last     time.Time
		inFlight int
	}
	var found []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.failures, &r.last, &r.inFlight); err != nil {
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
			if bytes.Equal(k, r.key) {
				run := auth.Run{Failures: r.failures, InFlight: r.inFlight}
				if r.failures > 0 {
					run.Last = r.last
				}
				out[keys[i]] = run
			}
		}
	}
	return out, nil
}

// sorted is ix in byte order: every statement takes its rows' locks in
// one order, so two attempts sharing keys cannot deadlock.
func sorted(ix [][]byte) [][]byte {
	out := slices.Clone(ix)
	slices.SortFunc(out, bytes.Compare)
	return out
}

// End implements auth.FailureLog: the attempt leaves flight, and a failure
// counts under every key (a run a window old starts again) and clears the
// runs that ended.
func (s *SignInThrottle) End(ctx context.Context, keys []string, now time.Time, window time.Duration, failed bool) error {
	ix := sorted(s.index(keys))
	if !failed {
		// The rows are locked in key order, as Begin's upsert takes them
		// (a plain UPDATE takes them in the table's order, and deadlocks).
		_, err := s.db.Pool.Exec(ctx, `WITH mine AS (SELECT key FROM sign_in_throttle WHERE key = ANY($1) ORDER BY key FOR UPDATE)
			UPDATE sign_in_throttle f SET in_flight = greatest(f.in_flight - 1, 0) FROM mine WHERE f.key = mine.key`, ix)
		return dbError(err, "Sign-in failures")
	}
	_, err := s.db.Pool.Exec(ctx, `INSERT INTO sign_in_throttle AS f (key, failures, last_at, in_flight, began_at)
		SELECT k, 1, $2, 0, $2 FROM unnest($1::bytea[]) AS k ORDER BY k
		ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN f.last_at < $3 THEN 1 ELSE f.failures + 1 END,
			last_at = excluded.last_at, in_flight = greatest(f.in_flight - 1, 0)`,
		ix, now, now.Add(-window))
	if err != nil {
		return dbError(err, "Sign-in failures")
	}
	// A failure also sweeps the runs that ended; retention sweeps the rest.
	// Rows another attempt holds are skipped: nobody waits on the sweep.
	_, err = s.db.Pool.Exec(ctx, `DELETE FROM sign_in_throttle WHERE key IN (
		SELECT key FROM sign_in_throttle WHERE last_at < $1 AND began_at < $2 FOR UPDATE SKIP LOCKED)`, now.Add(-window), now.Add(-auth.InFlightFor))
	return dbError(err, "Sign-in failures")
}

// Clear implements auth.FailureLog: the key's failures go; its row (and
// the attempts in flight it counts) stays until retention clears it.
func (s *SignInThrottle) Clear(ctx context.Context, key string) error {
	_, err := s.db.Pool.Exec(ctx, `UPDATE sign_in_throttle SET failures = 0 WHERE key = $1`, s.index([]string{key})[0])
	return dbError(err, "Sign-in failures")
}
