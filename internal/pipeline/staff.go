package pipeline

// The staff actions. What staff do to conversations is a method of
// Pipeline taking the actor first: Take and MayReply (handoff.go), Reply,
// Resend (here), BulkResend (staff_bulk.go), Override and MayCommand
// (override.go). Each checks the actor's permission, writes its change and
// its audit entry in one transaction, and refuses with a models.Error whose
// message a person can act on. The console's and the API's handlers only
// translate HTTP to these calls and back (handlers.StaffActions), so the
// two faces cannot drift. New actions (start a flow, a broadcast) go here
// the same way: a method with the actor first, its own file and tests
// against a real database, and a line in handlers.StaffActions.

import (
	"context"
	"strconv"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/models"
)

// Reply sends a staff member's words to a contact through the same path as
// the flows' replies (stored, queued, sent in order, retried), on the
// platform the contact last wrote through. It is refused, with the reason,
// when the actor may not write to this contact now (mayReply), when the
// contact opted out or WhatsApp's 24-hour window is closed. It returns the
// id of the message queued.
func (p *Pipeline) Reply(ctx context.Context, actor models.Actor, contactID int64, text string) (int64, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return 0, models.Errorf(models.EINVALID, "Write something to send.")
	case utf8.RuneCountInString(text) > engine.MaxInput:
		return 0, models.Errorf(models.EINVALID, "A message may have at most %d characters.", engine.MaxInput)
	}
	if gaps := models.Unfilled(text); len(gaps) > 0 {
		return 0, models.Errorf(models.EINVALID, "Fill in {{%s}} before sending: the person would read it as written.", strings.Join(gaps, "}}, {{"))
	}
	var queued int64
	err := p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		var convID *int64
		conv, err := p.convs.Open(ctx, tx, contact.ID)
		if err != nil {
			return err
		}
		if err := p.mayReply(ctx, tx, actor, conv); err != nil {
			return err
		}
		if conv != nil {
			convID = &conv.ID
			if err := p.convs.Answered(ctx, tx, conv.ID); err != nil { // a hand-off's first answer
				return err
			}
		}
		provider, err := p.canSend(ctx, tx, contact)
		if err != nil {
			return err
		}
		out := &Outcome{Replies: []string{text}, ConversationID: convID, SentBy: actor.ID}
		if err := p.apply(ctx, tx, contact, provider, out); err != nil {
			return err
		}
		if len(out.Queued) == 1 {
			queued = out.Queued[0]
		}
		return p.audit.Append(ctx, tx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
			Action: "conversation.reply", SubjectType: "contact", SubjectID: strconv.FormatInt(contact.ID, 10),
			Details: map[string]any{"characters": utf8.RuneCountInString(text)}})
	})
	return queued, err
}

// Resend sends a failed (or uncertain) outbound message again as a new
// message, and returns its id. A message is resent once: asked again (a
// double click), it returns the resend already made.
func (p *Pipeline) Resend(ctx context.Context, actor models.Actor, messageID int64) (int64, error) {
	var contactID int64
	if err := p.db.Gorm.WithContext(ctx).Raw(`SELECT contact_id FROM messages WHERE id = ? AND direction = 'out'`, messageID).Scan(&contactID).Error; err != nil {
		return 0, err
	}
	if contactID == 0 {
		return 0, models.Errorf(models.ENOTFOUND, "Message not found.")
	}
	var newID int64
	err := p.underContact(ctx, contactID, func(tx *gorm.DB, contact *models.Contact) error {
		if err := tx.WithContext(ctx).Raw(`SELECT id FROM messages WHERE resend_of = ?`, messageID).Scan(&newID).Error; err != nil || newID != 0 {
			return err // resent already
		}
		original, err := p.messages.GetIn(ctx, tx, messageID)
		if err != nil {
			return err
		}
		if original.Status != models.StatusFailed {
			return models.Errorf(models.ECONFLICT, "Only a failed or uncertain message can be sent again.")
		}
		if _, err := p.canSend(ctx, tx, contact); err != nil {
			return err
		}
		again := &models.Message{ContactID: contact.ID, ConversationID: original.ConversationID, Direction: models.Outbound,
			Channel: original.Channel, Provider: original.Provider, Body: original.Body, Status: models.StatusQueued, SentBy: original.SentBy}
		if err := p.messages.InsertReplies(ctx, tx, []*models.Message{again}); err != nil {
			return err
		}
		if err := tx.WithContext(ctx).Exec(`UPDATE messages SET resend_of = ? WHERE id = ?`, messageID, again.ID).Error; err != nil {
			return err
		}
		newID = again.ID
		if err := p.enqueue(ctx, tx, SendArgs{MessageIDs: []int64{again.ID}}, nil); err != nil {
			return err
		}
		return p.audit.Append(ctx, tx, &models.AuditEvent{ActorID: actor.ID, ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP,
			Action: "message.resend", SubjectType: "message", SubjectID: strconv.FormatInt(messageID, 10),
			Details: map[string]any{"new_message": again.ID}})
	})
	return newID, err
}

// canSend checks, before anything is queued, what would make a staff
// member's message fail at once (the send job's refusal, or no channel to
// answer on), and returns the provider to send through.
func (p *Pipeline) canSend(ctx context.Context, tx *gorm.DB, contact *models.Contact) (string, error) {
	provider, err := p.lastProvider(ctx, tx, contact.ID)
	switch {
	case err != nil:
		return "", err
	case provider == "":
		return "", models.Errorf(models.ECONFLICT, "The contact has never written, so there is no channel to answer on.")
	}
	_, reason, err := p.refusal(ctx, tx, contact, contact.Channel, false)
	switch {
	case err != nil:
		return "", err
	case reason != "":
		return "", models.Errorf(models.ECONFLICT, "%s", reason)
	}
	return provider, nil
}
