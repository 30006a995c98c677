package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

type savedReplyRow struct {
	ID        int64 `gorm:"primaryKey"`
	Title     string
	Body      string
	UpdatedBy *string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (savedReplyRow) TableName() string { return "saved_replies" }

func (r *savedReplyRow) model() *models.SavedReply {
	return &models.SavedReply{ID: r.ID, Title: r.Title, Body: r.Body, UpdatedAt: r.UpdatedAt}
}

// SavedReplyStore keeps saved replies: the business's own text, not
// personal, so not sealed. What one becomes for a contact is never stored.
type SavedReplyStore struct{ db *DB }

// NewSavedReplyStore returns the saved-reply store.
func NewSavedReplyStore(db *DB) *SavedReplyStore { return &SavedReplyStore{db: db} }

// maxSavedReplies bounds the list a reply box offers.
const maxSavedReplies = 500

// List returns the saved replies by title.
func (s *SavedReplyStore) List(ctx context.Context) ([]*models.SavedReply, error) {
	var rows []savedReplyRow
	if err := s.db.Gorm.WithContext(ctx).Order("lower(title), id").Limit(maxSavedReplies).Find(&rows).Error; err != nil {
		return nil, dbError(err, "Saved reply")
	}
	out := make([]*models.SavedReply, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// Get returns one saved reply (ENOTFOUND when there is none).
func (s *SavedReplyStore) Get(ctx context.Context, id int64) (*models.SavedReply, error) {
	var row savedReplyRow
	if err := s.db.Gorm.WithContext(ctx).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Saved reply")
	}
	return row.model(), nil
}

// Save adds r (r.ID 0) or replaces the one with its id, in tx: ECONFLICT
// when another has its title, ENOTFOUND when the one to replace is gone.
func (s *SavedReplyStore) Save(ctx context.Context, tx *gorm.DB, r *models.SavedReply, by string) error {
	g := tx.WithContext(ctx)
	now := time.Now().UTC().Truncate(time.Microsecond)
	row := savedReplyRow{ID: r.ID, Title: r.Title, Body: r.Body, CreatedAt: now, UpdatedAt: now}
	if by != "" {
		row.UpdatedBy = &by
	}
	if r.ID == 0 {
		if err := g.Omit("id").Create(&row).Error; err != nil {
			return dbError(err, "A saved reply with this title")
		}
	} else {
		res := g.Model(&row).Select("title", "body", "updated_by", "updated_at").Updates(&row)
		if res.Error != nil {
			return dbError(res.Error, "A saved reply with this title")
		}
		if res.RowsAffected == 0 {
			return models.Errorf(models.ENOTFOUND, "Saved reply not found.")
		}
	}
	r.ID, r.UpdatedAt = row.ID, now
	return nil
}

// Delete removes a saved reply in tx.
func (s *SavedReplyStore) Delete(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Exec(`DELETE FROM saved_replies WHERE id = ?`, id)
	if res.Error != nil {
		return dbError(res.Error, "Saved reply")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "Saved reply not found.")
	}
	return nil
}
