package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// Scheduled message statuses.
const (
	ScheduledPending   = "pending"
	ScheduledSent      = "sent"
	ScheduledCancelled = "cancelled"
	ScheduledHandedOff = "handed_off" // could not go (no template outside the window): a person has it
)

// ScheduledMessage is a message planned for a time (scheduled_messages).
type ScheduledMessage struct {
	ID             int64
	ContactID      int64
	ConversationID *int64 // nil: planned by staff
	Provider       string
	FireAt         time.Time
	Body           string
	Template       *models.TemplateRef
	Status         string
	Reason         string
	MessageID      *int64
}

type scheduledRow struct {
	ID             int64 `gorm:"primaryKey"`
	ContactID      int64
	ConversationID *int64
	Provider       string
	FireAt         time.Time
	Body           *string `gorm:"column:body_enc;serializer:encrypted"`
	Template       []byte  `gorm:"column:template_enc;serializer:encrypted"`
	Status         string  `gorm:"default:pending"`
	Reason         string
	MessageID      *int64
	DoneAt         *time.Time
}

func (scheduledRow) TableName() string { return "scheduled_messages" }

// ScheduledStore keeps scheduled messages, sealed.
type ScheduledStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
}

// NewScheduledStore returns the scheduled messages' store.
func NewScheduledStore(db *DB, c Crypto) *ScheduledStore {
	crypt.RegisterGORMSerializer()
	return &ScheduledStore{db: db, crypto: c, ids: db.allocator("scheduled_messages")}
}

// Insert writes planned messages in tx, setting their ids.
func (s *ScheduledStore) Insert(ctx context.Context, tx *gorm.DB, ms []*ScheduledMessage) error {
	if len(ms) == 0 {
		return nil
	}
	g := gormFor(ctx, s.db, s.crypto, tx)
	rows := make([]*scheduledRow, len(ms))
	for i, m := range ms {
		id, err := s.ids.Next(ctx, g)
		if err != nil {
			return err
		}
		body := m.Body
		rows[i] = &scheduledRow{ID: id, ContactID: m.ContactID, ConversationID: m.ConversationID, Provider: m.Provider, FireAt: m.FireAt, Body: &body, Status: ScheduledPending}
		if m.Template != nil {
			t, err := json.Marshal(m.Template)
			if err != nil {
				return models.Wrap(err, models.EINTERNAL, "A scheduled template cannot be stored.")
			}
			rows[i].Template = t
		}
	}
	if err := g.Create(rows).Error; err != nil {
		return dbError(err, "Scheduled message")
	}
	for i := range rows {
		ms[i].ID = rows[i].ID
	}
	return nil
}

// Lock returns a scheduled message locked for the rest of tx (ENOTFOUND
// when it is gone, with its contact).
func (s *ScheduledStore) Lock(ctx context.Context, tx *gorm.DB, id int64) (*ScheduledMessage, error) {
	var row scheduledRow
	if err := gormFor(ctx, s.db, s.crypto, tx).Clauses(clause.Locking{Strength: "UPDATE"}).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Scheduled message")
	}
	m := &ScheduledMessage{ID: row.ID, ContactID: row.ContactID, ConversationID: row.ConversationID, Provider: row.Provider,
		FireAt: row.FireAt, Status: row.Status, Reason: row.Reason, MessageID: row.MessageID}
	if row.Body != nil {
		m.Body = *row.Body
	}
	if len(row.Template) > 0 {
		var t models.TemplateRef
		if err := json.Unmarshal(row.Template, &t); err != nil {
			return nil, models.Wrap(err, models.EINTERNAL, "A scheduled template is unreadable.")
		}
		m.Template = &t
	}
	return m, nil
}

// ContactOf returns the contact a scheduled message is for (0: gone).
func (s *ScheduledStore) ContactOf(ctx context.Context, id int64) (int64, error) {
	var contactID int64
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT contact_id FROM scheduled_messages WHERE id = ?`, id).Scan(&contactID).Error
	return contactID, dbError(err, "Scheduled message")
}

// Finish records what became of a pending message (sent, with the
// message it became; cancelled or handed off, with the reason) and
// clears its text, which the message row keeps from now on.
func (s *ScheduledStore) Finish(ctx context.Context, tx *gorm.DB, id int64, status, reason string, messageID *int64) error {
	err := tx.WithContext(ctx).Exec(`UPDATE scheduled_messages SET status = ?, reason = ?, message_id = ?, done_at = now(), body_enc = NULL, template_enc = NULL
		WHERE id = ? AND status = 'pending'`, status, reason, messageID, id).Error
	return dbError(err, "Scheduled message")
}

// CancelConversation cancels what a conversation planned and has not
// sent, with the reason.
func (s *ScheduledStore) CancelConversation(ctx context.Context, tx *gorm.DB, conversationID int64, reason string) error {
	err := tx.WithContext(ctx).Exec(`UPDATE scheduled_messages SET status = 'cancelled', reason = ?, done_at = now(), body_enc = NULL, template_enc = NULL
		WHERE conversation_id = ? AND status = 'pending'`, reason, conversationID).Error
	return dbError(err, "Scheduled message")
}

// CancelContact cancels everything planned for a contact and not sent
// (the contact opted out), with the reason.
func (s *ScheduledStore) CancelContact(ctx context.Context, tx *gorm.DB, contactID int64, reason string) error {
	err := tx.WithContext(ctx).Exec(`UPDATE scheduled_messages SET status = 'cancelled', reason = ?, done_at = now(), body_enc = NULL, template_enc = NULL
		WHERE contact_id = ? AND status = 'pending'`, reason, contactID).Error
	return dbError(err, "Scheduled message")
}
