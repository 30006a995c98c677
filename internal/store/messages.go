package store

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// messageRow is a messages row; the body is sealed by the "encrypted"
// serializer.
type messageRow struct {
	ID                int64 `gorm:"primaryKey"`
	ContactID         int64
	ConversationID    *int64
	Direction         string
	Channel           string
	Provider          string
	ProviderMessageID *string
	Body              *string `gorm:"column:body_enc;serializer:encrypted"`
	ProfileName       *string `gorm:"column:profile_name_enc;serializer:encrypted"`
	Template          []byte  `gorm:"column:template_enc;serializer:encrypted"` // JSON of models.TemplateRef
	Status            string
	ErrorCode         string
	ErrorReason       string
	ProviderTime      *time.Time
	CreatedAt         time.Time
	ProcessedAt       *time.Time
	SentBy            *string // a staff member's id: a reply written by hand
	Seq               int64   `gorm:"->"` // read-only: the column's default places a row written alone (see placeOf)
	Attempts          int     `gorm:"->"` // read-only: the send job counts attempts in SQL
	HasMedia          bool    `gorm:"->"` // read-only: selected where processing needs it (withMedia)
	ResendOf          *int64  `gorm:"->"` // read-only: set by Resend on the message sent again
	// read-only: selected by LockOutbound (earlierUnsent)
	EarlierWaiting, EarlierRetrying bool `gorm:"->"`
}

// withMedia selects a message with whether it has attachments.
const withMedia = "messages.*, EXISTS (SELECT 1 FROM media WHERE media.message_id = messages.id) AS has_media"

func (messageRow) TableName() string { return "messages" }

func (r *messageRow) model() *models.Message {
	m := &models.Message{
		ID: r.ID, ContactID: r.ContactID, ConversationID: r.ConversationID, Direction: models.Direction(r.Direction),
		Channel: models.Channel(r.Channel), Provider: r.Provider, Status: models.MessageStatus(r.Status),
		ErrorCode: r.ErrorCode, ErrorReason: r.ErrorReason, ProviderTime: r.ProviderTime, CreatedAt: r.CreatedAt, Seq: r.Seq, HasMedia: r.HasMedia,
	}
	if r.ProviderMessageID != nil {
		m.ProviderMessageID = *r.ProviderMessageID
	}
	if r.Body != nil {
		m.Body = *r.Body
	}
	if r.ProfileName != nil {
		m.ProfileName = *r.ProfileName
	}
	if r.SentBy != nil {
		m.SentBy = *r.SentBy
	}
	m.ResendOf = r.ResendOf
	if len(r.Template) > 0 {
		// Written by InsertReplies from a TemplateRef, so it parses; a
		// row that did not would send as plain text, which the window
		// check then refuses with its reason.
		var t models.TemplateRef
		if json.Unmarshal(r.Template, &t) == nil {
			m.Template = &t
		}
	}
	return m
}

// MessageStore keeps messages, sealed, with a word index of their bodies.
type MessageStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
}

// NewMessageStore returns the message store.
func NewMessageStore(db *DB, c Crypto) *MessageStore {
	crypt.RegisterGORMSerializer()
	return &MessageStore{db: db, crypto: c, ids: db.allocator("messages")}
}

// NumberReplies gives the outbound messages that have none their ids, in
// order, so they can be referred to before InsertReplies writes them.
func (s *MessageStore) NumberReplies(ctx context.Context, tx *gorm.DB, msgs []*models.Message) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	for _, m := range msgs {
		if m.ID != 0 {
			continue
		}
		id, err := s.ids.Next(ctx, g)
		if err != nil {
			return dbError(err, "Message")
		}
		m.ID = id
	}
	return nil
}

// InsertReplies stores outbound messages (sealed) and their word index
// with two statements however many there are, setting each one's ID
// (unless NumberReplies did) and CreatedAt. They are placed in their
// contacts' conversations in the order given, after every message
// committed before (the rows are written in order and each takes seq from
// the column's default: see order.go). It runs in tx when given, else in a
// transaction of its own.
func (s *MessageStore) InsertReplies(ctx context.Context, tx *gorm.DB, msgs []*models.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if tx == nil {
		return gormFor(ctx, s.db, s.crypto, nil).Transaction(func(tx *gorm.DB) error { return s.InsertReplies(ctx, tx, msgs) })
	}
	g := gormFor(ctx, s.db, s.crypto, tx)
	now := time.Now().UTC()
	rows := make([]*messageRow, len(msgs))
	var tokens []int32
	var owners []int64
	if err := s.NumberReplies(ctx, g, msgs); err != nil {
		return err
	}
	for i, m := range msgs {
		id := m.ID
		rows[i] = &messageRow{
			ID: id, ContactID: m.ContactID, ConversationID: m.ConversationID, Direction: string(models.Outbound),
			Channel: string(m.Channel), Provider: m.Provider, Body: &m.Body, Status: string(m.Status), CreatedAt: now,
		}
		if m.SentBy != "" {
			rows[i].SentBy = &m.SentBy
		}
		if m.Template != nil {
			t, err := json.Marshal(m.Template)
			if err != nil {
				return err
			}
			rows[i].Template = t
		}
		for _, t := range s.crypto.Index.Tokens(crypt.DomainBody, m.Body) {
			tokens, owners = append(tokens, t), append(owners, id)
		}
	}
	if err := g.Create(rows).Error; err != nil {
		return dbError(err, "Message")
	}
	if err := insertWordPairs(g, tokens, owners, false); err != nil {
		return err
	}
	for i, m := range msgs {
		m.ID, m.CreatedAt, m.Direction = rows[i].ID, now, models.Outbound
	}
	return nil
}

// IndexWords adds the word index of inbound messages written by the
// Ingestor, which leaves indexing to the processing job so that the
// platform's acknowledgement waits on as few statements as possible; the
// words of all of them go in with one statement.
func (s *MessageStore) IndexWords(ctx context.Context, tx *gorm.DB, msgs ...*models.Message) error {
	var tokens []int32
	var owners []int64
	for _, m := range msgs {
		for _, t := range s.crypto.Index.Tokens(crypt.DomainBody, m.Body) {
			tokens, owners = append(tokens, t), append(owners, m.ID)
		}
	}
	return insertWordPairs(gormFor(ctx, s.db, s.crypto, tx), tokens, owners, true)
}

// insertWordPairs indexes each token for the message beside it; with
// again it skips pairs already there, as IndexWords has always done for
// inbound messages written earlier. The words of messages written in the
// same transaction (InsertReplies) cannot be there yet, and the check
// costs each row a probe of the index before its insert and a confirmation
// after: a fifth more or worse for forty rows a statement, the words of a
// clinic's two replies (pgbench beside the plain insert, five runs).
func insertWordPairs(g *gorm.DB, tokens []int32, owners []int64, again bool) error {
	if len(tokens) == 0 {
		return nil
	}
	sql := `INSERT INTO message_words (bidx, message_id) SELECT * FROM unnest(?::integer[], ?::bigint[])`
	if again {
		sql += ` ON CONFLICT DO NOTHING`
	}
	err := g.Exec(sql, intArray(tokens), bigintArray(owners)).Error
	return dbError(err, "Word index")
}

// Get returns the message with this id.
func (s *MessageStore) Get(ctx context.Context, id int64) (*models.Message, error) {
	var row messageRow
	if err := gormFor(ctx, s.db, s.crypto, nil).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Message")
	}
	return row.model(), nil
}

// ForContact returns a contact's messages, latest first in the order they
// happened (Seq), placed before the message whose Seq is before (0: from
// the latest), at most limit.
func (s *MessageStore) ForContact(ctx context.Context, contactID, before int64, limit int) ([]*models.Message, error) {
	q := gormFor(ctx, s.db, s.crypto, nil).Where("contact_id = ?", contactID)
	if before > 0 {
		q = q.Where("seq < ?", before)
	}
	var rows []messageRow
	if err := q.Order("seq DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, dbError(err, "Message")
	}
	out := make([]*models.Message, len(rows))
	for i := range rows {
		out[i] = rows[i].model()
	}
	return out, nil
}

// Fingerprint changes whenever a message of the contact is added or
// removed, or the status of one of the 200 latest (by seq) moves: the
// console's live view asks for it, and reads nothing sealed. A message may
// commit after one with a higher seq (its write took its place first), so
// the count is of all the contact's messages (an index-only count on
// (contact_id, seq)) and the latest are hashed by place and status, not by
// status alone: a late commit changes one or the other even when the
// statuses read alike or another message went at the same time.
func (s *MessageStore) Fingerprint(ctx context.Context, contactID int64) (string, error) {
	var fp string
	err := gormFor(ctx, s.db, s.crypto, nil).Raw(`SELECT (SELECT count(*) FROM messages WHERE contact_id = ?)::text || ':' || coalesce(md5(string_agg(seq::text || ':' || status, ',' ORDER BY seq)), '')
		FROM (SELECT seq, status FROM messages WHERE contact_id = ? ORDER BY seq DESC LIMIT 200) m`, contactID, contactID).Scan(&fp).Error
	return fp, dbError(err, "Message")
}

// failedNotResent holds for an outbound message f that failed and was not
// sent again: what staff still have to act on.
const failedNotResent = `f.direction = 'out' AND f.status = 'failed' AND NOT EXISTS (SELECT 1 FROM messages r WHERE r.resend_of = f.id)`

// FailedBetween returns the ids of outbound messages that failed and were
// not sent again, written from since until before until, in the order
// they were written (a contact's are resent in their order), at most
// limit.
func (s *MessageStore) FailedBetween(ctx context.Context, since, until time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := gormFor(ctx, s.db, s.crypto, nil).Raw(`SELECT f.id FROM messages f
		WHERE `+failedNotResent+` AND f.created_at >= ? AND f.created_at < ?
		ORDER BY f.seq LIMIT ?`, since, until, limit).Scan(&ids).Error
	return ids, dbError(err, "Message")
}
