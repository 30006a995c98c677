package handlers_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/parley-chat/parley/internal/auth/authtest"
	"github.com/parley-chat/parley/models"
)

// In Supabase mode a staff change is both or neither there too: when its
// audit entry cannot be written, the change at Supabase is undone (the
// user made is deleted, the role and the ban restored, a deletion never
// happens) and the member's console sessions stay open.
func TestStaffChanges_SupabaseAndSessionsUnchangedWhenTheEntryFails(t *testing.T) {
	p := authtest.NewProject()
	t.Cleanup(p.Close)
	site := supabaseSite(t, p)
	adminID, _ := supabaseMember(t, site, p, "admin@example.org", models.RoleAdmin)
	agentID, agent := supabaseMember(t, site, p, "agent@example.org", models.RoleAgent)
	token := p.Sign(p.Claims(adminID, "admin@example.org"))
	// Giving access to a user who is staff already is refused before their
	// mirrored role at Supabase is touched.
	if status := apiCall(t, site.base, token, "POST", "/api/v1/staff",
		`{"email":"agent@example.org","role":"viewer","user_id":"`+agentID+`"}`); status != 409 || p.AppRole(agentID) == string(models.RoleViewer) {
		t.Fatalf("adding a member again: %d, mirrored role %q; want 409, untouched", status, p.AppRole(agentID))
	}
	if _, err := site.db.Pool.Exec(t.Context(), `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action LIKE 'staff.%') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/staff", `{"email":"new@example.org","role":"agent","password":"a good long password"}`},
		{"POST", "/api/v1/staff", `{"email":"invited@example.org","role":"agent"}`},
		{"PATCH", "/api/v1/staff/" + agentID, `{"role":"supervisor"}`},
		{"PATCH", "/api/v1/staff/" + agentID, `{"active":false}`},
		{"DELETE", "/api/v1/staff/" + agentID, ""},
	} {
		if status := apiCall(t, site.base, token, tc.method, tc.path, tc.body); status != 500 {
			t.Errorf("%s %s with the audit refused: %d, want 500", tc.method, tc.path, status)
		}
	}
	if p.HasEmail("new@example.org") || p.HasEmail("invited@example.org") {
		t.Error("a user made at Supabase for a refused creation is left there")
	}
	if !p.HasUser(agentID) || p.Banned(agentID) || p.AppRole(agentID) == string(models.RoleSupervisor) {
		t.Errorf("the agent at Supabase after refused changes: there %v, banned %v, role %q; want there, not banned, not supervisor",
			p.HasUser(agentID), p.Banned(agentID), p.AppRole(agentID))
	}
	var revoked int
	if err := site.db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM staff_sessions WHERE user_id = $1 AND revoked_at IS NOT NULL`, agentID).
		Scan(&revoked); err != nil {
		t.Fatal(err)
	}
	if revoked != 0 || !agent.signedIn(t) {
		t.Errorf("the agent's sessions after a refused deactivation: %d revoked; want none, still signed in", revoked)
	}
}

// apiCall sends body (JSON) to the API with token and returns the status.
func apiCall(t *testing.T, base, token, method, path, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
