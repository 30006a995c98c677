package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/crypt"
)

// Column names one column that holds ciphertext.
type Column struct {
	Table string
	Name  string
}

// EncryptedColumns lists every column of the schema that holds ciphertext;
// a test checks it against the schema, so a new one cannot be forgotten by
// key rotation.
var EncryptedColumns = []Column{
	{"contacts", "address_enc"},
	{"contacts", "name_enc"},
	{"contact_notes", "body_enc"},
	{"conversations", "variables_enc"},
	{"conversations", "pending_enc"},
	{"messages", "body_enc"},
	{"messages", "profile_name_enc"},
	{"messages", "template_enc"},
	{"scheduled_messages", "body_enc"},
	{"scheduled_messages", "template_enc"},
	{"audit_events", "details_enc"},
	{"media", "ref_enc"},
	{"media", "data_enc"},
	{"media", "text_enc"},
	{"staff_sessions", "access_token_enc"},
	{"staff_sessions", "refresh_token_enc"},
	{"broadcasts", "spec_enc"},
	{"broadcasts", "audience_enc"},
	{"broadcast_recipients", "vars_enc"},
}

// Rotator re-encrypts every encrypted column under the key ring's active
// key, in batches, each batch in one transaction with its progress, so a
// killed rotation resumes where it stopped. The server keeps serving
// throughout: a value reads under the old key until its batch commits, and
// under the new one after.
type Rotator struct {
	db        *DB
	ring      *crypt.KeyRing
	BatchSize int // rows per transaction; 500 when zero
}

// NewRotator returns a rotator to ring's active key.
func NewRotator(db *DB, ring *crypt.KeyRing) *Rotator {
	return &Rotator{db: db, ring: ring}
}

// RotationStatus is the progress of one column's rotation.
type RotationStatus struct {
	Column
	TargetKey  string
	LastID     int64
	Rewritten  int64
	Total      int64
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
}

// Run rotates every column, calling progress (when not nil) after each
// batch with the rows handled so far and in all. After a kill it resumes the
// unfinished run to the same key; columns that run finished are not redone.
func (r *Rotator) Run(ctx context.Context, progress func(done, total int64)) error {
	batch := r.BatchSize
	if batch <= 0 {
		batch = 500
	}
	states, err := r.open(ctx, r.ring.ActiveKeyID())
	if err != nil {
		return err
	}
	var done, total int64
	for _, st := range states {
		done += st.Rewritten
		total += st.Total
	}
	if progress != nil {
		progress(done, total)
	}
	for _, st := range states {
		for st.FinishedAt == nil {
			n, err := r.batch(ctx, st, batch)
			if err != nil {
				return err
			}
			done += n
			total = max(total, done) // rows written since the count
			if progress != nil {
				progress(done, total)
			}
		}
	}
	return nil
}

// open returns the states of the unfinished run to target, or starts a new
// run over every encrypted column, superseding an unfinished run to another
// key.
func (r *Rotator) open(ctx context.Context, target string) ([]*RotationStatus, error) {
	var states []*RotationStatus
	err := pgx.BeginFunc(ctx, r.db.Pool, func(tx pgx.Tx) error {
		// One rotation starts at a time.
		if _, err := tx.Exec(ctx, "LOCK TABLE key_rotations IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		var runID int64
		err := tx.QueryRow(ctx, `SELECT run_id FROM key_rotations WHERE target_key = $1 AND finished_at IS NULL LIMIT 1`, target).Scan(&runID)
		if err == nil {
			rows, err := tx.Query(ctx, `SELECT table_name, column_name, target_key, last_id, rewritten, total, started_at, updated_at, finished_at
				FROM key_rotations WHERE run_id = $1 ORDER BY id`, runID)
			if err != nil {
				return err
			}
			states, err = pgx.CollectRows(rows, scanRotation)
			return err
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE key_rotations SET finished_at = now(), updated_at = now() WHERE finished_at IS NULL`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(run_id), 0) + 1 FROM key_rotations`).Scan(&runID); err != nil {
			return err
		}
		for _, col := range EncryptedColumns {
			st := &RotationStatus{Column: col, TargetKey: target}
			if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s IS NOT NULL", col.Table, col.Name)).Scan(&st.Total); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO key_rotations (run_id, target_key, table_name, column_name, total)
				VALUES ($1, $2, $3, $4, $5) RETURNING started_at, updated_at`, runID, target, col.Table, col.Name, st.Total).
				Scan(&st.StartedAt, &st.UpdatedAt); err != nil {
				return err
			}
			states = append(states, st)
		}
		return nil
	})
	if err != nil {
		return nil, dbError(err, "Key rotation")
	}
	return states, nil
}

func scanRotation(row pgx.CollectableRow) (*RotationStatus, error) {
	var s RotationStatus
	err := row.Scan(&s.Table, &s.Name, &s.TargetKey, &s.LastID, &s.Rewritten, &s.Total, &s.StartedAt, &s.UpdatedAt, &s.FinishedAt)
	return &s, err
}

// batch re-encrypts the next rows of st's column and records the progress
// in the same transaction. It returns how many rows it handled.
func (r *Rotator) batch(ctx context.Context, st *RotationStatus, size int) (int64, error) {
	target := st.TargetKey
	var handled, last int64
	err := pgx.BeginFunc(ctx, r.db.Pool, func(tx pgx.Tx) error {
		// FOR NO KEY UPDATE: a concurrent write to one of these rows waits
		// for this batch, so it is neither lost nor overwritten; rows that
		// only reference them (messages of a contact) are not held up.
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT id, %[2]s FROM %[1]s WHERE id > $1 AND %[2]s IS NOT NULL
			ORDER BY id LIMIT $2 FOR NO KEY UPDATE`, st.Table, st.Name), st.LastID, size)
		if err != nil {
			return err
		}
		var ids []int64
		var values [][]byte
		last = st.LastID
		for rows.Next() {
			var id int64
			var ct []byte
			if err := rows.Scan(&id, &ct); err != nil {
				return err
			}
			last = id
			handled++
			if keyID, _ := crypt.KeyID(ct); keyID == target {
				continue
			}
			ref := crypt.Ref{Table: st.Table, Column: st.Name, ID: id}
			plain, err := r.ring.Decrypt(ct, ref)
			if err != nil {
				return fmt.Errorf("rotate %s: %w", ref, err)
			}
			ids = append(ids, id)
			values = append(values, r.ring.Encrypt(plain, ref))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %[1]s t SET %[2]s = v.c
				FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::bytea[]) AS c) v WHERE t.id = v.id`, st.Table, st.Name), ids, values); err != nil {
				return err
			}
		}
		finished := handled < int64(size)
		return tx.QueryRow(ctx, `UPDATE key_rotations SET last_id = $3, rewritten = rewritten + $4, updated_at = now(),
			finished_at = CASE WHEN $5 THEN now() END
			WHERE table_name = $1 AND column_name = $2 AND finished_at IS NULL RETURNING updated_at, finished_at`,
			st.Table, st.Name, last, handled, finished).Scan(&st.UpdatedAt, &st.FinishedAt)
	})
	if err != nil {
		return 0, dbError(err, "Key rotation")
	}
	st.LastID = last
	return handled, nil
}

// Rotations returns the newest rotation of each encrypted column.
func (r *Rotator) Rotations(ctx context.Context) ([]*RotationStatus, error) {
	rows, err := r.db.Pool.Query(ctx, `SELECT DISTINCT ON (table_name, column_name) table_name, column_name, target_key,
		last_id, rewritten, total, started_at, updated_at, finished_at
		FROM key_rotations ORDER BY table_name, column_name, id DESC`)
	if err != nil {
		return nil, dbError(err, "Key rotation")
	}
	out, err := pgx.CollectRows(rows, scanRotation)
	return out, dbError(err, "Key rotation")
}

// KeyCount is how many values of a column are sealed under one key.
type KeyCount struct {
	Column
	KeyID string
	Count int64
}

// KeyCounts counts the values of every encrypted column per key id, read
// from the ciphertexts' headers without decrypting anything.
func (r *Rotator) KeyCounts(ctx context.Context) ([]KeyCount, error) {
	var out []KeyCount
	for _, col := range EncryptedColumns {
		rows, err := r.db.Pool.Query(ctx, fmt.Sprintf(`SELECT convert_from(substring(%[2]s FROM 3 FOR get_byte(%[2]s, 1)), 'UTF8') AS key_id, count(*)
			FROM %[1]s WHERE %[2]s IS NOT NULL GROUP BY 1 ORDER BY 1`, col.Table, col.Name))
		if err != nil {
			return nil, dbError(err, "Key status")
		}
		counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (KeyCount, error) {
			k := KeyCount{Column: col}
			err := row.Scan(&k.KeyID, &k.Count)
			return k, err
		})
		if err != nil {
			return nil, dbError(err, "Key status")
		}
		out = append(out, counts...)
	}
	return out, nil
}
