package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

// TagStore keeps the tags on conversations. Tags are short words staff
// choose, not personal: nothing here is sealed.
type TagStore struct{ db *DB }

// NewTagStore returns the tag store.
func NewTagStore(db *DB) *TagStore { return &TagStore{db: db} }

// Of lists a conversation's tags in the order they were added;
// ENOTFOUND when there is no such conversation.
func (s *TagStore) Of(ctx context.Context, conversationID int64) ([]string, error) {
	tags := []string{}
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT tag FROM conversation_tags WHERE conversation_id = ? ORDER BY created_at, tag`, conversationID).
		Scan(&tags).Error
	if err != nil {
		return nil, dbError(err, "Tag")
	}
	if len(tags) == 0 {
		if err := exists(ctx, s.db, "conversations", conversationID, "Conversation"); err != nil {
			return nil, err
		}
	}
	return tags, nil
}

// OfContacts lists the tags of each contact's conversations (any of them:
// the inbox filters by contact), by contact.
func (s *TagStore) OfContacts(ctx context.Context, contactIDs []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(contactIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		ContactID int64
		Tag       string
	}
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT DISTINCT ON (contact_id, tag) contact_id, tag FROM conversation_tags
		WHERE contact_id = ANY(?::bigint[]) ORDER BY contact_id, tag`, bigintArray(contactIDs)).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Tag")
	}
	for _, r := range rows {
		out[r.ContactID] = append(out[r.ContactID], r.Tag)
	}
	return out, nil
}

// Known lists the tags in use, most used first, for suggestions.
func (s *TagStore) Known(ctx context.Context, limit int) ([]string, error) {
	var tags []string
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT tag FROM conversation_tags GROUP BY tag ORDER BY count(*) DESC, tag LIMIT ?`, limit).
		Scan(&tags).Error
	return tags, dbError(err, "Tag")
}

// Add puts tag on the conversation in tx; added is false when it carried
// it already. ENOTFOUND when there is no such conversation, EINVALID when
// it carries models.MaxTags already. The conversation's row is locked so
// two adds at once cannot pass the limit together.
func (s *TagStore) Add(ctx context.Context, tx *gorm.DB, conversationID int64, tag, by string) (added bool, err error) {
	g := tx.WithContext(ctx)
	var contactID int64
	if err := g.Raw(`SELECT contact_id FROM conversations WHERE id = ? FOR UPDATE`, conversationID).Scan(&contactID).Error; err != nil {
		return false, dbError(err, "Conversation")
	}
	if contactID == 0 {
		return false, models.Errorf(models.ENOTFOUND, "Conversation not found.")
	}
	var n int64
	if err := g.Raw(`SELECT count(*) FROM conversation_tags WHERE conversation_id = ?`, conversationID).Scan(&n).Error; err != nil {
		return false, dbError(err, "Tag")
	}
	var author any
	if by != "" {
		author = by
	}
	res := g.Exec(`INSERT INTO conversation_tags (conversation_id, contact_id, tag, created_by) SELECT ?::bigint, ?::bigint, ?::text, ?::uuid
		WHERE ?::bigint < ?::bigint ON CONFLICT DO NOTHING`, conversationID, contactID, tag, author, n, models.MaxTags)
	if res.Error != nil {
		return false, dbError(res.Error, "Tag")
	}
	if res.RowsAffected == 0 {
		var has bool
		if err := g.Raw(`SELECT EXISTS (SELECT 1 FROM conversation_tags WHERE conversation_id = ? AND tag = ?)`, conversationID, tag).
			Scan(&has).Error; err != nil {
			return false, dbError(err, "Tag")
		}
		if !has {
			return false, models.Errorf(models.EINVALID, "A conversation carries at most %d tags.", models.MaxTags)
		}
	}
	return res.RowsAffected == 1, nil
}

// Remove takes tag off the conversation in tx; removed is false when it
// did not carry it.
func (s *TagStore) Remove(ctx context.Context, tx *gorm.DB, conversationID int64, tag string) (removed bool, err error) {
	res := tx.WithContext(ctx).Exec(`DELETE FROM conversation_tags WHERE conversation_id = ? AND tag = ?`, conversationID, tag)
	return res.RowsAffected == 1, dbError(res.Error, "Tag")
}
