package store

import (
	"context"
	"time"
)

// PurgeBefore removes what people said from messages older than before:
// bodies and profile names (set to nothing), their word index, and their
// attachments. The messages stay, as dated records of who was written to
// and how it went. It works in batches (each its own transaction) and
// returns how many messages and attachments it cleared.
func (s *MessageStore) PurgeBefore(ctx context.Context, before time.Time, batch int) (messages, media int64, err error) {
	for {
		var n int64
		err := s.db.Pool.QueryRow(ctx, `WITH old AS (
				SELECT id FROM messages WHERE created_at < $1 AND (body_enc IS NOT NULL OR profile_name_enc IS NOT NULL)
				ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
			words AS (DELETE FROM message_words WHERE message_id IN (SELECT id FROM old)),
			cleared AS (UPDATE messages SET body_enc = NULL, profile_name_enc = NULL WHERE id IN (SELECT id FROM old) RETURNING 1)
			SELECT count(*) FROM cleared`, before, batch).Scan(&n)
		if err != nil {
			return messages, media, dbError(err, "Message")
		}
		messages += n
		if n < int64(batch) {
			break
		}
	}
	tag, err := s.db.Pool.Exec(ctx, `DELETE FROM media WHERE message_id IN (SELECT id FROM messages WHERE created_at < $1)`, before)
	if err != nil {
		return messages, media, dbError(err, "Media")
	}
	return messages, tag.RowsAffected(), nil
}
