package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// AuditStore appends to the audit log. Each entry's hash covers the one
// before it and the entry's plaintext, so a removed or edited entry breaks
// the chain; details are sealed like any personal data.
type AuditStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
}

// NewAuditStore returns the audit store.
func NewAuditStore(db *DB, c Crypto) *AuditStore {
	return &AuditStore{db: db, crypto: c, ids: db.allocator("audit_events")}
}

// Append adds e to the log inside tx, so it commits with what it records.
// Entries take their place in the chain (seq) under a lock held to the
// end of tx, so appends from any number of instances form one chain.
func (s *AuditStore) Append(ctx context.Context, tx *gorm.DB, e *models.AuditEvent) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	if err := g.Exec("SELECT pg_advisory_xact_lock(?)", auditLock).Error; err != nil {
		return dbError(err, "Audit")
	}
	var last struct {
		Seq  int64
		Hash []byte
	}
	if err := g.Raw("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").Scan(&last).Error; err != nil {
		return dbError(err, "Audit")
	}
	id, err := s.ids.Next(ctx, g)
	if err != nil {
		return dbError(err, "Audit")
	}
	details, err := json.Marshal(e.Details)
	if err != nil {
		return models.Wrap(err, models.EINTERNAL, "Audit details cannot be stored.")
	}
	e.ID, e.At = id, time.Now().UTC().Truncate(time.Microsecond)
	var actor any
	if e.ActorID != "" {
		actor = e.ActorID
	}
	sealed := s.crypto.Ring.Encrypt(details, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
	err = g.Exec(`INSERT INTO audit_events (id, seq, at, actor_id, actor_role, action, subject_type, subject_id, request_id, ip, details_enc, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, last.Seq+1, e.At, actor, string(e.ActorRole), e.Action, e.SubjectType, e.SubjectID,
		e.RequestID, e.IP, sealed, last.Hash, chainHash(last.Hash, e, details)).Error
	return dbError(err, "Audit")
}

// Record appends e in a transaction of its own: for events that change
// nothing else (a sign-in, a read of decrypted data).
func (s *AuditStore) Record(ctx context.Context, e *models.AuditEvent) error {
	return s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.Append(ctx, tx, e) })
}

// auditLock is the advisory lock key that serialises appends to the chain.
const auditLock = 7212002

// chainHash is an entry's hash: the previous entry's hash and the entry's
// plaintext, each part length-prefixed so no two entries hash alike. The
// role, request id and address came later: entries without any hash as
// those before them did.
func chainHash(prev []byte, e *models.AuditEvent, details []byte) []byte {
	h := sha256.New()
	parts := [][]byte{prev, []byte(e.At.Format(time.RFC3339Nano)), []byte(e.ActorID), []byte(e.Action), []byte(e.SubjectType), []byte(e.SubjectID), details}
	if e.ActorRole != "" || e.RequestID != "" || e.IP != "" {
		parts = append(parts, []byte(e.ActorRole), []byte(e.RequestID), []byte(e.IP))
	}
	for _, part := range parts {
		h.Write([]byte(strconv.Itoa(len(part)) + ":"))
		h.Write(part)
	}
	return h.Sum(nil)
}

// Verify walks the whole chain in order and checks that every entry links
// to the one before it and that its hash matches its contents. It returns
// how many entries it checked; a broken chain is an EINTERNAL error naming
// the first entry (by seq) that does not hold.
func (s *AuditStore) Verify(ctx context.Context) (int, error) {
	g := gormFor(ctx, s.db, s.crypto, nil)
	var prev []byte
	var after int64
	checked := 0
	for {
		var rows []auditRow
		if err := g.Raw(`SELECT id, seq, at, coalesce(actor_id::text, '') AS actor_id, actor_role, action, subject_type, subject_id, request_id, ip,
				details_enc, prev_hash, hash
			FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 500`, after).Scan(&rows).Error; err != nil {
			return checked, dbError(err, "Audit")
		}
		if len(rows) == 0 {
			return checked, nil
		}
		for _, r := range rows {
			broken := func(why string) error {
				return models.Errorf(models.EINTERNAL, "The audit chain is broken at entry %d: %s.", r.Seq, why)
			}
			if r.Seq != after+1 {
				return checked, broken(fmt.Sprintf("entry %d is missing", after+1))
			}
			if !bytes.Equal(r.PrevHash, prev) {
				return checked, broken("it does not link to the entry before it")
			}
			details, err := s.crypto.Ring.Decrypt(r.DetailsEnc, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: r.ID})
			if err != nil {
				return checked, broken("its details do not open")
			}
			e := &models.AuditEvent{At: r.At.UTC(), ActorID: r.ActorID, ActorRole: models.Role(r.ActorRole), Action: r.Action,
				SubjectType: r.SubjectType, SubjectID: r.SubjectID, RequestID: r.RequestID, IP: r.IP}
			if !bytes.Equal(chainHash(r.PrevHash, e, details), r.Hash) {
				return checked, broken("its contents do not match its hash")
			}
			prev, after = r.Hash, r.Seq
			checked++
		}
	}
}

type auditRow struct {
	ID          int64
	Seq         int64
	At          time.Time
	ActorID     string
	ActorRole   string
	Action      string
	SubjectType string
	SubjectID   string
	RequestID   string
	IP          string
	DetailsEnc  []byte
	PrevHash    []byte
	Hash        []byte
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
