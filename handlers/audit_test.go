package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// countAudit counts the audit entries of action.
func countAudit(t *testing.T, db *store.DB, action string) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = $1`, action).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// An open conversation refetches itself every few seconds and the inbox
// lists without a query at every load: neither may bury the log.
func TestAudit_LiveRefetchesAndListingsAreNotNoise(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	agent := site.as(t, models.RoleAgent)
	for _, path := range []string{"/contacts/" + itoa(asha.ID), "/contacts/" + itoa(asha.ID) + "/timeline", "/contacts/" + itoa(asha.ID) + "/timeline",
		"/", "/inbox/results", "/?q=+"} {
		if resp, _ := agent.do(t, "GET", path, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	if n := countAudit(t, site.db, "contact.view"); n != 1 {
		t.Errorf("a page and two refetches: %d contact.view entries, want 1", n)
	}
	if n := countAudit(t, site.db, "messages.search"); n != 0 {
		t.Errorf("listings without a query: %d messages.search entries, want none", n)
	}
}

// The log keeps a keyed fingerprint of what was searched, never the text.
func TestAudit_SearchTextIsNeverStored(t *testing.T) {
	site := newConsoleSite(t, nil)
	site.seed(t)
	agent := site.as(t, models.RoleAgent)
	typed := "+44 (0)7700 900117"
	if resp, _ := agent.do(t, "GET", "/?q="+url.QueryEscape(typed), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("search: %d", resp.StatusCode)
	}
	audit := store.NewAuditStore(site.db, site.crypto)
	entries, err := audit.List(context.Background(), store.AuditQuery{Action: "messages.search"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("search entries: %d, %v; want 1", len(entries), err)
	}
	details := entries[0].Details
	if details["query_fp"] != audit.Fingerprint("+44 (0)7700  900117 ") {
		t.Errorf("details %v: want the query's fingerprint", details)
	}
	for k, v := range details {
		if s, _ := v.(string); strings.Contains(s, "7700") || strings.Contains(s, "900117") {
			t.Errorf("details[%s] = %q keeps the typed number", k, s)
		}
	}
	// And nothing of it anywhere in the table, decrypted or not.
	var found bool
	if err := site.db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM audit_events a WHERE a::text LIKE '%900117%')`).Scan(&found); err != nil || found {
		t.Fatalf("the typed number is in audit_events: %v, %v", found, err)
	}
}

// Failed sign-ins are counted outside the chain: a 200 KB email stores a
// bounded row, and failures add no entry to the chain.
func TestAudit_FailedSignInsAreBounded(t *testing.T) {
	site := newConsoleSite(t, nil)
	// Within one window of counting, whatever the wall clock: five tries
	// astride a window's end count in two rows (CI met it once).
	at := time.Now().Truncate(store.SignInWindow).Add(store.SignInWindow / 2)
	site.audit.Now = func() time.Time { return at }
	b := &browser{site: site}
	huge := strings.Repeat("a", 200<<10) + "@example.org"
	for range 5 {
		if resp := b.signIn(t, huge, "wrong", "/"); resp.StatusCode != 401 && resp.StatusCode != 429 {
			t.Fatalf("a failed sign-in: %d", resp.StatusCode)
		}
	}
	var events, rows, attempts, biggest int
	if err := site.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if err := site.db.Pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(attempts), 0), coalesce(max(pg_column_size(f.*)), 0)
		FROM sign_in_failures f`).Scan(&rows, &attempts, &biggest); err != nil {
		t.Fatal(err)
	}
	if events != 0 || rows != 1 || attempts != 5 || biggest > 300 {
		t.Fatalf("5 failed sign-ins: %d chain entries (want 0), %d rows (want 1) of %d attempts (want 5), the biggest %d bytes", events, rows, attempts, biggest)
	}
}

// A staff change and its audit entry are one transaction: when the entry
// cannot be written the change is not made, from the API and the console.
func TestAudit_StaffChangesRollBackWhenTheirEntryFails(t *testing.T) {
	s := newStaffServer(t, nil)
	admin := s.member(t, "admin@example.org", models.RoleAdmin, "the admin's password")
	agent := s.member(t, "agent@example.org", models.RoleAgent, "the agent's password")
	token, _, _ := s.local.Issue(admin, "")
	if _, err := s.db.Pool.Exec(context.Background(), `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action LIKE 'staff.%') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/api/v1/staff", `{"email":"new@example.org","role":"agent","password":"a good long password"}`},
		{"PATCH", "/api/v1/staff/" + agent.ID, `{"role":"supervisor"}`},
		{"PATCH", "/api/v1/staff/" + agent.ID, `{"active":false}`},
		{"DELETE", "/api/v1/staff/" + agent.ID, ""},
	} {
		if status, _ := s.call(t, tc.method, tc.path, token, tc.body); status != 500 {
			t.Errorf("%s %s with the audit refused: %d, want 500", tc.method, tc.path, status)
		}
	}
	if _, _, err := s.staff.ByEmail(context.Background(), "new@example.org"); models.ErrorCode(err) != models.ENOTFOUND {
		t.Errorf("the member was created unaudited: %v", err)
	}
	got, err := s.staff.Get(context.Background(), agent.ID)
	if err != nil || got.Role != models.RoleAgent || !got.Active || got.Email != "agent@example.org" {
		t.Errorf("the agent after refused changes: %+v, %v; want unchanged", got, err)
	}
}

// Taking a hand-off and its audit entry are one transaction too.
func TestAudit_TakeRollsBackWhenItsEntryFails(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	_, ravi := site.seed(t)
	ctx := context.Background()
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	_ = convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source)
	conv := &models.Conversation{ContactID: ravi.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "handoff", Status: models.ConversationHandoff}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	agent := site.api(t, models.RoleAgent, doc)
	if _, err := site.db.Pool.Exec(ctx, `CREATE FUNCTION refuse_test() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit refused for the test'; END; $$;
		CREATE TRIGGER refuse_test BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action = 'conversation.take') EXECUTE FUNCTION refuse_test();`); err != nil {
		t.Fatal(err)
	}
	if status, raw := agent.call(t, "POST", "/api/v1/conversations/"+itoa(conv.ID)+"/take", nil); status != 500 {
		t.Fatalf("take with the audit refused: %d %s, want 500", status, raw)
	}
	var assigned bool
	if err := site.db.Pool.QueryRow(ctx, `SELECT assigned_to IS NOT NULL FROM conversations WHERE id = $1`, conv.ID).Scan(&assigned); err != nil || assigned {
		t.Fatalf("the conversation was taken unaudited: %v, %v", assigned, err)
	}
}

// Supervisors and admins still see failed sign-ins on the audit page: as
// counts per window, with the email's fingerprint, never the email.
func TestAudit_PageShowsFailedSignInsCounted(t *testing.T) {
	site := newConsoleSite(t, nil)
	anon := &browser{site: site}
	for range 3 {
		anon.signIn(t, "mallory@example.org", "wrong", "/")
	}
	supervisor := site.as(t, models.RoleSupervisor)
	resp, page := supervisor.do(t, "GET", "/admin/audit", nil, nil)
	if resp.StatusCode != 200 || strings.Count(page, `data-testid="sign-in-failure"`) != 1 || !strings.Contains(page, `data-testid="attempts">3<`) {
		t.Fatalf("the audit page's failed sign-ins: %d\n%s", resp.StatusCode, page)
	}
	fp := store.NewAuditStore(site.db, site.crypto).Fingerprint("mallory@example.org")
	if !strings.Contains(page, fp) || strings.Contains(page, "mallory") {
		t.Fatalf("the page shows the email, or not its fingerprint %s", fp)
	}
}
