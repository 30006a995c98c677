package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// StartKeyTTL is how long an idempotency key of a started conversation is
// kept: a retry within it answers the first result.
const StartKeyTTL = 24 * time.Hour

// MaxStartKey is the longest idempotency key accepted.
const MaxStartKey = 255

// StartKeys keeps the idempotency keys of conversations started by staff
// or the API (start_keys), so a retried request starts one conversation.
type StartKeys struct {
	db     *DB
	crypto Crypto
}

// NewStartKeys returns the store of start idempotency keys.
func NewStartKeys(db *DB, c Crypto) *StartKeys { return &StartKeys{db: db, crypto: c} }

// Fingerprint is a keyed hash of a request's canonical form (it names a
// phone number, so it is never kept in the clear).
func (s *StartKeys) Fingerprint(request any) ([]byte, error) {
	b, err := json.Marshal(request)
	if err != nil {
		return nil, models.Wrap(err, models.EINTERNAL, "The request cannot be fingerprinted.")
	}
	return s.mac("request", string(b)), nil
}

// stored is how a client's key is kept: keyed-hashed, since a client may
// put anything in it (a booking reference, a number).
func (s *StartKeys) stored(key string) string { return hex.EncodeToString(s.mac("key", key)) }

// mac is the whole HMAC of a labelled value under the audit text key.
func (s *StartKeys) mac(label, value string) []byte {
	h := s.crypto.Index.MAC(crypt.DomainAuditText)
	h.Write([]byte("start_keys." + label + "\x00" + value))
	return h.Sum(nil)
}

// Claim takes key for scope inside tx, or finds it taken. With found
// false the caller does the work and calls Complete in the same tx (a
// rollback frees the key: a refused or failed start is not remembered,
// and its retry is asked again). With found true, result holds the first
// request's answer (JSON); the same key with another request is
// ECONFLICT. A request racing one with the same key waits for its commit
// (the row's unique check) and then finds its result. A key older than
// StartKeyTTL is taken afresh.
func (s *StartKeys) Claim(ctx context.Context, tx *gorm.DB, scope, key string, fingerprint []byte) (result []byte, found bool, err error) {
	g, key := tx.WithContext(ctx), s.stored(key)
	if err := g.Exec(`DELETE FROM start_keys WHERE scope = ? AND key = ? AND created_at < ?`, scope, key, time.Now().Add(-StartKeyTTL)).Error; err != nil {
		return nil, false, dbError(err, "Idempotency key")
	}
	ins := g.Exec(`INSERT INTO start_keys (scope, key, fingerprint) VALUES (?, ?, ?) ON CONFLICT (scope, key) DO NOTHING`, scope, key, fingerprint)
	if ins.Error != nil {
		return nil, false, dbError(ins.Error, "Idempotency key")
	}
	if ins.RowsAffected == 1 {
		return nil, false, nil
	}
	var row struct {
		Fingerprint []byte
		Result      []byte
	}
	if err := g.Raw(`SELECT fingerprint, result FROM start_keys WHERE scope = ? AND key = ?`, scope, key).Scan(&row).Error; err != nil {
		return nil, false, dbError(err, "Idempotency key")
	}
	if !bytes.Equal(row.Fingerprint, fingerprint) {
		return nil, false, models.Errorf(models.ECONFLICT, "This Idempotency-Key was used with another request; use a new key for a new request.")
	}
	return row.Result, true, nil
}

// Complete records the result of the request that claimed key, in the
// claim's transaction.
func (s *StartKeys) Complete(ctx context.Context, tx *gorm.DB, scope, key string, result []byte) error {
	err := tx.WithContext(ctx).Exec(`UPDATE start_keys SET result = ?::jsonb WHERE scope = ? AND key = ?`, string(result), scope, s.stored(key)).Error
	return dbError(err, "Idempotency key")
}

// Sweep removes keys older than StartKeyTTL, and says how many.
func (s *StartKeys) Sweep(ctx context.Context) (int64, error) {
	res := s.db.Gorm.WithContext(ctx).Exec(`DELETE FROM start_keys WHERE created_at < ?`, time.Now().Add(-StartKeyTTL))
	return res.RowsAffected, dbError(res.Error, "Idempotency key")
}
