package store

import (
	"context"
	"time"
)

// throttleDead is the age past which a row of sign_in_throttle counts for
// nothing: the throttle reads runs of 15 minutes and attempts in flight
// for a minute. Failures sweep such rows too, but only when one arrives.
const throttleDead = time.Hour

// purgeSignIns deletes, batch rows at a time, the throttle's dead rows
// and the failed sign-ins (with the address each keeps, which is
// personal) older than the retention's cut or than SignInKeep, whichever
// is sooner: failures alone sweep them only when a new one arrives.
func (s *RetentionStore) purgeSignIns(ctx context.Context, before time.Time, batch int) error {
	now := time.Now()
	if keep := now.Add(-SignInKeep); keep.After(before) {
		before = keep
	}
	for _, step := range []struct {
		sql string
		cut time.Time
	}{
		{`DELETE FROM sign_in_throttle WHERE key IN (
			SELECT key FROM sign_in_throttle WHERE last_at < $1 AND began_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now.Add(-throttleDead)},
		{`DELETE FROM sign_in_failures WHERE (window_start, email_fp, via) IN (
			SELECT window_start, email_fp, via FROM sign_in_failures WHERE window_start < $1 ORDER BY window_start LIMIT $2)`, before},
	} {
		for {
			tag, err := s.db.Pool.Exec(ctx, step.sql, step.cut, batch)
			if err != nil {
				return dbError(err, "Retention")
			}
			if tag.RowsAffected() < int64(batch) {
				break
			}
		}
	}
	return nil
}
