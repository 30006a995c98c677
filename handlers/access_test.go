package handlers_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/internal/pgtest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

const localIssuerURL = "http://parley.test/auth/v1"

// staffServer is the real app with staff access over a fresh database:
// the local provider, or (project set) a Supabase project's tokens.
type staffServer struct {
	db    *store.DB
	app   *fiber.App
	staff *store.StaffStore
	local *auth.LocalIssuer
	logs  *lockedBuffer
	doc   *apiDoc // the OpenAPI document answers are checked against
}

func newStaffServer(t *testing.T, project *authtest.Project) *staffServer {
	t.Helper()
	db := pgtest.Open(t)
	readiness, _ := store.NewReadiness(db)
	s := &staffServer{staff: store.NewStaffStore(db), logs: &lockedBuffer{}, db: db}
	access := &handlers.Access{Staff: s.staff, Audit: store.NewAuditStore(db, newCryptoForTest(t))}
	var err error
	if project != nil {
		keys, err := auth.JWKS(t.Context(), project.JWKSURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		access.Verifier, err = auth.NewVerifier(auth.VerifierConfig{Issuer: project.Issuer(), Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		access.Remote = auth.NewGoTrue(project.URL, authtest.AnonKey, nil).Admin(authtest.ServiceRoleKey)
	} else {
		s.local, err = auth.NewLocalIssuer(localIssuerURL, []byte(strings.Repeat("k", 32)), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		access.Verifier, _ = auth.NewVerifier(auth.VerifierConfig{Issuer: localIssuerURL, Keys: s.local.Keys()})
		// The guard's clock stands still: a throttled sign-in stays
		// throttled however slowly the test runs.
		frozen := time.Now()
		access.Local = &handlers.LocalProvider{Issuer: s.local, Directory: s.staff, Guard: auth.NewGuard().WithClock(func() time.Time { return frozen })}
	}
	s.app = handlers.NewServer(handlers.Deps{Logger: slog.New(slog.NewJSONHandler(s.logs, nil)), Readiness: readiness,
		Registry: prometheus.NewRegistry(), Version: "test", Access: access})
	return s
}

// member adds a local staff member with a password.
func (s *staffServer) member(t *testing.T, email string, role models.Role, password string) *models.StaffUser {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.staff.Create(context.Background(), "", email, role, hash)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (s *staffServer) call(t *testing.T, method, path, token string, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, raw := do(t, s.app, req)
	if strings.HasPrefix(path, "/api/v1/") {
		if s.doc == nil {
			_, doc := do(t, s.app, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
			s.doc = parseAPIDoc(t, []byte(doc))
		}
		s.doc.check(t, method, path, resp.StatusCode, []byte(raw))
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	return resp.StatusCode, out
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestAPI_BearerTokens(t *testing.T) {
	s := newStaffServer(t, nil)
	u := s.member(t, "agent@example.org", models.RoleAgent, "a long enough password")
	token, _, err := s.local.Issue(u, "")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, _ := s.local.Issue(&models.StaffUser{ID: "6f1d0c1e-1111-4c4c-8888-00000000dead", Email: "x@example.org"}, "")

	tests := []struct {
		label, token string
		want         int
		wantCode     string
	}{
		{"no token", "", 401, "unauthorized"},
		{"not a token", "nonsense", 401, "unauthorized"},
		{"a valid token of someone not on the staff", stranger, 403, "forbidden"},
		{"a staff member's token", token, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			status, body := s.call(t, "GET", "/api/v1/me", tt.token, "")
			if status != tt.want || errorCode(body) != tt.wantCode {
				t.Fatalf("%d %v; want %d with code %q", status, body, tt.want, tt.wantCode)
			}
		})
	}

	// A role change shows on the next request, the token unchanged.
	if err := s.staff.SetRole(context.Background(), nil, u.ID, models.RoleSupervisor); err != nil {
		t.Fatal(err)
	}
	if _, body := s.call(t, "GET", "/api/v1/me", token, ""); body["role"] != "supervisor" || !strings.Contains(toJSON(body["permissions"]), "audit.read") {
		t.Fatalf("after the role change: %v", body)
	}
	// So does a deactivation, though the token is still unexpired.
	if err := s.staff.SetActive(context.Background(), nil, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if status, _ := s.call(t, "GET", "/api/v1/me", token, ""); status != 403 {
		t.Fatalf("a deactivated member's token: %d, want 403", status)
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// The local provider answers like GoTrue: its token route signs staff in,
// never says whether an account exists, and stops guessing.
func TestLocalProvider_SignsInLikeSupabaseAuth(t *testing.T) {
	s := newStaffServer(t, nil)
	s.member(t, "asha@example.org", models.RoleViewer, "correct horse battery")
	signIn := func(email, password string) (int, map[string]any) {
		return s.call(t, "POST", "/auth/v1/token?grant_type=password", "", toJSON(map[string]string{"email": email, "password": password}))
	}
	status, body := signIn("Asha@Example.org", "correct horse battery")
	if status != 200 || body["token_type"] != "bearer" || body["access_token"] == "" {
		t.Fatalf("sign-in: %d %v", status, body)
	}
	if status, me := s.call(t, "GET", "/api/v1/me", body["access_token"].(string), ""); status != 200 || me["role"] != "viewer" {
		t.Fatalf("the issued token on the API: %d %v", status, me)
	}
	_, wrongPassword := signIn("asha@example.org", "wrong password!!")
	_, noAccount := signIn("nobody@example.org", "wrong password!!")
	if toJSON(wrongPassword) != toJSON(noAccount) || wrongPassword["error_code"] != "invalid_credentials" {
		t.Fatalf("a wrong password %v and an unknown account %v must answer alike", wrongPassword, noAccount)
	}
	for range 4 {
		signIn("asha@example.org", "wrong password!!")
	}
	// Past five failures from one address: even the right password waits
	// now (the wait grows with each failure; TestGuard_* test it).
	if status, body := signIn("asha@example.org", "correct horse battery"); status != 429 || body["error_code"] != "over_request_rate_limit" {
		t.Fatalf("after five failures: %d %v, want 429", status, body)
	}
	// The key set is served where Supabase serves a project's.
	req, _ := http.NewRequest("GET", "/auth/v1/.well-known/jwks.json", nil)
	resp, raw := do(t, s.app, req)
	if resp.StatusCode != 200 || !strings.Contains(raw, `"kty":"EC"`) || strings.Contains(raw, `"d":`) {
		t.Fatalf("jwks: %d %s", resp.StatusCode, raw)
	}
	// Nothing secret reaches the log.
	for _, secret := range []string{"correct horse battery", "wrong password!!", body["access_token"].(string)} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("the log holds a secret: %s", s.logs.String())
		}
	}
}

// In Supabase mode the project's tokens are accepted for staff whose
// Supabase user id is on Parley's staff table.
func TestAPI_SupabaseTokens(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	s := newStaffServer(t, p)
	const sub = "6f1d0c1e-1111-4c4c-8888-000000000003"
	if _, err := s.staff.Create(context.Background(), sub, "ravi@example.org", models.RoleAdmin, ""); err != nil {
		t.Fatal(err)
	}
	claims := p.Claims(sub, "ravi@example.org")
	claims.UserMetadata = map[string]any{"role": "viewer"} // never read
	if status, body := s.call(t, "GET", "/api/v1/me", p.Sign(claims), ""); status != 200 || body["role"] != "admin" {
		t.Fatalf("%d %v", status, body)
	}
	p.Rotate()
	if status, _ := s.call(t, "GET", "/api/v1/me", p.Sign(claims), ""); status != 200 {
		t.Fatalf("after the project rotated its key: %d", status)
	}
}

func TestAPI_StaffAdministration(t *testing.T) {
	s := newStaffServer(t, nil)
	admin := s.member(t, "admin@example.org", models.RoleAdmin, "the admin's password")
	token, _, _ := s.local.Issue(admin, "")
	status, made := s.call(t, "POST", "/api/v1/staff", token, `{"email":"new@example.org","role":"agent","password":"a good long password"}`)
	if status != 201 || made["role"] != "agent" || made["active"] != true {
		t.Fatalf("create: %d %v", status, made)
	}
	id := made["id"].(string)
	if status, body := s.call(t, "POST", "/api/v1/staff", token, `{"email":"NEW@example.org","role":"viewer","password":"a good long password"}`); status != 409 {
		t.Fatalf("the same email again: %d %v", status, body)
	}
	if status, _ := s.call(t, "PATCH", "/api/v1/staff/"+id, token, `{"role":"supervisor"}`); status != 200 {
		t.Fatalf("role change: %d", status)
	}
	if status, body := s.call(t, "PATCH", "/api/v1/staff/"+id, token, `{"active":false}`); status != 200 || body["active"] != false {
		t.Fatalf("deactivate: %d %v", status, body)
	}
	if status, _ := s.call(t, "PATCH", "/api/v1/staff/"+admin.ID, token, `{"active":false}`); status != 409 {
		t.Fatalf("deactivating oneself: %d, want 409", status)
	}
	status, list := s.call(t, "GET", "/api/v1/staff?limit=1", token, "")
	if status != 200 || list["next"] != "admin@example.org" || len(list["staff"].([]any)) != 1 {
		t.Fatalf("list: %d %v", status, list)
	}
	var actions string
	_ = s.db.Pool.QueryRow(context.Background(), `SELECT string_agg(action || ':' || actor_role, ',' ORDER BY seq) FROM audit_events`).Scan(&actions)
	if actions != "staff.create:admin,staff.role_change:admin,staff.deactivate:admin" {
		t.Fatalf("audited %q", actions)
	}
}

// In Supabase mode staff are created (or invited) at Supabase Auth with
// the service-role key, their role mirrored into app_metadata.role, and a
// deactivation bans them there too.
func TestAPI_StaffAdministrationThroughSupabase(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	s := newStaffServer(t, p)
	adminID := p.AddUser("boss@example.org", "boss password")
	if _, err := s.staff.Create(context.Background(), adminID, "boss@example.org", models.RoleAdmin, ""); err != nil {
		t.Fatal(err)
	}
	token := p.Sign(p.Claims(adminID, "boss@example.org"))

	status, made := s.call(t, "POST", "/api/v1/staff", token, `{"email":"kiran@example.org","role":"agent","password":"kiran's password"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, made)
	}
	id := made["id"].(string)
	if p.AppRole(id) != "agent" {
		t.Fatalf("app_metadata.role at Supabase = %q, want agent", p.AppRole(id))
	}
	status, invited := s.call(t, "POST", "/api/v1/staff", token, `{"email":"lata@example.org","role":"viewer"}`)
	if status != 201 || p.AppRole(invited["id"].(string)) != "viewer" {
		t.Fatalf("invite: %d %v", status, invited)
	}
	if status, body := s.call(t, "POST", "/api/v1/staff", token, `{"email":"kiran@example.org","role":"agent","password":"x another one"}`); status != 409 {
		t.Fatalf("an email Supabase has: %d %v", status, body)
	}
	if status, _ := s.call(t, "PATCH", "/api/v1/staff/"+id, token, `{"role":"supervisor"}`); status != 200 || p.AppRole(id) != "supervisor" {
		t.Fatalf("role change: %d, mirrored %q", status, p.AppRole(id))
	}
	if status, _ := s.call(t, "PATCH", "/api/v1/staff/"+id, token, `{"active":false}`); status != 200 || !p.Banned(id) {
		t.Fatalf("deactivate: %d, banned %v", status, p.Banned(id))
	}
	if _, err := auth.NewGoTrue(p.URL, authtest.AnonKey, nil).SignIn(context.Background(), "kiran@example.org", "kiran's password"); models.ErrorCode(err) != models.EUNAUTHORIZED {
		t.Fatalf("a banned member signing in at Supabase: %v", err)
	}
	if status, _ := s.call(t, "PATCH", "/api/v1/staff/"+id, token, `{"active":true}`); status != 200 || p.Banned(id) {
		t.Fatal("reactivation did not lift the ban")
	}
	if status, _ := s.call(t, "DELETE", "/api/v1/staff/"+id, token, ""); status != 204 || p.HasUser(id) {
		t.Fatalf("delete: %d, still at Supabase %v", status, p.HasUser(id))
	}
	if u, err := s.staff.Get(context.Background(), id); err != nil || u.Active || strings.Contains(u.Email, "kiran") {
		t.Fatalf("the deleted member's row: %+v, %v", u, err)
	}
	if status, _ := s.call(t, "DELETE", "/api/v1/staff/"+adminID, token, ""); status != 409 {
		t.Fatalf("deleting oneself: %d", status)
	}
}
