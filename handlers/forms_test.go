package handlers_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/models"
)

// htmx is the headers of a form sent through HTMX from page.
func htmx(page string) map[string]string {
	return map[string]string{"HX-Request": "true", "HX-Current-URL": "http://parley.test" + page}
}

// A refused action sent from the console's forms (HTMX) is answered in
// place, 422, in words a person can act on: the reply box comes back with
// the words typed, the add-a-member form with the email and role (never
// the password), a resend and an override with the reason beside their
// button. A success goes on where the plain form's redirect goes, and a
// form sent after the session ended signs in again back to its page, not
// to the address it posted to.
func TestForms_RefusalsKeepThePlaceAndTheWords(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, ravi := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET created_at = now() - interval '25 hours' WHERE contact_id = $1`, asha.ID)
	admin := site.as(t, models.RoleAdmin)
	ashaPage := "/contacts/" + itoa(asha.ID)
	_, page := admin.do(t, "GET", ashaPage, nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)[1]

	typed := "Your appointment is on <Monday> at 10"
	resp, body := admin.do(t, "POST", ashaPage+"/reply", url.Values{"_csrf": {csrf}, "text": {typed}}, htmx(ashaPage))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="reply-form"`) || !strings.Contains(body, "Your appointment is on &lt;Monday&gt; at 10</textarea>") ||
		!strings.Contains(body, "24 hours") || strings.Contains(body, "<html") {
		t.Fatalf("a reply outside WhatsApp's window: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := admin.do(t, "POST", ashaPage+"/reply", url.Values{"_csrf": {csrf}, "text": {typed}}, nil); resp.StatusCode != 409 {
		t.Fatalf("the same without HTMX: %d, want the error page's 409", resp.StatusCode)
	}
	ravisPage := "/contacts/" + itoa(ravi.ID)
	resp, _ = admin.do(t, "POST", ravisPage+"/reply", url.Values{"_csrf": {csrf}, "text": {"Your refill is ready."}}, htmx(ravisPage))
	if resp.StatusCode != 204 || resp.Header.Get("HX-Redirect") != ravisPage {
		t.Fatalf("a reply sent: %d, HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}

	// A resend of a message that did not fail; an override the flow has no node for.
	var sent int64
	_ = site.db.Pool.QueryRow(ctx, `SELECT id FROM messages WHERE contact_id = $1 AND direction = 'out' ORDER BY id LIMIT 1`, ravi.ID).Scan(&sent)
	resp, body = admin.do(t, "POST", "/messages/"+itoa(sent)+"/resend", url.Values{"_csrf": {csrf}, "back": {ravisPage}}, htmx(ravisPage))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="refused"`) || !strings.Contains(body, "Only a failed or uncertain message can be sent again.") {
		t.Fatalf("a refused resend: %d\n%s", resp.StatusCode, body)
	}
	var conv int64
	if err := site.db.Pool.QueryRow(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status) VALUES ($1, 'clinic', 'v1', 'ask_age', 'active')
		RETURNING id`, ravi.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	resp, body = admin.do(t, "POST", "/conversations/"+itoa(conv)+"/override", url.Values{"_csrf": {csrf}, "kind": {"set_var"}, "var": {""}, "back": {ravisPage}}, htmx(ravisPage))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="refused"`) || strings.Contains(body, "<html") {
		t.Fatalf("a refused override: %d\n%s", resp.StatusCode, body)
	}

	// A hand-off another member holds, which an agent may not take over.
	site.as(t, models.RoleSupervisor)
	_, _ = site.db.Pool.Exec(ctx, `UPDATE conversations SET status = 'handoff', assigned_to = (SELECT id FROM staff_users WHERE email = 'supervisor@example.org') WHERE id = $1`, conv)
	agent := site.as(t, models.RoleAgent)
	_, page = agent.do(t, "GET", "/handoffs", nil, nil)
	acsrf := formCSRF.FindStringSubmatch(page)[1]
	resp, body = agent.do(t, "POST", "/conversations/"+itoa(conv)+"/take", url.Values{"_csrf": {acsrf}, "back": {"/handoffs"}}, htmx("/handoffs"))
	if resp.StatusCode != 422 || !strings.Contains(body, "taking it over is a supervisor") {
		t.Fatalf("an agent's take-over: %d\n%s", resp.StatusCode, body)
	}

	// A member who exists already.
	form := url.Values{"_csrf": {csrf}, "email": {"agent@example.org"}, "role": {"supervisor"}, "password": {"a long enough password"}}
	resp, body = admin.do(t, "POST", "/admin/staff", form, htmx("/admin/staff"))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="add-member-error"`) || !strings.Contains(body, `value="agent@example.org"`) ||
		!strings.Contains(body, `<option value="supervisor" selected>`) || strings.Contains(body, "a long enough password") || strings.Contains(body, "Error 409") {
		t.Fatalf("adding a member who exists: %d\n%s", resp.StatusCode, body)
	}
	var agentID string
	_ = site.db.Pool.QueryRow(ctx, `SELECT id::text FROM staff_users WHERE email = 'agent@example.org'`).Scan(&agentID)
	resp, body = admin.do(t, "POST", "/admin/staff/"+agentID, url.Values{"_csrf": {csrf}, "role": {"owner"}}, htmx("/admin/staff"))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="refused"`) || !strings.Contains(body, "is not a role (admin, supervisor, agent or viewer)") {
		t.Fatalf("a role change refused: %d\n%s", resp.StatusCode, body)
	}
	form.Set("email", "new.member@example.org")
	if resp, _ := admin.do(t, "POST", "/admin/staff", form, htmx("/admin/staff")); resp.StatusCode != 204 || resp.Header.Get("HX-Redirect") != "/admin/staff?done=added" {
		t.Fatalf("adding a new member: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}

	// The session ends while a reply is being written.
	if _, err := site.db.Pool.Exec(ctx, `DELETE FROM staff_sessions`); err != nil {
		t.Fatal(err)
	}
	resp, _ = admin.do(t, "POST", ravisPage+"/reply", url.Values{"_csrf": {csrf}, "text": {"words"}}, htmx(ravisPage))
	if resp.StatusCode != 401 || resp.Header.Get("HX-Redirect") != "/login?next="+url.QueryEscape(ravisPage) {
		t.Fatalf("a reply after the session ended: %d, HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
}
