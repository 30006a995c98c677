package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

type mediaRow struct {
	ID          int64 `gorm:"primaryKey"`
	MessageID   int64
	Position    int
	Ref         string `gorm:"column:ref_enc;serializer:encrypted"`
	ContentType string
	Size        *int64
	Data        []byte `gorm:"column:data_enc;serializer:encrypted"`
	FetchedAt   *time.Time
	Error       string
	ContactID   int64 `gorm:"->"` // read-only: the contact of its message (Get)
}

func (mediaRow) TableName() string { return "media" }

// MediaStore keeps inbound attachments, sealed.
type MediaStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
}

// NewMediaStore returns the media store.
func NewMediaStore(db *DB, c Crypto) *MediaStore {
	crypt.RegisterGORMSerializer()
	return &MediaStore{db: db, crypto: c, ids: db.allocator("media")}
}

// Add records an attachment to fetch: where the platform keeps it.
func (s *MediaStore) Add(ctx context.Context, tx *gorm.DB, messageID int64, position int, ref, contentType string) (int64, error) {
	id, err := s.ids.Next(ctx, gormFor(ctx, s.db, s.crypto, tx))
	if err != nil {
		return 0, dbError(err, "Media")
	}
	row := &mediaRow{ID: id, MessageID: messageID, Position: position, Ref: ref, ContentType: contentType}
	if err := gormFor(ctx, s.db, s.crypto, tx).Omit("data_enc", "size").Create(row).Error; err != nil {
		return 0, dbError(err, "Media")
	}
	return id, nil
}

// Media is one attachment as stored.
type Media struct {
	ID          int64
	MessageID   int64
	ContactID   int64 // who sent it
	Ref         string
	ContentType string
	Data        []byte // nil until fetched
	Error       string
}

// Get returns an attachment, decrypted.
func (s *MediaStore) Get(ctx context.Context, id int64) (*Media, error) {
	var row mediaRow
	err := gormFor(ctx, s.db, s.crypto, nil).Select("media.*, (SELECT contact_id FROM messages WHERE messages.id = media.message_id) AS contact_id").
		First(&row, id).Error
	if err != nil {
		return nil, dbError(err, "Media")
	}
	return &Media{ID: row.ID, MessageID: row.MessageID, ContactID: row.ContactID, Ref: row.Ref, ContentType: row.ContentType, Data: row.Data, Error: row.Error}, nil
}

// Save stores the fetched bytes, sealed.
func (s *MediaStore) Save(ctx context.Context, id int64, contentType string, data []byte) error {
	size, now := int64(len(data)), time.Now().UTC()
	row := &mediaRow{ID: id, ContentType: contentType, Size: &size, Data: data, FetchedAt: &now}
	// A struct, not a map: the serializer seals data_enc bound to the id.
	res := gormFor(ctx, s.db, s.crypto, nil).Model(row).Select("content_type", "size", "data_enc", "fetched_at", "error").Updates(row)
	if res.Error != nil {
		return dbError(res.Error, "Media")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "Media not found.")
	}
	return nil
}

// Fail records why an attachment could not be fetched; one that was
// waited for is then not understood either, for the same reason.
func (s *MediaStore) Fail(ctx context.Context, id int64, reason string) error {
	err := gormFor(ctx, s.db, s.crypto, nil).Exec(`UPDATE media SET error = ?,
			understand_error = CASE WHEN understanding = ? THEN ? ELSE understand_error END,
			understanding = CASE WHEN understanding = ? THEN ? ELSE understanding END
		WHERE id = ?`, reason, UnderstandWaiting, reason, UnderstandWaiting, UnderstandFailed, id).Error
	return dbError(err, "Media")
}

// MediaInfo is what the console lists of an attachment: no bytes, nothing
// sealed.
type MediaInfo struct {
	ID          int64  `json:"id"`
	MessageID   int64  `json:"message_id"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Fetched     bool   `json:"fetched"`
	Error       string `json:"error"`
	// What Parley understood of it: a transcript (with its language) or a
	// description, decrypted; or why not.
	Understanding   string `json:"understanding"`
	Text            string `json:"text" gorm:"-"`
	Language        string `json:"language"`
	UnderstandError string `json:"understand_error"`
	TextEnc         []byte `json:"-"`
}

// ForMessages lists the attachments of these messages, in their order.
func (s *MediaStore) ForMessages(ctx context.Context, messageIDs []int64) (map[int64][]MediaInfo, error) {
	out := map[int64][]MediaInfo{}
	if len(messageIDs) == 0 {
		return out, nil
	}
	var rows []MediaInfo
	err := gormFor(ctx, s.db, s.crypto, nil).Raw(`SELECT id, message_id, content_type, coalesce(size, 0) AS size,
			fetched_at IS NOT NULL AS fetched, error, understanding, language, understand_error, text_enc
		FROM media WHERE message_id IN ? ORDER BY message_id, position`, messageIDs).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Media")
	}
	for _, r := range rows {
		if r.Text, err = s.openText(r.ID, r.TextEnc); err != nil {
			return nil, err
		}
		r.TextEnc = nil
		out[r.MessageID] = append(out[r.MessageID], r)
	}
	return out, nil
}
