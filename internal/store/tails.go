package store

import (
	"context"
	"log/slog"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// tailBatch is how many contacts one step of FillTails reads and writes.
const tailBatch = 500

// FillTails gives the contacts written before migration 00036 their tail
// index (crypt.Indexer.Tail), which only the key in the environment can
// compute, in batches by id. The rows still without one are the work
// left, so a pass stopped anywhere resumes there; a contact whose address
// cannot be read is logged by id and skipped, not retried within the pass,
// and holds no one else up. It returns how many it filled.
func (s *ContactStore) FillTails(ctx context.Context, log *slog.Logger) (int, error) {
	var filled int
	var after int64
	for {
		rows, err := s.db.Pool.Query(ctx, `SELECT id, address_enc FROM contacts
			WHERE address_tail_bidx IS NULL AND NOT address_invalid AND id > $1 ORDER BY id LIMIT $2`, after, tailBatch)
		if err != nil {
			return filled, dbError(err, "Contact")
		}
		var ids []int64
		var tails []int32
		n := 0
		for rows.Next() {
			var id int64
			var sealed []byte
			if err := rows.Scan(&id, &sealed); err != nil {
				rows.Close()
				return filled, dbError(err, "Contact")
			}
			n, after = n+1, id
			number, err := s.crypto.Ring.DecryptString(sealed, crypt.Ref{Table: "contacts", Column: "address_enc", ID: id})
			if err != nil {
				log.Warn("a contact's address could not be read for its tail index; skipped", slog.Int64("contact_id", id), slog.String("code", models.ErrorCode(err)))
				continue
			}
			if tail, ok := s.crypto.Index.Tail(number); ok {
				ids, tails = append(ids, id), append(tails, tail)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return filled, dbError(err, "Contact")
		}
		if len(ids) > 0 {
			tag, err := s.db.Pool.Exec(ctx, `UPDATE contacts c SET address_tail_bidx = v.tail
				FROM unnest($1::bigint[], $2::integer[]) AS v(id, tail) WHERE c.id = v.id AND c.address_tail_bidx IS NULL`, ids, tails)
			if err != nil {
				return filled, dbError(err, "Contact")
			}
			filled += int(tag.RowsAffected())
		}
		if n < tailBatch {
			return filled, nil
		}
	}
}
