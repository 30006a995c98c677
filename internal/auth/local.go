package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/parley-chat/parley/models"
)

// LocalIssuer signs access tokens for the local development provider
// (PARLEY_AUTH_MODE=local) with the claims Supabase Auth gives, under an
// ES256 key whose public half it serves as a JWKS, so the one Verifier
// checks tokens of both modes.
type LocalIssuer struct {
	issuer string
	key    *ecdsa.PrivateKey
	kid    string
	keys   *jwkset.MemoryJWKSet
	ttl    time.Duration
	now    func() time.Time
}

// NewLocalIssuer derives the signing key from seed (a secret of at least
// 32 bytes that every instance shares, such as the first session key), so
// tokens outlive a restart and any instance verifies another's. Tokens
// name issuer as their iss and last ttl (an hour when zero).
func NewLocalIssuer(issuer string, seed []byte, ttl time.Duration) (*LocalIssuer, error) {
	if len(seed) < 32 {
		return nil, errors.New("auth: the local signing seed must be at least 32 bytes")
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	var key *ecdsa.PrivateKey
	for i := 0; key == nil; i++ {
		// A 32-byte scalar is below P-256's order all but once in 2^32
		// tries; the counter moves past such a one.
		raw, err := hkdf.Key(sha256.New, seed, nil, fmt.Sprintf("parley local auth ES256 signing key %d", i), 32)
		if err != nil {
			return nil, err
		}
		key, _ = ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	l := &LocalIssuer{issuer: issuer, key: key, kid: hex.EncodeToString(sum[:8]), keys: jwkset.NewMemoryStorage(), ttl: ttl, now: time.Now}
	jwk, err := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		KID: l.kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig,
	}})
	if err != nil {
		return nil, err
	}
	if err := l.keys.KeyWrite(context.Background(), jwk); err != nil {
		return nil, err
	}
	return l, nil
}

// Keys is the issuer's public key set, for the Verifier.
func (l *LocalIssuer) Keys() jwkset.Storage { return l.keys }

// JWKS is the public key set as served at /auth/v1/.well-known/jwks.json.
func (l *LocalIssuer) JWKS(ctx context.Context) ([]byte, error) { return l.keys.JSONPublic(ctx) }

// Issue returns an access token for the staff member, for session, and
// when it expires.
func (l *LocalIssuer) Issue(u *models.StaffUser, session string) (string, time.Time, error) {
	now := l.now()
	exp := now.Add(l.ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: l.issuer, Subject: u.ID, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp), ID: uuid.NewString(),
		},
		Email: u.Email, Role: "authenticated", SessionID: session,
		AppMetadata: map[string]any{"provider": "email", "role": string(u.Role)},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = l.kid
	signed, err := t.SignedString(l.key)
	return signed, exp, err
}
