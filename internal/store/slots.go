package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// SendSlots is the per-provider send rate cap shared by every instance on
// the database (a generic cell rate algorithm): each send takes the
// provider's next slot, at most rate a second with bursts of up to burst,
// and waits until it.
type SendSlots struct{ db *DB }

// NewSendSlots returns the shared rate cap.
func NewSendSlots(db *DB) *SendSlots { return &SendSlots{db: db} }

// Take reserves the provider's next n send slots if the last comes within
// the given time, and returns how long to wait for the first (0: now); the
// others follow one interval (1/rate) apart. Slots further off are not
// reserved (a caller that cannot wait so long must not hold them back from
// others): reserved is false and wait says when one may be free. The
// reservation is committed without waiting for the disk: a crash may
// forget the last few, which only lets a few sends through early.
func (s *SendSlots) Take(ctx context.Context, provider string, rate float64, burst int, within time.Duration, n int) (wait time.Duration, reserved bool, err error) {
	interval := 1 / rate
	slack := float64(max(burst, 1)-1) * interval // how far behind now a slot may lie: the burst
	span := float64(max(n, 1)) * interval
	var secs float64
	// One statement, its own transaction: set_config(…, true) lasts until
	// that transaction's commit, which then does not wait for the disk.
	err = s.db.Pool.QueryRow(ctx, `INSERT INTO send_slots AS s (provider, next_at)
		SELECT $1, now() + make_interval(secs => $2) FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async
		ON CONFLICT (provider) DO UPDATE
			SET next_at = greatest(s.next_at, now() - make_interval(secs => $3)) + make_interval(secs => $2)
			WHERE greatest(s.next_at, now() - make_interval(secs => $3)) + make_interval(secs => $2 - $5) <= now() + make_interval(secs => $4)
		RETURNING extract(epoch FROM next_at - now())::float8 - $2`, provider, span, slack, within.Seconds(), interval).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) { // too far off: say when
		err = s.db.Pool.QueryRow(ctx, `SELECT extract(epoch FROM next_at - now())::float8 FROM send_slots WHERE provider = $1`, provider).Scan(&secs)
		return time.Duration(max(secs, 0) * float64(time.Second)), false, dbError(err, "Send rate")
	}
	if err != nil {
		return 0, false, dbError(err, "Send rate")
	}
	return time.Duration(max(secs, 0) * float64(time.Second)), true, nil
}
