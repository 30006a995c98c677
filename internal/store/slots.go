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

// Take reserves the provider's next send slot if it comes within the
// given time, and returns how long to wait for it (0: now). A slot further
// off is not reserved (a caller that cannot wait so long must not hold one
// back from others): reserved is false and wait says when one may be free.
func (s *SendSlots) Take(ctx context.Context, provider string, rate float64, burst int, within time.Duration) (wait time.Duration, reserved bool, err error) {
	interval := 1 / rate
	slack := float64(max(burst, 1)-1) * interval // how far behind now a slot may lie: the burst
	var secs float64
	err = s.db.Pool.QueryRow(ctx, `INSERT INTO send_slots AS s (provider, next_at) VALUES ($1, now() + make_interval(secs => $2))
		ON CONFLICT (provider) DO UPDATE
			SET next_at = greatest(s.next_at, now() - make_interval(secs => $3)) + make_interval(secs => $2)
			WHERE greatest(s.next_at, now() - make_interval(secs => $3)) <= now() + make_interval(secs => $4)
		RETURNING extract(epoch FROM next_at - now())::float8 - $2`, provider, interval, slack, within.Seconds()).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) { // too far off: say when
		err = s.db.Pool.QueryRow(ctx, `SELECT extract(epoch FROM next_at - now())::float8 FROM send_slots WHERE provider = $1`, provider).Scan(&secs)
		return time.Duration(max(secs, 0) * float64(time.Second)), false, dbError(err, "Send rate")
	}
	if err != nil {
		return 0, false, dbError(err, "Send rate")
	}
	return time.Duration(max(secs, 0) * float64(time.Second)), true, nil
}
