package main

import (
	"context"
	"fmt"

	"github.com/gorilla/securecookie"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

// newAccess wires staff authentication for the configured mode: Supabase
// Auth's tokens checked against the project's key set (and its legacy
// secret, when given), or the local provider's.
func newAccess(ctx context.Context, cfg *config.Config, db *store.DB, c store.Crypto) (*handlers.Access, error) {
	staff := store.NewStaffStore(db)
	a := &handlers.Access{Staff: staff, Audit: store.NewAuditStore(db, c)}
	vc := auth.VerifierConfig{}
	switch cfg.AuthMode {
	case "supabase":
		vc.Issuer = cfg.SupabaseURL + "/auth/v1"
		keys, err := auth.JWKS(context.WithoutCancel(ctx), vc.Issuer+"/.well-known/jwks.json", nil)
		if err != nil {
			return nil, err
		}
		vc.Keys = keys
		if cfg.SupabaseJWTSecret != "" {
			vc.HS256Secret = []byte(cfg.SupabaseJWTSecret)
		}
		if cfg.SupabaseServiceRoleKey != "" {
			a.Remote = auth.NewGoTrue(cfg.SupabaseURL, cfg.SupabaseAnonKey, nil).Admin(cfg.SupabaseServiceRoleKey)
		}
	default:
		issuer, err := localIssuer(cfg)
		if err != nil {
			return nil, err
		}
		vc.Issuer, vc.Keys = localIssuerURL(cfg), issuer.Keys()
		a.Local = &handlers.LocalProvider{Issuer: issuer, Directory: staff, Guard: signInGuard(db, c)}
	}
	v, err := auth.NewVerifier(vc)
	if err != nil {
		return nil, err
	}
	a.Verifier = v
	return a, nil
}

// newConsole wires the console's sign-in over access: sessions kept in the
// database, the cookie sealed with PARLEY_SESSION_KEYS (the first pair
// signs, all verify).
func newConsole(cfg *config.Config, db *store.DB, c store.Crypto, access *handlers.Access, dev bool) (*handlers.Console, error) {
	var codecs []securecookie.Codec
	for _, p := range cfg.SessionKeys {
		codecs = append(codecs, securecookie.New(p.HashKey, p.BlockKey))
	}
	if len(codecs) == 0 {
		return nil, fmt.Errorf("the console needs PARLEY_SESSION_KEYS")
	}
	console := &handlers.Console{
		Access: access, Sessions: store.NewSessionStore(db, c), Codecs: codecs,
		CSRFKey: cfg.SessionKeys[0].HashKey, Secure: !dev,
		Idle: cfg.SessionIdle, Absolute: cfg.SessionAbsolute,
	}
	switch {
	case access.Local != nil:
		console.Provider = handlers.LocalSignIn{LocalProvider: access.Local, Staff: access.Staff}
	default:
		console.Provider = handlers.SupabaseSignIn{Client: auth.NewGoTrue(cfg.SupabaseURL, cfg.SupabaseAnonKey, nil), Staff: access.Staff, Guard: signInGuard(db, c)}
	}
	return console, nil
}

// signInGuard limits failed sign-ins with counts kept in the database, so
// every instance shares them.
func signInGuard(db *store.DB, c store.Crypto) *auth.Guard {
	return auth.NewGuard().WithLog(store.NewSignInThrottle(db, c))
}

// localIssuerURL is the iss of the local provider's tokens.
func localIssuerURL(cfg *config.Config) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL + "/auth/v1"
	}
	return "parley-local/auth/v1"
}

// localIssuer signs the local provider's tokens under a key derived from
// the first session key, which every instance shares.
func localIssuer(cfg *config.Config) (*auth.LocalIssuer, error) {
	if len(cfg.SessionKeys) == 0 {
		return nil, fmt.Errorf("local sign-in needs PARLEY_SESSION_KEYS")
	}
	return auth.NewLocalIssuer(localIssuerURL(cfg), cfg.SessionKeys[0].HashKey, 0)
}

// supabaseUsers is Supabase Auth for the pipeline's sign-in upkeep
// (sign-outs retried, staff re-checked); nil outside Supabase mode.
func supabaseUsers(cfg *config.Config) pipeline.SupabaseUsers {
	if cfg.AuthMode != "supabase" {
		return nil
	}
	g := auth.NewGoTrue(cfg.SupabaseURL, cfg.SupabaseAnonKey, nil)
	u := auth.SupabaseUsers{Auth: g}
	if cfg.SupabaseServiceRoleKey != "" {
		u.Admin = g.Admin(cfg.SupabaseServiceRoleKey)
	}
	return u
}
