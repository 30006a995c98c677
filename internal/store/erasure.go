package store

import (
	"context"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/models"
)

// Erased counts what an erasure removed.
type Erased struct {
	Messages, Attachments, Conversations, Jobs int64
}

// Erase removes everything of one contact in one transaction: the contact
// (address, name and their blind indexes), their messages with the word
// index and attachments, their conversations with variables and pending AI
// requests, and the queue's jobs about them, finished ones included
// (eraseJobs). It appends an audit entry that the erasure happened, naming
// the contact's id and the counts, nothing of the person. actor is who
// asked (nil: the command line).
func (s *ContactStore) Erase(ctx context.Context, id int64, actor *models.Actor, audit *AuditStore) (Erased, error) {
	var n Erased
	err := s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.lockRow(ctx, tx, id); err != nil {
			return err
		}
		counts := tx.Raw(`SELECT (SELECT count(*) FROM messages WHERE contact_id = ?),
				(SELECT count(*) FROM media WHERE message_id IN (SELECT id FROM messages WHERE contact_id = ?)),
				(SELECT count(*) FROM conversations WHERE contact_id = ?)`, id, id, id).Row()
		if err := counts.Scan(&n.Messages, &n.Attachments, &n.Conversations); err != nil {
			return dbError(err, "Contact")
		}
		refs, err := jobRefsOf(ctx, tx, id)
		if err != nil {
			return err
		}
		// Messages first (their words with them, their attachments by
		// cascade): a resend refers to the message it resent, both of
		// this contact. A send holding one of them commits first, so the
		// queue is looked at after: what it queued is then in sight.
		if err := tx.Exec(`DELETE FROM message_words WHERE message_id IN (SELECT id FROM messages WHERE contact_id = ?)`, id).Error; err != nil {
			return dbError(err, "Contact")
		}
		if err := tx.Exec(`DELETE FROM messages WHERE contact_id = ?`, id).Error; err != nil {
			return dbError(err, "Contact")
		}
		if n.Jobs, err = eraseJobs(ctx, tx, refs); err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM contacts WHERE id = ?`, id).Error; err != nil { // conversations, name words, notes, tags: cascade
			return dbError(err, "Contact")
		}
		e := &models.AuditEvent{Action: "contact.erase", SubjectType: "contact", SubjectID: strconv.FormatInt(id, 10),
			Details: map[string]any{"messages": n.Messages, "attachments": n.Attachments, "conversations": n.Conversations, "jobs": n.Jobs}}
		if actor != nil {
			e.ActorID, e.ActorRole, e.RequestID, e.IP = actor.ID, actor.Role, actor.RequestID, actor.IP
		}
		return audit.Append(ctx, tx, e)
	})
	return n, err
}

// lockRow locks the contact's row for the rest of tx; ENOTFOUND when there
// is none.
func (s *ContactStore) lockRow(ctx context.Context, tx *gorm.DB, id int64) (int64, error) {
	var got int64
	err := tx.Raw(`SELECT id FROM contacts WHERE id = ? FOR UPDATE`, id).Scan(&got).Error
	if err == nil && got == 0 {
		return 0, models.Errorf(models.ENOTFOUND, "Contact not found.")
	}
	return got, dbError(err, "Contact")
}

// ContactExport is everything Parley holds of one contact, decrypted, for a
// subject-access request.
type ContactExport struct {
	Contact       *models.Contact        `json:"contact"`
	Messages      []*models.Message      `json:"messages"`
	Conversations []*models.Conversation `json:"conversations"`
	Attachments   []MediaInfo            `json:"attachments"`
	Notes         []*models.Note         `json:"notes"` // staff's notes on them: about them, so theirs to see
	ExportedAt    time.Time              `json:"exported_at"`
}

// Export reads everything of one contact, decrypted.
func (s *ContactStore) Export(ctx context.Context, id int64) (*ContactExport, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &ContactExport{Contact: c, ExportedAt: time.Now().UTC()}
	messages := NewMessageStore(s.db, s.crypto)
	var before int64
	for {
		page, err := messages.ForContact(ctx, id, before, 500)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, page...)
		if len(page) < 500 {
			break
		}
		before = page[len(page)-1].Seq
	}
	slices.Reverse(out.Messages) // read newest first; exported as they happened
	var rows []conversationRow
	if err := gormFor(ctx, s.db, s.crypto, nil).Where("contact_id = ?", id).Order("id").Find(&rows).Error; err != nil {
		return nil, dbError(err, "Conversation")
	}
	for i := range rows {
		conv, err := rows[i].model()
		if err != nil {
			return nil, err
		}
		out.Conversations = append(out.Conversations, conv)
	}
	ids := make([]int64, len(out.Messages))
	for i, m := range out.Messages {
		ids[i] = m.ID
	}
	media, err := NewMediaStore(s.db, s.crypto).ForMessages(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, m := range out.Messages {
		out.Attachments = append(out.Attachments, media[m.ID]...)
	}
	if out.Notes, err = NewNoteStore(s.db, s.crypto).ForContact(ctx, id); err != nil {
		return nil, err
	}
	return out, nil
}

// PersonalData is export and erasure as the API and console use them: the
// erasure audited by the audit store given.
type PersonalData struct {
	Contacts *ContactStore
	Audit    *AuditStore
}

// Erase implements the handlers' PersonalData.
func (p PersonalData) Erase(ctx context.Context, id int64, actor *models.Actor) (Erased, error) {
	return p.Contacts.Erase(ctx, id, actor, p.Audit)
}

// Export implements the handlers' PersonalData.
func (p PersonalData) Export(ctx context.Context, id int64) (*ContactExport, error) {
	return p.Contacts.Export(ctx, id)
}
