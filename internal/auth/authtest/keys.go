// Package authtest is a stand-in for Supabase Auth (GoTrue) in tests: it
// signs access tokens as a project does and serves its key set at
// /auth/v1/.well-known/jwks.json, with Cache-Control as GoTrue sends it,
// through a key rotation; it answers the password and (single-use)
// refresh grants of /token, /user and /logout with GoTrue's shapes and
// error bodies.
package authtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/internal/auth"
)

// Project is a fake Supabase project's Auth: its keys and its JWKS route.
type Project struct {
	*httptest.Server
	JWTSecret []byte // the legacy HS256 secret

	mu        sync.Mutex
	keys      map[string]any // kid → private key (*ecdsa.PrivateKey, *rsa.PrivateKey)
	current   string         // the kid new tokens are signed with
	set       *jwkset.MemoryJWKSet
	seq       int
	JWKSCalls atomic.Int64 // how often the key set was fetched
	// Down, while set, answers every request 503 as Supabase's gateway does
	// when Auth is down.
	Down atomic.Bool

	users     map[string]*user    // by lower-cased email
	broken    map[string]bool     // user ids whose admin look-up fails (Break)
	sessions  map[string]*session // by session id
	refreshes int
}

// NewProject starts a project with one ES256 key and one RS256 key; the
// ES256 one signs.
func NewProject() *Project {
	p := &Project{JWTSecret: []byte("super-secret-jwt-token-with-at-least-32-characters-long"), keys: map[string]any{}, set: jwkset.NewMemoryStorage(),
		users: map[string]*user{}, sessions: map[string]*session{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/v1/.well-known/jwks.json", p.jwks)
	p.registerGoTrue(mux)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.Down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"message":"name resolution failed"}`))
			return
		}
		mux.ServeHTTP(w, r)
	}))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	p.add(rsaKey, jwkset.AlgRS256)
	p.Rotate()
	return p
}

// Issuer is the iss of the project's tokens.
func (p *Project) Issuer() string { return p.URL + "/auth/v1" }

// JWKSURL is where the project serves its public keys.
func (p *Project) JWKSURL() string { return p.URL + "/auth/v1/.well-known/jwks.json" }

// Rotate adds a new ES256 key and signs with it from now on; the old keys
// stay valid, as during a real rotation. It returns the new kid.
func (p *Project) Rotate() string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	kid := p.add(k, jwkset.AlgES256)
	p.mu.Lock()
	p.current = kid
	p.mu.Unlock()
	return kid
}

func (p *Project) add(key any, alg jwkset.ALG) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	kid := fmt.Sprintf("key-%d", p.seq)
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	}
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig}})
	if err != nil {
		panic(err)
	}
	if err := p.set.KeyWrite(context.Background(), jwk); err != nil {
		panic(err)
	}
	p.keys[kid] = key
	return kid
}

// PublicKeyBytes returns the bytes of the signing key's public half, as an
// attacker would use them as an HMAC secret.
func (p *Project) PublicKeyBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := p.keys[p.current].(*ecdsa.PrivateKey).PublicKey.Bytes()
	return b
}

func (p *Project) jwks(w http.ResponseWriter, r *http.Request) {
	p.JWKSCalls.Add(1)
	body, err := p.set.JSONPublic(r.Context())
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=600")
	_, _ = w.Write(body)
}

// Claims are a fresh access token's claims for user sub, as GoTrue makes
// them: an hour long.
func (p *Project) Claims(sub, email string) auth.Claims {
	now := time.Now()
	return auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: p.Issuer(), Subject: sub, Audience: jwt.ClaimStrings{auth.Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		Email: email, Role: "authenticated", SessionID: "00000000-0000-4000-8000-000000000001",
		AppMetadata: map[string]any{"provider": "email"},
	}
}

// Sign signs claims with the current ES256 key.
func (p *Project) Sign(c auth.Claims) string { return p.SignWith(c, "") }

// SignWith signs claims with the key kid ("" the current one): ES256 or
// RS256 by the key's kind.
func (p *Project) SignWith(c auth.Claims, kid string) string {
	p.mu.Lock()
	if kid == "" {
		kid = p.current
	}
	key := p.keys[kid]
	p.mu.Unlock()
	var method jwt.SigningMethod = jwt.SigningMethodES256
	if _, ok := key.(*rsa.PrivateKey); ok {
		method = jwt.SigningMethodRS256
	}
	t := jwt.NewWithClaims(method, c)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// SignHS256 signs claims the legacy way, with the project's JWT secret.
func (p *Project) SignHS256(c auth.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(p.JWTSecret)
	if err != nil {
		panic(err)
	}
	return s
}

// RSAKeyID is the kid of the project's RS256 key.
func (p *Project) RSAKeyID() string { return "key-1" }
