package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// Understanding states of an attachment.
const (
	UnderstandWaiting = "waiting" // the contact's later messages wait for it
	UnderstandDone    = "done"
	UnderstandFailed  = "failed"
)

// Understood is what Parley made of one attachment of a message.
type Understood struct {
	ID            int64
	ContentType   string
	Fetched       bool
	FetchError    string
	Understanding string // "", waiting, done, failed
	Text          string // the transcript or description, decrypted
	Language      string // a transcript's language, BCP-47
	Error         string // why understanding failed, for staff
}

// Understanding lists what was made of a message's attachments, in their
// order, inside tx.
func (s *MediaStore) Understanding(ctx context.Context, tx *gorm.DB, messageID int64) ([]Understood, error) {
	var rows []struct {
		ID                                                           int64
		ContentType, Error, Understanding, Language, UnderstandError string
		Fetched                                                      bool
		TextEnc                                                      []byte
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Raw(`SELECT id, content_type, error, understanding, language, understand_error,
			fetched_at IS NOT NULL AS fetched, text_enc
		FROM media WHERE message_id = ? ORDER BY position`, messageID).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Media")
	}
	out := make([]Understood, len(rows))
	for i, r := range rows {
		out[i] = Understood{ID: r.ID, ContentType: r.ContentType, Fetched: r.Fetched, FetchError: r.Error, Understanding: r.Understanding,
			Language: r.Language, Error: r.UnderstandError}
		if out[i].Text, err = s.openText(r.ID, r.TextEnc); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *MediaStore) openText(id int64, enc []byte) (string, error) {
	if enc == nil {
		return "", nil
	}
	return s.crypto.Ring.DecryptString(enc, crypt.Ref{Table: "media", Column: "text_enc", ID: id})
}

// Understand records what an attachment says (a transcript and its
// language) or shows (a description), sealed; a later result replaces it.
func (s *MediaStore) Understand(ctx context.Context, id int64, text, language string) error {
	enc := s.crypto.Ring.EncryptString(text, crypt.Ref{Table: "media", Column: "text_enc", ID: id})
	res := gormFor(ctx, s.db, s.crypto, nil).Exec(`UPDATE media SET understanding = ?, text_enc = ?, language = ?, understand_error = '' WHERE id = ?`,
		UnderstandDone, enc, language, id)
	if res.Error != nil {
		return dbError(res.Error, "Media")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "Media not found.")
	}
	return nil
}

// NotUnderstood records why an attachment could not be understood; what
// waited for it goes on without.
func (s *MediaStore) NotUnderstood(ctx context.Context, id int64, reason string) error {
	err := gormFor(ctx, s.db, s.crypto, nil).Exec(`UPDATE media SET understanding = ?, understand_error = ? WHERE id = ? AND understanding <> ?`,
		UnderstandFailed, reason, id, UnderstandDone).Error
	return dbError(err, "Media")
}

// AIUsage is what one AI request used.
type AIUsage struct {
	ContactID      int64
	ConversationID *int64
	Provider, Task string
	AudioSeconds   float64
	PromptTokens   int64
	OutputTokens   int64
	At             time.Time
}

// RecordAIUsage keeps what an AI request used, against its conversation
// (nil: the contact's open conversation, if any).
func RecordAIUsage(ctx context.Context, db *DB, u AIUsage) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO ai_usage (contact_id, conversation_id, provider, task, audio_seconds, prompt_tokens, output_tokens)
		VALUES ($1, coalesce($2, (SELECT id FROM conversations WHERE contact_id = $1 AND status NOT IN ('ended', 'error') LIMIT 1)), $3, $4, $5, $6, $7)`,
		u.ContactID, u.ConversationID, u.Provider, u.Task, u.AudioSeconds, u.PromptTokens, u.OutputTokens)
	return dbError(err, "AI usage")
}
