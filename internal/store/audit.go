package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// AuditStore appends to the audit log. Each entry's MAC covers the one
// before it and the entry's plaintext, under a key the database does not
// hold, so a removed, edited or rewritten entry breaks the chain; details
// are sealed like any personal data.
type AuditStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
	// Now stamps entries and places reads in their window (time.Now when
	// nil); tests move it instead of waiting.
	Now func() time.Time
}

// NewAuditStore returns the audit store.
func NewAuditStore(db *DB, c Crypto) *AuditStore {
	return &AuditStore{db: db, crypto: c, ids: db.allocator("audit_events")}
}

func (s *AuditStore) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// Append adds e to the log inside tx, so it commits with what it records,
// or in a transaction of its own when tx is nil. Entries take their place
// in the chain (seq) under a lock held to the end of the transaction, so
// appends from any number of instances form one chain.
func (s *AuditStore) Append(ctx context.Context, tx *gorm.DB, e *models.AuditEvent) error {
	if tx == nil {
		// Outside a transaction the lock would end with its own
		// statement, before the head is read.
		return s.Within(ctx, e, nil)
	}
	g := gormFor(ctx, s.db, s.crypto, tx)
	if err := g.Exec("SELECT pg_advisory_xact_lock(?)", auditLock).Error; err != nil {
		return dbError(err, "Audit")
	}
	var head chainHead
	if err := g.Raw(`SELECT seq, hash, keyed FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&head).Error; err != nil {
		return dbError(err, "Audit")
	}
	if head.Seq > 0 && !head.Keyed {
		// The head is plain: written before migration 00026, by this
		// release's predecessor. Mark where the plain entries end with the
		// key before the first keyed entry; from then on the database
		// refuses the predecessor's plain appends.
		marker := &models.AuditEvent{Action: KeyedAction, SubjectType: "audit", SubjectID: "chain",
			Details: map[string]any{"unkeyed": head.Seq}}
		var err error
		if head, err = s.insert(ctx, g, head, marker); err != nil {
			return err
		}
	}
	_, err := s.insert(ctx, g, head, e)
	return err
}

// KeyedAction is the entry that marks where a log written before the chain
// was keyed starts being keyed: its details hold how many entries before it
// are plain SHA-256, and its MAC covers that, so the boundary cannot move
// without the key.
const KeyedAction = "audit.keyed"

// chainHead is the last entry of the chain, as the next one links to it.
type chainHead struct {
	Seq   int64
	Hash  []byte
	Keyed bool
}

// insert writes e, keyed, after head under the chain's lock, and returns
// the new head.
func (s *AuditStore) insert(ctx context.Context, g *gorm.DB, head chainHead, e *models.AuditEvent) (chainHead, error) {
	id, err := s.ids.Next(ctx, g)
	if err != nil {
		return head, dbError(err, "Audit")
	}
	details, err := json.Marshal(e.Details)
	if err != nil {
		return head, models.Wrap(err, models.EINTERNAL, "Audit details cannot be stored.")
	}
	e.ID, e.At = id, s.now()
	var actor any
	if e.ActorID != "" {
		actor = e.ActorID
	}
	next := chainHead{Seq: head.Seq + 1, Hash: s.chainHash(true, head.Hash, e, details), Keyed: true}
	sealed := s.crypto.Ring.Encrypt(details, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
	err = g.Exec(`INSERT INTO audit_events (id, seq, at, actor_id, actor_role, action, subject_type, subject_id, request_id, ip, details_enc, prev_hash, hash, keyed)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, true)`, id, next.Seq, e.At, actor, string(e.ActorRole), e.Action, e.SubjectType, e.SubjectID,
		e.RequestID, e.IP, sealed, head.Hash, next.Hash).Error
	return next, dbError(err, "Audit")
}

// Record appends e in a transaction of its own: for events that change
// nothing else (a sign-in, a read of decrypted data). A read (ReadActions)
// is recorded once per staff member, subject and ReadWindow: a page that
// refetches every few seconds leaves one entry, not hundreds.
func (s *AuditStore) Record(ctx context.Context, e *models.AuditEvent) error {
	if !ReadActions[e.Action] || e.ActorID == "" {
		return s.Within(ctx, e, nil)
	}
	// Asked first without the chain's lock: the common answer (already
	// recorded) costs one index probe and blocks no one.
	if seen, err := s.readSeen(ctx, nil, e); err != nil || seen {
		return err
	}
	return s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(?)", auditLock).Error; err != nil {
			return dbError(err, "Audit")
		}
		// Asked again under the lock: another instance may have just
		// recorded it, and the database, not this process, decides.
		if seen, err := s.readSeen(ctx, tx, e); err != nil || seen {
			return err
		}
		return s.Append(ctx, tx, e)
	})
}

// Within runs change and appends e in one transaction: both happen or
// neither does, so nothing audited happens unrecorded. change may be nil.
func (s *AuditStore) Within(ctx context.Context, e *models.AuditEvent, change func(tx *gorm.DB) error) error {
	return s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if change != nil {
			if err := change(tx); err != nil {
				return err
			}
		}
		return s.Append(ctx, tx, e)
	})
}

// ReadActions are the audited reads recorded once per staff member,
// subject and ReadWindow, so the log answers "who looked at this person"
// at a glance.
var ReadActions = map[string]bool{"contact.view": true, "conversation.view": true, "media.view": true, "notes.view": true}

// ReadWindow is how long one recorded read stands for the same staff
// member reading the same subject again.
const ReadWindow = 10 * time.Minute

// readSeen reports whether e's actor read e's subject within ReadWindow.
func (s *AuditStore) readSeen(ctx context.Context, tx *gorm.DB, e *models.AuditEvent) (bool, error) {
	var seen bool
	err := gormFor(ctx, s.db, s.crypto, tx).Raw(`SELECT EXISTS (SELECT 1 FROM audit_events WHERE actor_id = ? AND action = ?
			AND subject_type = ? AND subject_id = ? AND at > ?)`, e.ActorID, e.Action, e.SubjectType, e.SubjectID, s.now().Add(-ReadWindow)).
		Scan(&seen).Error
	return seen, dbError(err, "Audit")
}

// AuditQuery picks audit entries; every part given must match.
type AuditQuery struct {
	ActorEmail  string    // the staff member who acted; "" for anyone
	Action      string    // e.g. staff.role_change; a prefix ending in "." takes the group (staff.)
	SubjectType string    // "" for any
	SubjectID   string    // "" for any
	Since       time.Time // zero: no lower bound (inclusive)
	Until       time.Time // zero: no upper bound (exclusive)
	Before      int64     // keyset cursor: entries with a smaller seq; 0 from the newest
	Limit       int       // 1–200, default 50
}

// AuditEntry is an audit event as read back, with its place in the chain
// and the actor's email when they are still on the staff.
type AuditEntry struct {
	models.AuditEvent
	Seq        int64
	ActorEmail string
}

// List returns audit entries, newest first, details decrypted.
func (s *AuditStore) List(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit <= 0 || q.Limit > 200 {
		q.Limit = 50
	}
	where, args := []string{"TRUE"}, []any{}
	add := func(clause string, arg any) { where, args = append(where, clause), append(args, arg) }
	if q.ActorEmail != "" {
		add("lower(u.email) = lower(?)", q.ActorEmail)
	}
	switch {
	case strings.HasSuffix(q.Action, "."):
		add("a.action LIKE ?", likeEscaper.Replace(q.Action)+"%")
	case q.Action != "":
		add("a.action = ?", q.Action)
	}
	if q.SubjectType != "" {
		add("a.subject_type = ?", q.SubjectType)
	}
	if q.SubjectID != "" {
		add("a.subject_id = ?", q.SubjectID)
	}
	if !q.Since.IsZero() {
		add("a.at >= ?", q.Since)
	}
	if !q.Until.IsZero() {
		add("a.at < ?", q.Until)
	}
	if q.Before > 0 {
		add("a.seq < ?", q.Before)
	}
	var rows []struct {
		ID, Seq                                                       int64
		At                                                            time.Time
		ActorID, ActorRole, Action, SubjectType, SubjectID, RequestID string
		IP, ActorEmail                                                string
		DetailsEnc                                                    []byte
	}
	err := gormFor(ctx, s.db, s.crypto, nil).Raw(`SELECT a.id, a.seq, a.at, coalesce(a.actor_id::text, '') AS actor_id, a.actor_role, a.action,
			a.subject_type, a.subject_id, a.request_id, a.ip, a.details_enc, coalesce(u.email, '') AS actor_email
		FROM audit_events a LEFT JOIN staff_users u ON u.id = a.actor_id
		WHERE `+strings.Join(where, " AND ")+` ORDER BY a.seq DESC LIMIT ?`, append(args, q.Limit)...).Scan(&rows).Error
	if err != nil {
		return nil, dbError(err, "Audit")
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = AuditEntry{Seq: r.Seq, ActorEmail: r.ActorEmail, AuditEvent: models.AuditEvent{ID: r.ID, At: r.At, ActorID: r.ActorID,
			ActorRole: models.Role(r.ActorRole), Action: r.Action, SubjectType: r.SubjectType, SubjectID: r.SubjectID, RequestID: r.RequestID, IP: r.IP}}
		if len(r.DetailsEnc) == 0 {
			continue
		}
		plain, err := s.crypto.Ring.Decrypt(r.DetailsEnc, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: r.ID})
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(plain, &out[i].Details); err != nil {
			return nil, models.Errorf(models.EINTERNAL, "Audit entry %d holds details that do not read.", r.Seq)
		}
	}
	return out, nil
}

// likeEscaper makes text match itself alone in a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)
