package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

type conversationRow struct {
	ID          int64 `gorm:"primaryKey"`
	ContactID   int64
	FlowID      string
	FlowVersion string
	Node        string
	Status      string
	Variables   []byte `gorm:"column:variables_enc;serializer:encrypted"` // JSON
	Retries     int
	Language    string
	Error       string
	WaitSeq     int64
	RemindedSeq int64
	Pending     []byte `gorm:"column:pending_enc;serializer:encrypted"` // JSON
	StartedAt   time.Time
	UpdatedAt   time.Time
	ExpiresAt   *time.Time
	EndedAt     *time.Time
	// NodesVisited is jsonb: an array of node ids, no personal data.
	NodesVisited []string `gorm:"serializer:json"`
	HandoffAt    *time.Time
}

func (conversationRow) TableName() string { return "conversations" }

func (r *conversationRow) model() (*models.Conversation, error) {
	c := &models.Conversation{
		ID: r.ID, ContactID: r.ContactID, FlowID: r.FlowID, FlowVersion: r.FlowVersion, Node: r.Node,
		Status: models.ConversationStatus(r.Status), Retries: r.Retries, Language: r.Language, Error: r.Error,
		WaitSeq: r.WaitSeq, RemindedSeq: r.RemindedSeq, Pending: r.Pending, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt, ExpiresAt: r.ExpiresAt, EndedAt: r.EndedAt,
		Variables: map[string]string{}, NodesVisited: r.NodesVisited, HandoffAt: r.HandoffAt,
	}
	if len(r.Variables) > 0 {
		if err := json.Unmarshal(r.Variables, &c.Variables); err != nil {
			return nil, models.Wrap(err, models.EINTERNAL, "Conversation variables are unreadable.")
		}
	}
	return c, nil
}

// ConversationStore keeps conversations; their variables are sealed.
type ConversationStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
	// pinned holds the flow versions known to be stored (committed):
	// each new conversation need not write its version again.
	pinned sync.Map
}

// NewConversationStore returns the conversation store.
func NewConversationStore(db *DB, c Crypto) *ConversationStore {
	crypt.RegisterGORMSerializer()
	return &ConversationStore{db: db, crypto: c, ids: db.allocator("conversations")}
}

// Open returns the contact's conversation that has not ended, or nil.
func (s *ConversationStore) Open(ctx context.Context, tx *gorm.DB, contactID int64) (*models.Conversation, error) {
	var rows []conversationRow
	err := gormFor(ctx, s.db, s.crypto, tx).Where("contact_id = ? AND status NOT IN ('ended', 'error')", contactID).Limit(1).Find(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, dbError(err, "Conversation")
	}
	return rows[0].model()
}

// Read returns a conversation without locking it.
func (s *ConversationStore) Read(ctx context.Context, id int64) (*models.Conversation, error) {
	var row conversationRow
	if err := gormFor(ctx, s.db, s.crypto, nil).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Conversation")
	}
	return row.model()
}

// WaitSeq reads a conversation's wait_seq, without a lock.
func (s *ConversationStore) WaitSeq(ctx context.Context, id int64) (int64, error) {
	var seq int64
	err := s.db.Pool.QueryRow(ctx, `SELECT wait_seq FROM conversations WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, models.Errorf(models.ENOTFOUND, "Conversation not found.")
	}
	return seq, dbError(err, "Conversation")
}

// Get returns a conversation, locked for the rest of tx.
func (s *ConversationStore) Get(ctx context.Context, tx *gorm.DB, id int64) (*models.Conversation, error) {
	var row conversationRow
	if err := gormFor(ctx, s.db, s.crypto, tx).Clauses(clause.Locking{Strength: "NO KEY UPDATE"}).First(&row, id).Error; err != nil {
		return nil, dbError(err, "Conversation")
	}
	return row.model()
}

// OpenOf returns the conversations of the contacts that have not ended,
// by contact (a contact with none has no entry), with one statement.
func (s *ConversationStore) OpenOf(ctx context.Context, tx *gorm.DB, contactIDs []int64) (map[int64]*models.Conversation, error) {
	var rows []conversationRow
	err := gormFor(ctx, s.db, s.crypto, tx).Where("contact_id = ANY(?::bigint[]) AND status NOT IN ('ended', 'error')", bigintArray(contactIDs)).Find(&rows).Error
	if err != nil {
		return nil, dbError(err, "Conversation")
	}
	out := make(map[int64]*models.Conversation, len(rows))
	for i := range rows {
		c, err := rows[i].model()
		if err != nil {
			return nil, err
		}
		out[c.ContactID] = c
	}
	return out, nil
}

// Save inserts a new conversation (ID 0, setting its ID) or updates one.
func (s *ConversationStore) Save(ctx context.Context, tx *gorm.DB, c *models.Conversation) error {
	created, err := s.Stage(ctx, tx, c)
	if err != nil {
		return err
	}
	if created {
		return s.SaveAll(ctx, tx, []*models.Conversation{c}, nil)
	}
	return s.SaveAll(ctx, tx, nil, []*models.Conversation{c})
}

// Stage readies c to be written by SaveAll, and reports whether it is new:
// a new conversation (ID 0) is given its ID and start; c's time of change
// (and of ending, when it ended) becomes now.
func (s *ConversationStore) Stage(ctx context.Context, tx *gorm.DB, c *models.Conversation) (created bool, err error) {
	now := time.Now().UTC()
	if c.ID == 0 {
		id, err := s.ids.Next(ctx, gormFor(ctx, s.db, s.crypto, tx))
		if err != nil {
			return false, dbError(err, "Conversation")
		}
		c.ID, c.StartedAt, created = id, now, true
	}
	if c.Status == models.ConversationEnded && c.EndedAt == nil {
		c.EndedAt = &now
	}
	c.UpdatedAt = now
	return created, nil
}

// conversationChanges are the columns an update of a conversation writes.
var conversationChanges = []string{"flow_id", "flow_version", "node", "status", "variables_enc", "retries", "language", "error",
	"wait_seq", "reminded_seq", "pending_enc", "updated_at", "expires_at", "ended_at", "nodes_visited", "handoff_at"}

// SaveAll writes conversations Stage readied: the changed with one
// statement, then the created with another (so that one that ended has
// made way for its contact's new one).
func (s *ConversationStore) SaveAll(ctx context.Context, tx *gorm.DB, created, changed []*models.Conversation) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	if len(changed) > 0 {
		rows, err := conversationRows(changed)
		if err != nil {
			return err
		}
		// An upsert of rows that exist: one statement updates them all.
		err = g.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns(conversationChanges)}).Create(rows).Error
		if err != nil {
			return dbError(err, "Conversation")
		}
	}
	if len(created) > 0 {
		rows, err := conversationRows(created)
		if err != nil {
			return err
		}
		if err := g.Create(rows).Error; err != nil {
			return dbError(err, "Conversation")
		}
	}
	return nil
}

func conversationRows(cs []*models.Conversation) ([]*conversationRow, error) {
	rows := make([]*conversationRow, len(cs))
	for i, c := range cs {
		vars, err := json.Marshal(c.Variables)
		if err != nil {
			return nil, models.Wrap(err, models.EINTERNAL, "Conversation variables cannot be stored.")
		}
		rows[i] = &conversationRow{
			ID: c.ID, ContactID: c.ContactID, FlowID: c.FlowID, FlowVersion: c.FlowVersion, Node: c.Node, Status: string(c.Status),
			Variables: vars, Retries: c.Retries, Language: c.Language, Error: c.Error, WaitSeq: c.WaitSeq, RemindedSeq: c.RemindedSeq,
			Pending: c.Pending, StartedAt: c.StartedAt, UpdatedAt: c.UpdatedAt, ExpiresAt: c.ExpiresAt, EndedAt: c.EndedAt,
			NodesVisited: c.NodesVisited, HandoffAt: c.HandoffAt,
		}
		if rows[i].NodesVisited == nil {
			rows[i].NodesVisited = []string{} // the column is NOT NULL
		}
	}
	return rows, nil
}

// PinFlow keeps the source of a flow version a conversation started on.
func (s *ConversationStore) PinFlow(ctx context.Context, tx *gorm.DB, flowID, version, file string, source []byte) error {
	key := flowID + "\x00" + version
	if _, ok := s.pinned.Load(key); ok {
		return nil
	}
	res := gormFor(ctx, s.db, s.crypto, tx).Exec(`INSERT INTO flow_versions (flow_id, version, file, source) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, flowID, version, file, string(source))
	if res.Error != nil {
		return dbError(res.Error, "Flow version")
	}
	if res.RowsAffected == 0 {
		// A conflict: another transaction's row, committed (an insert
		// still in flight would have been waited for). Versions are
		// never deleted.
		s.pinned.Store(key, true)
	}
	return nil
}

// FlowSource returns a pinned flow version's file name and source.
func (s *ConversationStore) FlowSource(ctx context.Context, tx *gorm.DB, flowID, version string) (file string, source []byte, err error) {
	var row struct{ File, Source string }
	err = gormFor(ctx, s.db, s.crypto, tx).Raw(`SELECT file, source FROM flow_versions WHERE flow_id = ? AND version = ?`, flowID, version).Scan(&row).Error
	if err != nil {
		return "", nil, dbError(err, "Flow version")
	}
	if row.Source == "" {
		return "", nil, models.Errorf(models.ENOTFOUND, "Flow version not found.")
	}
	return row.File, []byte(row.Source), nil
}

// Handoff is a conversation waiting for a person, and who has taken it.
type Handoff struct {
	ConversationID int64
	ContactID      int64
	Since          time.Time // when it was handed to a person
	AssignedTo     string    // staff id; "" when nobody has taken it
	AssignedEmail  string
}

// Handoffs lists the conversations handed to a person, the latest hand-off
// first, up to limit, after the conversation before (its hand-off time and
// id, the key the list is in; 0: from the latest). A cursor since erased
// pages from the latest again.
func (s *ConversationStore) Handoffs(ctx context.Context, before int64, limit int) ([]Handoff, error) {
	q := `SELECT c.id AS conversation_id, c.contact_id, coalesce(c.handoff_at, c.updated_at) AS since, coalesce(c.assigned_to::text, '') AS assigned_to,
			coalesce(u.email, '') AS assigned_email
		FROM conversations c LEFT JOIN staff_users u ON u.id = c.assigned_to
		WHERE c.status = 'handoff' AND (? = 0 OR (coalesce(c.handoff_at, c.updated_at), c.id) <
		  (coalesce((SELECT coalesce(handoff_at, updated_at) FROM conversations WHERE id = ?), 'infinity'), ?))
		ORDER BY 3 DESC, c.id DESC LIMIT ?`
	var rows []Handoff
	if err := gormFor(ctx, s.db, s.crypto, nil).Raw(q, before, before, before, limit).Scan(&rows).Error; err != nil {
		return nil, dbError(err, "Conversation")
	}
	return rows, nil
}

// InboxCounts are the inbox's headline numbers.
type InboxCounts struct {
	Active     int64 // conversations a flow is running
	Handoff    int64 // conversations waiting for a person
	Unassigned int64 // of those, not yet taken
	Failed     int64 // conversations (contacts) with failed sends not sent again
}

// Counts returns the inbox's headline numbers.
func (s *ConversationStore) Counts(ctx context.Context) (InboxCounts, error) {
	var n InboxCounts
	err := s.db.Pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM conversations WHERE status = 'active'),
			(SELECT count(*) FROM conversations WHERE status = 'handoff'),
			(SELECT count(*) FROM conversations WHERE status = 'handoff' AND assigned_to IS NULL),
			(SELECT count(DISTINCT f.contact_id) FROM messages f WHERE `+failedNotResent+`)`).
		Scan(&n.Active, &n.Handoff, &n.Unassigned, &n.Failed)
	return n, dbError(err, "Conversation")
}

// Timer is a wait a conversation has pending: a reminder or a time-out,
// and when it comes due.
type Timer struct {
	Input string // remind, expire, or scheduled (a message a schedule node planned)
	At    time.Time
}

// Timers lists the conversation's pending waits, soonest first: the
// queued jobs of its current wait (older ones would change nothing), and
// the messages it planned that have not gone.
func (s *ConversationStore) Timers(ctx context.Context, conversationID int64) ([]Timer, error) {
	rows, err := s.db.Pool.Query(ctx, `SELECT j.args->>'input', j.scheduled_at FROM river_job j
		JOIN conversations c ON c.id = $1
		WHERE j.kind = 'conversation_wait' AND (j.args->>'conversation_id')::bigint = $1
		  AND (j.args->>'seq')::bigint = c.wait_seq AND j.state IN ('scheduled', 'available', 'retryable')
		UNION ALL SELECT 'scheduled', fire_at FROM scheduled_messages WHERE conversation_id = $1 AND status = 'pending'
		ORDER BY 2`, conversationID)
	if err != nil {
		return nil, dbError(err, "Conversation")
	}
	timers, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Timer, error) {
		var t Timer
		return t, r.Scan(&t.Input, &t.At)
	})
	return timers, dbError(err, "Conversation")
}

// Holder returns a conversation's status and the staff member who holds
// it ("" when nobody has taken it). In a transaction its row stays locked
// until tx ends, so that a take or a reply decided on it stands; without
// one it is only read. ENOTFOUND when there is none.
func (s *ConversationStore) Holder(ctx context.Context, tx *gorm.DB, id int64) (models.ConversationStatus, string, error) {
	var rows []struct {
		Status     models.ConversationStatus
		AssignedTo string
	}
	q := `SELECT status, coalesce(assigned_to::text, '') AS assigned_to FROM conversations WHERE id = ?`
	if tx != nil {
		q += ` FOR NO KEY UPDATE`
	}
	err := gormFor(ctx, s.db, s.crypto, tx).Raw(q, id).Scan(&rows).Error
	switch {
	case err != nil:
		return "", "", dbError(err, "Conversation")
	case len(rows) == 0:
		return "", "", models.Errorf(models.ENOTFOUND, "Conversation not found.")
	}
	return rows[0].Status, rows[0].AssignedTo, nil
}

// Release lets go of a conversation's holder, if any: for a conversation
// no longer waiting for a person, so a later hand-off of it is nobody's,
// not its last holder's.
func (s *ConversationStore) Release(ctx context.Context, tx *gorm.DB, id int64) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE conversations SET assigned_to = NULL, assigned_at = NULL WHERE id = ? AND assigned_to IS NOT NULL`, id).Error
	return dbError(err, "Conversation")
}

// Hold gives a conversation nobody holds to a staff member (a pause: the
// one who stopped the bot answers the person). A held one keeps its holder.
func (s *ConversationStore) Hold(ctx context.Context, tx *gorm.DB, id int64, staffID string) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE conversations SET assigned_to = ?, assigned_at = now() WHERE id = ? AND assigned_to IS NULL`, staffID, id).Error
	return dbError(err, "Conversation")
}

// Take assigns a handed-off conversation to a staff member, whoever held
// it (the caller decides who may take it from whom). ENOTFOUND when it is
// not (or no longer) handed off.
func (s *ConversationStore) Take(ctx context.Context, tx *gorm.DB, id int64, staffID string) error {
	res := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE conversations SET assigned_to = ?, assigned_at = now(), `+answeredNow+` WHERE id = ? AND status = 'handoff'`, staffID, id)
	if res.Error != nil {
		return dbError(res.Error, "Conversation")
	}
	if res.RowsAffected == 0 {
		return models.Errorf(models.ENOTFOUND, "This conversation is not waiting for a person.")
	}
	return nil
}

// answeredNow sets when a person first answered the conversation's latest
// hand-off (taken or replied to), unless someone did already: the
// dashboard's hand-off wait runs from handoff_at to it.
const answeredNow = `handoff_answered_at = CASE WHEN handoff_at IS NOT NULL AND (handoff_answered_at IS NULL OR handoff_answered_at < handoff_at)
	THEN now() ELSE handoff_answered_at END`

// Answered records that a person replied in the conversation: the first
// answer to its latest hand-off, unless it was taken or replied to already.
func (s *ConversationStore) Answered(ctx context.Context, tx *gorm.DB, id int64) error {
	err := gormFor(ctx, s.db, s.crypto, tx).Exec(`UPDATE conversations SET `+answeredNow+` WHERE id = ? AND status = 'handoff'`, id).Error
	return dbError(err, "Conversation")
}
