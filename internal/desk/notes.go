package desk

import (
	"context"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/models"
)

// Notes lists a contact's notes, decrypted, after auditing the read
// (notes.view, once per reader and contact within the audit's read
// window, as a conversation's view is).
func (s *Service) Notes(ctx context.Context, actor models.Actor, contactID int64) ([]*models.Note, error) {
	if err := may(actor, auth.ReadConversations); err != nil {
		return nil, err
	}
	if err := s.Audit.Record(ctx, event(actor, "notes.view", "contact", contactID, nil)); err != nil {
		return nil, err
	}
	return s.NoteStore.ForContact(ctx, contactID)
}

// AddNote writes a note on a contact (EINVALID: empty or too long;
// ENOTFOUND: no such contact). Audited as note.add on the contact, with
// the note's id and never its text.
func (s *Service) AddNote(ctx context.Context, actor models.Actor, contactID int64, body string) (*models.Note, error) {
	if err := may(actor, auth.WriteNotes); err != nil {
		return nil, err
	}
	body, err := models.CleanNote(body)
	if err != nil {
		return nil, err
	}
	var n *models.Note
	e := event(actor, "note.add", "contact", contactID, nil)
	err = s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		var err error
		if n, err = s.NoteStore.Add(ctx, tx, contactID, actor.ID, body); err != nil {
			return err
		}
		e.Details = map[string]any{"note_id": n.ID}
		return nil
	})
	return n, err
}

// EditNote replaces a note's text: EFORBIDDEN unless actor wrote it or
// may moderate notes.
func (s *Service) EditNote(ctx context.Context, actor models.Actor, id int64, body string) (*models.Note, error) {
	if err := may(actor, auth.WriteNotes); err != nil {
		return nil, err
	}
	body, err := models.CleanNote(body)
	if err != nil {
		return nil, err
	}
	var n *models.Note
	e := event(actor, "note.edit", "contact", 0, map[string]any{"note_id": id})
	err = s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		if err := s.mayChange(ctx, tx, actor, id, e); err != nil {
			return err
		}
		var err error
		n, err = s.NoteStore.Update(ctx, tx, id, body)
		return err
	})
	return n, err
}

// DeleteNote removes a note: EFORBIDDEN unless actor wrote it or may
// moderate notes. It returns the contact the note was on.
func (s *Service) DeleteNote(ctx context.Context, actor models.Actor, id int64) (contactID int64, err error) {
	if err := may(actor, auth.WriteNotes); err != nil {
		return 0, err
	}
	e := event(actor, "note.delete", "contact", 0, map[string]any{"note_id": id})
	err = s.Audit.Within(ctx, e, func(tx *gorm.DB) error {
		if err := s.mayChange(ctx, tx, actor, id, e); err != nil {
			return err
		}
		return s.NoteStore.Delete(ctx, tx, id)
	})
	if err != nil {
		return 0, err
	}
	contactID, _ = parseID(e.SubjectID)
	return contactID, nil
}

// mayChange reads note id in tx (locked) and refuses actor unless they
// wrote it or may moderate; it names the note's contact in e.
func (s *Service) mayChange(ctx context.Context, tx *gorm.DB, actor models.Actor, id int64, e *models.AuditEvent) error {
	if err := tx.WithContext(ctx).Exec(`SELECT 1 FROM contact_notes WHERE id = ? FOR UPDATE`, id).Error; err != nil {
		return err
	}
	n, err := s.NoteStore.Get(ctx, tx, id)
	if err != nil {
		return err
	}
	if n.AuthorID != actor.ID && !auth.Can(actor.Role, auth.ModerateNotes) {
		return models.Errorf(models.EFORBIDDEN, "Only the note's author, a supervisor or an admin may change it.")
	}
	e.SubjectID = formatID(n.ContactID)
	return nil
}
