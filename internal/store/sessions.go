package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/crypt"
	"github.com/parley-chat/parley/models"
)

// Session is a console sign-in: whose, the provider's tokens, and its age.
type Session struct {
	ID              int64
	UserID          string
	AccessToken     string
	RefreshToken    string
	AccessExpiresAt time.Time
	CreatedAt       time.Time
	LastSeenAt      time.Time
	Revoked         bool
}

// SessionStore keeps console sessions; their tokens are sealed, and the
// name the browser holds is stored only as a hash.
type SessionStore struct {
	db     *DB
	crypto Crypto
	ids    *idAllocator
}

// NewSessionStore returns the session store.
func NewSessionStore(db *DB, c Crypto) *SessionStore {
	return &SessionStore{db: db, crypto: c, ids: db.allocator("staff_sessions")}
}

func sessionHash(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

func (s *SessionStore) seal(id int64, column, v string) []byte {
	if v == "" {
		return nil
	}
	return s.crypto.Ring.EncryptString(v, crypt.Ref{Table: "staff_sessions", Column: column, ID: id})
}

// open reads a sealed token back ("" for none).
func (s *SessionStore) open(id int64, column string, sealed []byte) (string, error) {
	if sealed == nil {
		return "", nil
	}
	return s.crypto.Ring.DecryptString(sealed, crypt.Ref{Table: "staff_sessions", Column: column, ID: id})
}

// Create starts a session for userID with the provider's tokens and
// returns the name the browser keeps (32 random bytes).
func (s *SessionStore) Create(ctx context.Context, userID, access, refresh string, expires time.Time) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	name := base64.RawURLEncoding.EncodeToString(raw)
	g := s.db.Gorm.WithContext(ctx)
	id, err := s.ids.Next(ctx, g)
	if err != nil {
		return "", dbError(err, "Session")
	}
	err = g.Exec(`INSERT INTO staff_sessions (id, token_hash, user_id, access_token_enc, refresh_token_enc, access_expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, id, sessionHash(name), userID, s.seal(id, "access_token_enc", access), s.seal(id, "refresh_token_enc", refresh), expires).Error
	return name, dbError(err, "Session")
}

// Lookup returns the session a browser names. ENOTFOUND when there is none.
func (s *SessionStore) Lookup(ctx context.Context, name string) (*Session, error) {
	var row struct {
		ID              int64
		UserID          string
		AccessTokenEnc  []byte
		RefreshTokenEnc []byte
		AccessExpiresAt time.Time
		CreatedAt       time.Time
		LastSeenAt      time.Time
		RevokedAt       *time.Time
	}
	err := s.db.Gorm.WithContext(ctx).Raw(`SELECT id, user_id, access_token_enc, refresh_token_enc, access_expires_at, created_at, last_seen_at, revoked_at
		FROM staff_sessions WHERE token_hash = ?`, sessionHash(name)).Scan(&row).Error
	if err != nil {
		return nil, dbError(err, "Session")
	}
	if row.ID == 0 {
		return nil, models.Errorf(models.ENOTFOUND, "Session not found.")
	}
	se := &Session{ID: row.ID, UserID: row.UserID, AccessExpiresAt: row.AccessExpiresAt, CreatedAt: row.CreatedAt, LastSeenAt: row.LastSeenAt, Revoked: row.RevokedAt != nil}
	if se.AccessToken, err = s.open(row.ID, "access_token_enc", row.AccessTokenEnc); err != nil {
		return nil, err
	}
	if se.RefreshToken, err = s.open(row.ID, "refresh_token_enc", row.RefreshTokenEnc); err != nil {
		return nil, err
	}
	return se, nil
}

// Touch records that the session was used now.
func (s *SessionStore) Touch(ctx context.Context, id int64) error {
	return dbError(s.db.Gorm.WithContext(ctx).Exec(`UPDATE staff_sessions SET last_seen_at = now() WHERE id = ?`, id).Error, "Session")
}

// RenewOnce renews a session's tokens with renew (given the refresh token)
// unless another request renewed them meanwhile: the row is locked while
// renew runs, since a provider's refresh token is single-use and a second
// use would end the session. It returns the tokens now in force (access,
// refresh, expiry).
func (s *SessionStore) RenewOnce(ctx context.Context, id int64, fresh time.Duration,
	renew func(refreshToken string) (access, refresh string, expires time.Time, err error)) (string, string, time.Time, error) {
	var access, refresh string
	var expires time.Time
	err := s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row struct {
			AccessTokenEnc  []byte
			RefreshTokenEnc []byte
			AccessExpiresAt time.Time
		}
		if err := tx.Raw(`SELECT access_token_enc, refresh_token_enc, access_expires_at FROM staff_sessions
			WHERE id = ? AND revoked_at IS NULL FOR NO KEY UPDATE`, id).Scan(&row).Error; err != nil {
			return dbError(err, "Session")
		}
		if row.AccessTokenEnc == nil {
			return models.Errorf(models.ENOTFOUND, "Session not found.")
		}
		var err error
		if time.Until(row.AccessExpiresAt) > fresh { // renewed by another request
			access, err = s.open(id, "access_token_enc", row.AccessTokenEnc)
			if err == nil {
				refresh, err = s.open(id, "refresh_token_enc", row.RefreshTokenEnc)
			}
			expires = row.AccessExpiresAt
			return err
		}
		old, err := s.open(id, "refresh_token_enc", row.RefreshTokenEnc)
		if err != nil {
			return err
		}
		if access, refresh, expires, err = renew(old); err != nil {
			return err
		}
		return dbError(tx.Exec(`UPDATE staff_sessions SET access_token_enc = ?, refresh_token_enc = ?, access_expires_at = ?, last_seen_at = now() WHERE id = ?`,
			s.seal(id, "access_token_enc", access), s.seal(id, "refresh_token_enc", refresh), expires, id).Error, "Session")
	})
	return access, refresh, expires, err
}

// Revoke ends a session.
func (s *SessionStore) Revoke(ctx context.Context, id int64) error {
	return dbError(s.db.Gorm.WithContext(ctx).Exec(`UPDATE staff_sessions SET revoked_at = now() WHERE id = ? AND revoked_at IS NULL`, id).Error, "Session")
}

// RevokeUser ends every session of a staff member.
func (s *SessionStore) RevokeUser(ctx context.Context, userID string) error {
	return revokeUserSessions(ctx, s.db.Gorm, userID)
}

func revokeUserSessions(ctx context.Context, tx *gorm.DB, userID string) error {
	err := tx.WithContext(ctx).Exec(`UPDATE staff_sessions SET revoked_at = now() WHERE user_id = ? AND revoked_at IS NULL`, userID).Error
	return dbError(err, "Session")
}

// Tokens returns a session's provider tokens and the access token's expiry,
// revoked or not: a sign-out at the provider that failed is retried with
// them after the session ended here. ENOTFOUND when there is no such
// session.
func (s *SessionStore) Tokens(ctx context.Context, id int64) (access, refresh string, expires time.Time, err error) {
	var row struct {
		AccessTokenEnc  []byte
		RefreshTokenEnc []byte
		AccessExpiresAt time.Time
	}
	if err := s.db.Gorm.WithContext(ctx).Raw(`SELECT access_token_enc, refresh_token_enc, access_expires_at FROM staff_sessions WHERE id = ?`, id).
		Scan(&row).Error; err != nil {
		return "", "", time.Time{}, dbError(err, "Session")
	}
	if row.AccessTokenEnc == nil {
		return "", "", time.Time{}, models.Errorf(models.ENOTFOUND, "Session not found.")
	}
	if access, err = s.open(id, "access_token_enc", row.AccessTokenEnc); err != nil {
		return "", "", time.Time{}, err
	}
	if refresh, err = s.open(id, "refresh_token_enc", row.RefreshTokenEnc); err != nil {
		return "", "", time.Time{}, err
	}
	return access, refresh, row.AccessExpiresAt, nil
}
