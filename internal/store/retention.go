package store

import (
	"context"
	"time"
)

// RetentionStore clears personal data past the retention period. What it
// clears, by table (everything personal Parley keeps; see the migrations):
//
//   - messages: body_enc, profile_name_enc, template_enc and their message_words, for
//     messages older than the cut-off; the rows stay, as dated records of
//     who was written to and how it went;
//   - media (ref_enc, data_enc, text_enc): the attachments of those
//     messages, deleted;
//   - conversations: variables_enc and pending_enc of conversations ended
//     before the cut-off (an open one needs its variables to go on);
//   - contacts: name_enc and its contact_words, of contacts silent since
//     the cut-off (no message since, no change since); the address stays,
//     as it is the contact (only an erasure removes it);
//   - staff_sessions (the provider's tokens): sessions revoked, or last
//     used before the cut-off, or older than a session may live, unless
//     a sign-out at Supabase is still pending for it (pipeline's
//     supabase_sign_out job reads its tokens from the row: deleting it
//     would lose the sign-out);
//   - river_job: events (with personal events on, the number and words)
//     queued before the cut-off, unless one is being delivered.
//
// The audit log keeps no personal data and is append-only; ai_usage holds
// ids and counts.
type RetentionStore struct {
	db *DB
}

// NewRetentionStore returns the retention store.
func NewRetentionStore(db *DB) *RetentionStore { return &RetentionStore{db: db} }

// Cleared counts what a retention pass cleared.
type Cleared struct {
	Messages, Attachments, Conversations, Names, Sessions, Events int64
}

func (c *Cleared) add(o Cleared) {
	c.Messages += o.Messages
	c.Attachments += o.Attachments
	c.Conversations += o.Conversations
	c.Names += o.Names
	c.Sessions += o.Sessions
	c.Events += o.Events
}

// Cut is what a retention pass clears: data older than Before, and
// sessions older than SessionMaxAge (0: only by Before).
type Cut struct {
	Before        time.Time
	SessionMaxAge time.Duration
}

// retentionSteps are the statements of one batch, one per kind of data:
// each clears at most $2 rows older than $1 with ids above $3 (where the
// kind's last batch stopped), and returns how many and the highest id it
// cleared. Rows another transaction holds are skipped (the next day's
// pass takes them), so retention never waits on the pipeline.
var retentionSteps = []struct {
	sql      string
	count    func(*Cleared) *int64
	sessions bool // $4 is the sessions' own cut-off
}{
	{`WITH old AS (
			SELECT id FROM messages WHERE created_at < $1 AND (body_enc IS NOT NULL OR profile_name_enc IS NOT NULL OR template_enc IS NOT NULL) AND id > $3
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
		words AS (DELETE FROM message_words WHERE message_id IN (SELECT id FROM old)),
		cleared AS (UPDATE messages SET body_enc = NULL, profile_name_enc = NULL, template_enc = NULL WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM cleared`, func(c *Cleared) *int64 { return &c.Messages }, false},
	{`WITH old AS (
			SELECT d.id FROM media d JOIN messages m ON m.id = d.message_id WHERE m.created_at < $1 AND d.id > $3
			ORDER BY d.id LIMIT $2 FOR UPDATE OF d SKIP LOCKED),
		gone AS (DELETE FROM media WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM gone`, func(c *Cleared) *int64 { return &c.Attachments }, false},
	{`WITH old AS (
			SELECT id FROM conversations WHERE status IN ('ended', 'error') AND coalesce(ended_at, updated_at) < $1
			AND (variables_enc IS NOT NULL OR pending_enc IS NOT NULL) AND id > $3
			ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED),
		cleared AS (UPDATE conversations SET variables_enc = NULL, pending_enc = NULL WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM cleared`, func(c *Cleared) *int64 { return &c.Conversations }, false},
	{`WITH old AS (
			SELECT id FROM contacts c WHERE name_enc IS NOT NULL AND updated_at < $1 AND id > $3
			AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id AND m.created_at >= $1)
			ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED),
		words AS (DELETE FROM contact_words WHERE contact_id IN (SELECT id FROM old)),
		cleared AS (UPDATE contacts SET name_enc = NULL WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM cleared`, func(c *Cleared) *int64 { return &c.Names }, false},
	{`WITH old AS (
			SELECT s.id FROM staff_sessions s WHERE (s.revoked_at IS NOT NULL OR s.last_seen_at < $1 OR s.created_at < $4) AND s.id > $3
			AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'supabase_sign_out' AND (j.args->>'session_id')::bigint = s.id
				AND j.state NOT IN ('completed', 'cancelled', 'discarded'))
			ORDER BY s.id LIMIT $2 FOR UPDATE OF s SKIP LOCKED),
		gone AS (DELETE FROM staff_sessions WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM gone`, func(c *Cleared) *int64 { return &c.Sessions }, true},
	{`WITH old AS (
			SELECT id FROM river_job WHERE kind = 'event' AND created_at < $1 AND state <> 'running' AND id > $3
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM river_job WHERE id IN (SELECT id FROM old) RETURNING id)
		SELECT count(*), coalesce(max(id), $3) FROM gone`, func(c *Cleared) *int64 { return &c.Events }, false},
}

// Pass is one retention run, a batch at a time. Each kind's next batch
// starts after the last row its previous one cleared, so no batch passes
// again over rows already cleared (they stay, emptied), and a kind with
// nothing left is not asked again.
type Pass struct {
	db    *DB
	cut   Cut
	batch int
	after []int64 // by step: the highest id cleared so far
	done  []bool  // by step: nothing left
	// sessionsBefore is the creation time before which a session is past
	// its longest life (the retention's cut when no longest life is set);
	// a session unused since the retention's cut goes as well.
	sessionsBefore time.Time
}

// Pass starts a retention run over everything past cut, batch rows of a
// kind per statement.
func (s *RetentionStore) Pass(cut Cut, batch int) *Pass {
	p := &Pass{db: s.db, cut: cut, batch: batch, after: make([]int64, len(retentionSteps)), done: make([]bool, len(retentionSteps)),
		sessionsBefore: cut.Before}
	if cut.SessionMaxAge > 0 {
		p.sessionsBefore = time.Now().Add(-cut.SessionMaxAge)
	}
	return p
}

// Batch clears the next batch of each kind left, each kind in a statement
// of its own (committed on its own, bounded by ctx), and says whether that
// was all. A run cut short keeps what it cleared.
func (p *Pass) Batch(ctx context.Context) (n Cleared, done bool, err error) {
	done = true
	for i, step := range retentionSteps {
		if p.done[i] {
			continue
		}
		args := []any{p.cut.Before, p.batch, p.after[i]}
		if step.sessions {
			args = append(args, p.sessionsBefore)
		}
		count := step.count(&n)
		if err := p.db.Pool.QueryRow(ctx, step.sql, args...).Scan(count, &p.after[i]); err != nil {
			return n, false, dbError(err, "Retention")
		}
		p.done[i] = *count < int64(p.batch)
		done = done && p.done[i]
	}
	return n, done, nil
}

// Purge clears everything past the cut, batch rows of a kind at a time,
// and counts it; on an error (ctx's deadline included) it returns what it
// had cleared with it.
func (s *RetentionStore) Purge(ctx context.Context, cut Cut, batch int) (Cleared, error) {
	var total Cleared
	// Failed sign-ins (their addresses) too; see purgeSignIns.
	if err := s.purgeSignIns(ctx, cut.Before, batch); err != nil {
		return total, err
	}
	p := s.Pass(cut, batch)
	for {
		n, done, err := p.Batch(ctx)
		total.add(n)
		if err != nil || done {
			return total, err
		}
	}
}
