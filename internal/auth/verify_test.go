package auth_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/models"
)

func newVerifier(t *testing.T, p *authtest.Project, hs bool) *auth.Verifier {
	t.Helper()
	keys, err := auth.JWKS(t.Context(), p.JWKSURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.VerifierConfig{Issuer: p.Issuer(), Keys: keys}
	if hs {
		cfg.HS256Secret = p.JWTSecret
	}
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// unsigned is a token with alg "none".
func unsigned(c auth.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err)
	}
	return s
}

func TestVerifier(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	v := newVerifier(t, p, true)
	good := func() auth.Claims { return p.Claims("6f1d0c1e-1111-4c4c-8888-000000000001", "asha@example.org") }
	with := func(edit func(*auth.Claims)) auth.Claims { c := good(); edit(&c); return c }
	hsWithPublicKey := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).SignedString(p.PublicKeyBytes())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	// A token whose header names a kid the project never had.
	unknownKid := func() string {
		parts := strings.Split(p.Sign(good()), ".")
		parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"no-such-key","typ":"JWT"}`))
		return strings.Join(parts, ".")
	}()
	tests := []struct {
		label string
		token string
		ok    bool
	}{
		{"ES256 from the key set", p.Sign(good()), true},
		{"RS256 from the key set", p.SignWith(good(), p.RSAKeyID()), true},
		{"HS256 with the legacy secret", p.SignHS256(good()), true},
		{"expired a moment ago, within the leeway", p.Sign(with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Second)) })), true},
		{"alg none", unsigned(good()), false},
		{"HS256 signed with the public key", hsWithPublicKey, false},
		{"wrong issuer", p.Sign(with(func(c *auth.Claims) { c.Issuer = "https://evil.example/auth/v1" })), false},
		{"wrong audience", p.Sign(with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"anon"} })), false},
		{"expired", p.Sign(with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) })), false},
		{"without exp", p.Sign(with(func(c *auth.Claims) { c.ExpiresAt = nil })), false},
		{"not yet valid", p.Sign(with(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), false},
		{"issued in the future", p.Sign(with(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), false},
		{"without a subject", p.Sign(with(func(c *auth.Claims) { c.Subject = "" })), false},
		{"unknown kid, after a refresh", unknownKid, false},
		{"a signature from another token", strings.Join(append(strings.Split(p.Sign(good()), ".")[:2], strings.Split(p.Sign(with(func(c *auth.Claims) { c.Email = "x" })), ".")[2]), "."), false},
		{"garbage", "not.a.token", false},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), tt.token)
			if tt.ok {
				if err != nil || claims.Subject != "6f1d0c1e-1111-4c4c-8888-000000000001" || claims.Email != "asha@example.org" {
					t.Fatalf("Verify = %+v, %v; want the claims", claims, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", claims)
			}
			if models.ErrorCode(err) != models.EUNAUTHORIZED || models.ErrorMessage(err) != "The access token is not valid." {
				t.Fatalf("err = %v, want EUNAUTHORIZED with nothing more said", err)
			}
		})
	}
}

// Without a legacy secret HS256 is refused outright, whatever signs it.
func TestVerifier_HS256OnlyWithALegacySecret(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	v := newVerifier(t, p, false)
	if _, err := v.Verify(context.Background(), p.SignHS256(p.Claims("u1", "a@example.org"))); err == nil {
		t.Fatal("HS256 accepted without a configured secret")
	}
}

// A project rotates its signing key: tokens under the new kid are accepted
// once the key set is fetched again, and those under the old one still are.
func TestVerifier_FollowsAKeyRotation(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	v := newVerifier(t, p, false)
	old := p.Sign(p.Claims("u1", "a@example.org"))
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	before := p.JWKSCalls.Load()
	p.Rotate()
	if _, err := v.Verify(context.Background(), p.Sign(p.Claims("u1", "a@example.org"))); err != nil {
		t.Fatalf("a token under the new key: %v", err)
	}
	if p.JWKSCalls.Load() == before {
		t.Error("the key set was not fetched again for the unknown kid")
	}
	if _, err := v.Verify(context.Background(), old); err != nil {
		t.Fatalf("a token under the old key after the rotation: %v", err)
	}
}

// The local provider's tokens pass the same verifier.
func TestLocalIssuer_TokensPassTheVerifier(t *testing.T) {
	seed := []byte(strings.Repeat("s", 32))
	l, err := auth.NewLocalIssuer("http://localhost:8080/auth/v1", seed, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: "http://localhost:8080/auth/v1", Keys: l.Keys()})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := l.Issue(&models.StaffUser{ID: "6f1d0c1e-1111-4c4c-8888-000000000002", Email: "admin@example.org", Role: models.RoleAdmin}, "s1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil || c.Subject != "6f1d0c1e-1111-4c4c-8888-000000000002" || c.SessionID != "s1" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// Another instance with the same seed checks it too; another seed not.
	same, _ := auth.NewLocalIssuer("http://localhost:8080/auth/v1", seed, time.Hour)
	other, _ := auth.NewLocalIssuer("http://localhost:8080/auth/v1", []byte(strings.Repeat("t", 32)), time.Hour)
	for _, tt := range []struct {
		issuer *auth.LocalIssuer
		ok     bool
	}{{same, true}, {other, false}} {
		v, _ := auth.NewVerifier(auth.VerifierConfig{Issuer: "http://localhost:8080/auth/v1", Keys: tt.issuer.Keys()})
		if _, err := v.Verify(context.Background(), tok); (err == nil) != tt.ok {
			t.Errorf("verified by an issuer of the same seed %v: err = %v", tt.ok, err)
		}
	}
}

func TestCan_ThePermissionTable(t *testing.T) {
	tests := []struct {
		p     auth.Permission
		roles string // the roles that may, by initial
	}{
		{auth.ReadConversations, "avsg"},
		{auth.RevealPhone, "avsg"},
		{auth.Reply, "asg"},
		{auth.ReplyAnywhere, "as"},
		{auth.TakeOver, "as"},
		{auth.Resend, "asg"},
		{auth.HandoffWork, "asg"},
		{auth.Override, "as"},
		{auth.ReadAudit, "as"},
		{auth.ReadDashboard, "as"},
		{auth.ManageStaff, "a"},
		{auth.ManageKeys, "a"},
		{auth.EraseContacts, "a"},
		{auth.ExportContacts, "a"},
		{auth.ReadTemplates, "as"},
		{auth.Broadcast, "as"},
		{auth.WriteNotes, "asg"},
		{auth.ModerateNotes, "as"},
		{auth.TagConversations, "asg"},
		{auth.ManageReplies, "as"},
	}
	initial := map[models.Role]string{models.RoleAdmin: "a", models.RoleSupervisor: "s", models.RoleAgent: "g", models.RoleViewer: "v"}
	for _, tt := range tests {
		for role, ch := range initial {
			if got, want := auth.Can(role, tt.p), strings.Contains(tt.roles, ch); got != want {
				t.Errorf("Can(%s, %s) = %v, want %v", role, tt.p, got, want)
			}
		}
		if auth.Can("", tt.p) || auth.Can("owner", tt.p) {
			t.Errorf("an unknown role may %s", tt.p)
		}
	}
}

// With Supabase Auth down when the server starts, tokens are refused; once
// it is back they are accepted within a second or two (the key set is
// fetched again on the next token), not after the 30 s between refreshes
// that a loaded key set keeps.
func TestJWKS_ProjectDownAtStartRecoversQuickly(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	p.Down.Store(true)
	keys, err := auth.JWKS(t.Context(), p.JWKSURL(), nil)
	if err != nil {
		t.Fatalf("starting with the project down: %v", err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Issuer: p.Issuer(), Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	token := p.Sign(p.Claims("3c9f6a2e-1d4b-4e8a-9f0c-6b2d7e5a1c3f", "asha@example.org"))
	// Nothing can be said of the token meanwhile: unavailable, not
	// invalid (a console session holding it is kept).
	if _, err := v.Verify(t.Context(), token); models.ErrorCode(err) != models.EUNAVAILABLE {
		t.Fatalf("while down: %v, want unavailable", err)
	}
	p.Down.Store(false)
	deadline := time.Now().Add(5 * time.Second) // well short of the 30 s limit on refreshes
	for {
		_, err := v.Verify(t.Context(), token)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after the project came back the token is still refused: %v", err)
		}
	}
}
