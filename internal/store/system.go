package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobCount is how many queued jobs of one kind are in one state.
type JobCount struct {
	Kind, State string
	N           int64
}

// FailingJob is a job whose last attempt failed: retrying, or given up.
type FailingJob struct {
	ID          int64
	Kind, State string
	Attempt     int
	MaxAttempts int
	Error       string // the last attempt's error, as the job wrote it (no personal data)
	At          time.Time
}

// JobsWaiting are the states of jobs still to run.
var JobsWaiting = []string{"available", "scheduled", "retryable", "running"}

// JobCounts counts the queue's jobs in these states, by kind and state.
func JobCounts(ctx context.Context, db *DB, states []string) ([]JobCount, error) {
	rows, err := db.Pool.Query(ctx, `SELECT kind, state::text, count(*) FROM river_job
		WHERE state = ANY($1::river_job_state[]) GROUP BY 1, 2 ORDER BY 1, 2`, states)
	if err != nil {
		return nil, dbError(err, "Queue")
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JobCount, error) {
		var c JobCount
		return c, r.Scan(&c.Kind, &c.State, &c.N)
	})
	return counts, dbError(err, "Queue")
}

// QueuedSends counts, by provider, the messages of the send jobs in queue
// that wait (available), are snoozed (for a slot of the send cap, or
// after a 429: scheduled) or run (a running batch holds messages that wait
// for the cap's slots), from the queue's own fetch index, at most limit
// jobs: a batch's runs' messages, a single send's (which names no
// provider: ""). Args of another shape count one message, never an error.
func QueuedSends(ctx context.Context, db *DB, queue string, limit int) (map[string]int64, error) {
	rows, err := db.Pool.Query(ctx, `SELECT coalesce(args->>'provider', ''),
		sum(CASE WHEN kind = 'send_batch' AND jsonb_typeof(args->'runs') = 'array' THEN
		           (SELECT coalesce(sum(CASE WHEN jsonb_typeof(r) = 'array' THEN jsonb_array_length(r) ELSE 1 END), 0) FROM jsonb_array_elements(args->'runs') r)
		         WHEN jsonb_typeof(args->'message_ids') = 'array' THEN jsonb_array_length(args->'message_ids')
		         ELSE 1 END)::bigint
		FROM (SELECT kind, args FROM river_job WHERE state IN ('available', 'running', 'scheduled') AND queue = $1 LIMIT $2) j
		GROUP BY 1`, queue, limit)
	if err != nil {
		return nil, dbError(err, "Queue")
	}
	counts := map[string]int64{}
	var provider string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&provider, &n}, func() error {
		counts[provider] = n
		return nil
	})
	return counts, dbError(err, "Queue")
}

// FailingJobs returns the most recent jobs whose last attempt failed, up
// to limit.
func FailingJobs(ctx context.Context, db *DB, limit int) ([]FailingJob, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, kind, state::text, attempt, max_attempts,
			coalesce(errors[array_length(errors, 1)]->>'error', ''), coalesce(attempted_at, created_at)
		FROM river_job WHERE state IN ('retryable', 'discarded') ORDER BY coalesce(attempted_at, created_at) DESC LIMIT $1`, limit)
	if err != nil {
		return nil, dbError(err, "Queue")
	}
	failing, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FailingJob, error) {
		var j FailingJob
		return j, r.Scan(&j.ID, &j.Kind, &j.State, &j.Attempt, &j.MaxAttempts, &j.Error, &j.At)
	})
	return failing, dbError(err, "Queue")
}

// LastInbound returns when each provider last delivered a message, for
// the providers given (zero time: never).
func LastInbound(ctx context.Context, db *DB, providers []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(providers))
	for _, p := range providers {
		var at time.Time
		err := db.Pool.QueryRow(ctx, `SELECT created_at FROM messages WHERE provider = $1 AND direction = 'in'
			ORDER BY id DESC LIMIT 1`, p).Scan(&at)
		if err != nil && err != pgx.ErrNoRows {
			return nil, dbError(err, "Message")
		}
		out[p] = at
	}
	return out, nil
}
