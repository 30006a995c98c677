package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strconv"
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
	return &AuditStore{db: db, crypto: c, ids: newIDAllocator("audit_events")}
}

// Append adds e to the log inside tx, so it commits with what it records.
func (s *AuditStore) Append(ctx context.Context, tx *gorm.DB, e *models.AuditEvent) error {
	g := gormFor(ctx, s.db, s.crypto, tx)
	// One writer at a time extends the chain.
	if err := g.Exec("SELECT pg_advisory_xact_lock(7212002)").Error; err != nil {
		return dbError(err, "Audit")
	}
	var prev []byte
	if err := g.Raw("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1").Scan(&prev).Error; err != nil {
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
	h := sha256.New()
	for _, part := range [][]byte{prev, []byte(e.At.Format(time.RFC3339Nano)), []byte(e.ActorID), []byte(e.Action), []byte(e.SubjectType), []byte(e.SubjectID), details} {
		h.Write([]byte(strconv.Itoa(len(part)) + ":"))
		h.Write(part)
	}
	var actor any
	if e.ActorID != "" {
		actor = e.ActorID
	}
	sealed := s.crypto.Ring.Encrypt(details, crypt.Ref{Table: "audit_events", Column: "details_enc", ID: id})
	err = g.Exec(`INSERT INTO audit_events (id, at, actor_id, action, subject_type, subject_id, details_enc, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, e.At, actor, e.Action, e.SubjectType, e.SubjectID, sealed, prev, h.Sum(nil)).Error
	return dbError(err, "Audit")
}
