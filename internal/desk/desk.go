// Package desk is what staff keep for themselves around conversations:
// notes on contacts, tags on conversations and saved replies. Each action
// checks who may do it and is audited in the same transaction as its
// change, so the console and the JSON API (both thin adapters) cannot
// drift. Note text never enters the audit log.
package desk

import (
	"context"
	"strconv"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Auditor appends to the audit log (store.AuditStore).
type Auditor interface {
	Record(ctx context.Context, e *models.AuditEvent) error
	// Within makes change and e one transaction: both or neither.
	Within(ctx context.Context, e *models.AuditEvent, change func(tx *gorm.DB) error) error
}

// Conversations reads a contact's open conversation, decrypted
// (store.ConversationStore).
type Conversations interface {
	Open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error)
}

// Contacts reads a contact, decrypted (store.ContactStore).
type Contacts interface {
	Get(ctx context.Context, id int64) (*models.Contact, error)
}

// Service is the desk's actions.
type Service struct {
	NoteStore  *store.NoteStore
	TagStore   *store.TagStore
	ReplyStore *store.SavedReplyStore
	Convs      Conversations
	Contacts   Contacts
	Audit      Auditor
}

// event is an audit entry of action by actor on a subject.
func event(actor models.Actor, action, subjectType string, id int64, details map[string]any) *models.AuditEvent {
	return &models.AuditEvent{Action: action, SubjectType: subjectType, SubjectID: strconv.FormatInt(id, 10), ActorID: actor.ID,
		ActorRole: actor.Role, RequestID: actor.RequestID, IP: actor.IP, Details: details}
}

func formatID(id int64) string { return strconv.FormatInt(id, 10) }

func parseID(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// may is EFORBIDDEN unless actor's role grants p.
func may(actor models.Actor, p auth.Permission) error {
	if !auth.Can(actor.Role, p) {
		return models.Errorf(models.EFORBIDDEN, "Your role may not do this.")
	}
	return nil
}
