package handlers_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/models"
)

var memberRow = regexp.MustCompile(`(?s)data-testid="member" data-email="([^"]+)">.*?action="/admin/staff/([0-9a-f-]{36})"`)

// memberID finds a member's id on the staff page.
func memberID(t *testing.T, page, email string) string {
	t.Helper()
	for _, part := range strings.Split(page, `<tr data-testid="member"`)[1:] {
		m := memberRow.FindStringSubmatch(`data-testid="member"` + part)
		if m != nil && m[1] == email {
			return m[2]
		}
	}
	t.Fatalf("%s is not on the staff page:\n%s", email, page)
	return ""
}

// An admin adds a member, changes their role, deactivates and reactivates
// them from the console; each change is audited and takes effect at once.
func TestAdmin_StaffScreen(t *testing.T) {
	site := newConsoleSite(t, nil)
	admin := site.as(t, models.RoleAdmin)
	resp, page := admin.do(t, "GET", "/admin/staff", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `data-testid="nav-u"`) || !strings.Contains(page, `data-testid="add-member"`) {
		t.Fatalf("the staff page for an admin: %d\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, `aria-label="Role of admin@example.org"`) {
		t.Fatal("an admin is offered to change their own role")
	}
	csrf := formCSRF.FindStringSubmatch(page)[1]
	resp, _ = admin.do(t, "POST", "/admin/staff", url.Values{"_csrf": {csrf}, "email": {"nadia@example.org"}, "role": {"viewer"},
		"password": {"another long password"}}, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/admin/staff?done=added" {
		t.Fatalf("adding a member: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = admin.do(t, "GET", "/admin/staff?done=added", nil, nil)
	id := memberID(t, page, "nadia@example.org")
	if !strings.Contains(page, `data-testid="notice"`) || !strings.Contains(page, "They can sign in now.") || strings.Contains(page, "invitation") {
		t.Error("no word that the member was added and may sign in now (no invitation is sent in local mode)")
	}
	nadia := &browser{site: site}
	if resp := nadia.signIn(t, "nadia@example.org", "another long password", "/"); resp.StatusCode != 303 {
		t.Fatalf("the new member signs in: %d", resp.StatusCode)
	}
	if resp, _ := nadia.do(t, "GET", "/simulator", nil, nil); resp.StatusCode != 403 {
		t.Fatalf("a viewer opens the simulator: %d", resp.StatusCode)
	}
	// Made an agent: the same session may use the simulator at once.
	if resp, _ := admin.do(t, "POST", "/admin/staff/"+id, url.Values{"_csrf": {csrf}, "role": {"agent"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("changing a role: %d", resp.StatusCode)
	}
	if resp, _ := nadia.do(t, "GET", "/simulator", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("an agent opens the simulator: %d", resp.StatusCode)
	}
	if resp, _ := admin.do(t, "POST", "/admin/staff/"+id, url.Values{"_csrf": {csrf}, "role": {"owner"}}, nil); resp.StatusCode != 400 {
		t.Fatalf("an unknown role: %d", resp.StatusCode)
	}
	// Deactivated: their session ends; reactivated: they sign in again.
	admin.do(t, "POST", "/admin/staff/"+id, url.Values{"_csrf": {csrf}, "active": {"false"}}, nil)
	if resp, _ := nadia.do(t, "GET", "/", nil, nil); resp.StatusCode == 200 {
		t.Fatal("a deactivated member's session goes on")
	}
	_, page = admin.do(t, "GET", "/admin/staff", nil, nil)
	if !strings.Contains(page, `data-testid="inactive"`) || !strings.Contains(page, `data-testid="reactivate"`) {
		t.Fatal("the page does not show the member deactivated")
	}
	admin.do(t, "POST", "/admin/staff/"+id, url.Values{"_csrf": {csrf}, "active": {"true"}}, nil)
	if resp := nadia.signIn(t, "nadia@example.org", "another long password", "/"); resp.StatusCode != 303 {
		t.Fatalf("a reactivated member signs in: %d", resp.StatusCode)
	}
	// The audit log page shows each change, filtered by group and by who.
	_, page = admin.do(t, "GET", "/admin/audit?action=staff.&actor=admin@example.org", nil, nil)
	for _, want := range []string{"staff.create", "staff.role_change", "staff.deactivate", "staff.reactivate"} {
		if !strings.Contains(page, `data-testid="entry-action">`+want+`<`) {
			t.Errorf("the audit page lacks %s", want)
		}
	}
	if strings.Contains(page, `data-testid="entry-action">contact.view<`) || strings.Contains(page, `data-testid="entry-action">audit.read<`) {
		t.Error("the filter by action group lets other groups through")
	}
	_, page = admin.do(t, "GET", "/admin/audit?action=staff.role_change", nil, nil)
	if n := strings.Count(page, `data-testid="entry"`); n != 1 || !strings.Contains(page, `{&#34;from&#34;:&#34;viewer&#34;,&#34;to&#34;:&#34;agent&#34;}`) {
		t.Errorf("the filter by one action: %d entries\n%s", n, page)
	}
	_, page = admin.do(t, "GET", "/admin/audit?actor=nobody@example.org", nil, nil)
	if !strings.Contains(page, `data-testid="no-entries"`) {
		t.Error("the filter by who lets others' entries through")
	}
	_, page = admin.do(t, "GET", "/admin/audit?verify=1", nil, nil)
	if !strings.Contains(page, `data-testid="verified"`) || !strings.Contains(page, "The chain holds") {
		t.Fatalf("the chain check:\n%s", page)
	}
	if resp, _ := admin.do(t, "GET", "/admin/audit?since=yesterday", nil, nil); resp.StatusCode != 400 {
		t.Errorf("a bad date: %d", resp.StatusCode)
	}
}

// Each role sees the sections it may use, and is refused the others.
func TestAdmin_ScreensByRole(t *testing.T) {
	site := newConsoleSite(t, nil)
	type screen struct{ path, testid, nav string }
	screens := []screen{
		{"/admin/staff", `data-testid="staff"`, "nav-u"},
		{"/admin/audit", `data-testid="audit"`, "nav-a"},
		{"/admin/system", `data-testid="system-queue"`, "nav-y"},
		{"/simulator", `data-testid="simulator-form"`, "nav-s"},
		{"/resend", `data-testid="bulk-resend"`, "nav-f"},
		{"/", `data-testid="search"`, "nav-i"},
	}
	may := map[models.Role][]string{
		models.RoleViewer:     {"/"},
		models.RoleAgent:      {"/", "/simulator", "/resend"},
		models.RoleSupervisor: {"/", "/simulator", "/resend", "/admin/audit"},
		models.RoleAdmin:      {"/", "/simulator", "/resend", "/admin/audit", "/admin/staff", "/admin/system"},
	}
	for role, allowed := range may {
		b := site.as(t, role)
		_, home := b.do(t, "GET", "/", nil, nil)
		for _, s := range screens {
			ok := false
			for _, p := range allowed {
				ok = ok || p == s.path
			}
			resp, page := b.do(t, "GET", s.path, nil, nil)
			switch {
			case ok && (resp.StatusCode != 200 || !strings.Contains(page, s.testid)):
				t.Errorf("%s opens %s: %d, %s shown: %v", role, s.path, resp.StatusCode, s.testid, strings.Contains(page, s.testid))
			case !ok && (resp.StatusCode != 403 || strings.Contains(page, s.testid)):
				t.Errorf("%s is not refused %s: %d", role, s.path, resp.StatusCode)
			}
			if shown := strings.Contains(home, `data-testid="`+s.nav+`"`); shown != ok {
				t.Errorf("%s's navigation shows %s: %v", role, s.path, shown)
			}
		}
	}
}

// The system page shows the channels and when they last delivered, the
// queue, the key and the AI services' breakers.
func TestAdmin_SystemPage(t *testing.T) {
	site := newConsoleSite(t, nil)
	admin := site.as(t, models.RoleAdmin)
	ctx := context.Background()
	// A job that keeps failing.
	if _, err := site.db.Pool.Exec(ctx, `INSERT INTO river_job (kind, args, state, attempt, max_attempts, queue, priority, errors, attempted_at)
		VALUES ('send_message', '{}', 'retryable', 2, 8, 'default', 1, ARRAY['{"at":"2026-12-03T00:00:00Z","attempt":2,"error":"twilio: 503 Service Unavailable"}'::jsonb], now())`); err != nil {
		t.Fatal(err)
	}
	_, page := admin.do(t, "GET", "/admin/system", nil, nil)
	for _, want := range []string{`data-testid="system-channels"`, "simulator", "last message never", `data-testid="breaker">closed<`,
		`data-testid="active-key">` + site.crypto.Ring.ActiveKeyID() + `<`, `data-testid="failing-jobs"`, "twilio: 503 Service Unavailable", "retryable 2/8"} {
		if !strings.Contains(page, want) {
			t.Errorf("the system page lacks %q", want)
		}
	}
}

// An admin erases a person from their page, after confirming; other roles
// are not offered it and are refused; the erasure is audited with its
// actor.
func TestAdmin_EraseAPersonFromTheConsole(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	supervisor, admin := site.as(t, models.RoleSupervisor), site.as(t, models.RoleAdmin)
	_, page := supervisor.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if strings.Contains(page, `data-testid="erase-form"`) {
		t.Fatal("a supervisor is offered the erasure")
	}
	csrf := formCSRF.FindStringSubmatch(page)[1]
	if resp, _ := supervisor.do(t, "POST", "/contacts/"+itoa(asha.ID)+"/erase", url.Values{"_csrf": {csrf}}, nil); resp.StatusCode != 403 {
		t.Fatalf("a supervisor's erasure: %d", resp.StatusCode)
	}
	_, page = admin.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if !strings.Contains(page, `data-testid="erase-form"`) || !strings.Contains(page, `data-testid="confirm-erase"`) {
		t.Fatal("an admin is not offered the erasure, behind a confirmation")
	}
	csrf = formCSRF.FindStringSubmatch(page)[1]
	resp, _ := admin.do(t, "POST", "/contacts/"+itoa(asha.ID)+"/erase", url.Values{"_csrf": {csrf}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("an admin's erasure: %d", resp.StatusCode)
	}
	if _, page := admin.do(t, "GET", resp.Header.Get("Location"), nil, nil); !strings.Contains(page, `data-testid="notice"`) || !strings.Contains(page, "Erased") {
		t.Errorf("after the erasure, no word that it happened:\n%s", page)
	}
	if resp, _ := admin.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("the erased contact's page: %d", resp.StatusCode)
	}
	var actor string
	if err := site.db.Pool.QueryRow(context.Background(), `SELECT u.email FROM audit_events a JOIN staff_users u ON u.id = a.actor_id
		WHERE a.action = 'contact.erase' AND a.subject_id = $1`, itoa(asha.ID)).Scan(&actor); err != nil || actor != "admin@example.org" {
		t.Fatalf("the erasure's audit entry: %q %v", actor, err)
	}
}
