package handlers_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// workPeople are the workspace's known data set: who each contact is and
// where their conversation stands.
type workPeople struct {
	waiting, mine, paused, failed, ended, other *models.Contact
}

// seedWork makes six people, each written to in this order (the last the
// latest): a hand-off nobody answered (named Asha Verma, who wrote last),
// a hand-off the agent holds, a conversation the agent paused, an active
// one with a send that failed, an ended one, and a hand-off a colleague
// took.
func (site *consoleSite) seedWork(t *testing.T, agentID, otherID string) workPeople {
	t.Helper()
	ctx := context.Background()
	contacts := store.NewContactStore(site.db, site.crypto)
	person := func(number, name string) *models.Contact {
		c, _, err := contacts.FindOrCreate(ctx, number)
		if err != nil {
			t.Fatal(err)
		}
		if name != "" {
			if err := contacts.SetName(ctx, nil, c.ID, name); err != nil {
				t.Fatal(err)
			}
			c.Name = name
		}
		return c
	}
	conv := func(c *models.Contact, status string, holder any, answered bool) {
		t.Helper()
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, assigned_to, handoff_at, handoff_answered_at, ended_at)
			VALUES ($1, 'clinic', 'v1', 'handoff', $2, $3::uuid, CASE WHEN $2 = 'handoff' THEN now() - interval '1 hour' END,
				CASE WHEN $4 THEN now() END, CASE WHEN $2 = 'ended' THEN now() END)`, c.ID, status, holder, answered); err != nil {
			t.Fatal(err)
		}
	}
	out := func(c *models.Contact, body, status string) {
		t.Helper()
		m := &models.Message{ContactID: c.ID, Channel: c.Channel, Provider: "test", Body: body, Status: models.MessageStatus(status)}
		if err := store.NewMessageStore(site.db, site.crypto).InsertReplies(ctx, nil, []*models.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	p := workPeople{
		other:   person("+14155550106", ""),
		ended:   person("+14155550105", ""),
		failed:  person("+14155550104", ""),
		paused:  person("+14155550103", ""),
		mine:    person("+14155550102", ""),
		waiting: person("whatsapp:+919876543210", "Asha Verma"),
	}
	storetest.Inbound(t, site.db, site.crypto, p.other, "is anyone there")
	conv(p.other, "handoff", otherID, true)
	storetest.Inbound(t, site.db, site.crypto, p.ended, "thanks, bye")
	out(p.ended, "Goodbye!", "delivered")
	conv(p.ended, "ended", nil, false)
	storetest.Inbound(t, site.db, site.crypto, p.failed, "book me in")
	out(p.failed, "Which day suits you?", "failed")
	conv(p.failed, "active", nil, false)
	storetest.Inbound(t, site.db, site.crypto, p.paused, "hold on")
	conv(p.paused, "paused", agentID, false)
	storetest.Inbound(t, site.db, site.crypto, p.mine, "I want a person")
	out(p.mine, "A colleague will answer you here.", "sent")
	conv(p.mine, "handoff", agentID, true)
	storetest.Inbound(t, site.db, site.crypto, p.waiting, "my knee hurts")
	storetest.Inbound(t, site.db, site.crypto, p.waiting, "please call me")
	conv(p.waiting, "handoff", nil, false)
	return p
}

var workRowRE = regexp.MustCompile(`data-contact-id="(\d+)"`)

// workRows are the contact ids the workspace's list shows, in order.
func workRows(t *testing.T, b *browser, query string) ([]string, string) {
	t.Helper()
	resp, page := b.do(t, "GET", "/work/list?"+query, nil, map[string]string{"HX-Request": "true"})
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d\n%s", query, resp.StatusCode, page)
	}
	var ids []string
	for _, m := range workRowRE.FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return ids, page
}

func staffID(t *testing.T, site *consoleSite, email string) string {
	t.Helper()
	var id string
	if err := site.db.Pool.QueryRow(context.Background(), `SELECT id::text FROM staff_users WHERE email = $1`, email).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// Each view lists the conversations it names, one row a contact, the
// latest activity first; the list shows names where they are known, the
// last message, the badges and how long a person has waited.
func TestWorkspace_ViewsFilterTheList(t *testing.T) {
	site := newConsoleSite(t, nil)
	agent := site.as(t, models.RoleAgent)
	site.as(t, models.RoleSupervisor)
	p := site.seedWork(t, staffID(t, site, "agent@example.org"), staffID(t, site, "supervisor@example.org"))
	id := func(cs ...*models.Contact) string {
		var out []string
		for _, c := range cs {
			out = append(out, itoa(c.ID))
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		view string
		want string
	}{
		{"mine", id(p.mine, p.paused)},
		{"waiting", id(p.waiting)},
		{"failed", id(p.failed)},
		{"all", id(p.waiting, p.mine, p.paused, p.failed, p.ended, p.other)},
	} {
		got, _ := workRows(t, agent, "view="+tt.view)
		if strings.Join(got, ",") != tt.want {
			t.Errorf("view %s lists %v, want %s", tt.view, got, tt.want)
		}
	}
	if resp, _ := agent.do(t, "GET", "/work/list?view=everything", nil, nil); resp.StatusCode != 400 {
		t.Errorf("an unknown view: %d, want 400", resp.StatusCode)
	}

	_, page := workRows(t, agent, "view=all")
	rows := strings.Split(page, `data-testid="work-row"`)[1:]
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}
	asha := rows[0]
	for _, want := range []string{"Asha Verma", "please call me", `data-testid="badge-waiting"`, `data-testid="row-unread"`, `data-testid="row-waited"`, "+919876543210"} {
		if !strings.Contains(asha, want) {
			t.Errorf("the waiting person's row lacks %q:\n%s", want, asha)
		}
	}
	for i, want := range map[int][]string{
		1: {`data-testid="badge-mine"`, "A colleague will answer you here."},
		2: {`data-testid="badge-paused"`, `data-testid="badge-mine"`, `data-testid="row-waited"`},
		3: {`data-testid="badge-bot"`, `data-testid="badge-failed"`},
		4: {`data-testid="badge-ended"`},
		5: {`data-testid="badge-held"`},
	} {
		for _, w := range want {
			if !strings.Contains(rows[i], w) {
				t.Errorf("row %d lacks %s:\n%s", i, w, rows[i])
			}
		}
	}
	// One who opted out: the bot writes to them no more, and the row says so.
	if _, err := site.db.Pool.Exec(context.Background(), `UPDATE contacts SET opted_out_at = now() WHERE id = $1`, p.failed.ID); err != nil {
		t.Fatal(err)
	}
	if _, page := workRows(t, agent, "view=failed"); !strings.Contains(page, `data-testid="badge-optedout"`) || strings.Contains(page, `data-testid="badge-bot"`) {
		t.Errorf("an opted-out person's row:\n%s", page)
	}
	// Answered people have not been waiting, nor are they unread.
	if strings.Contains(rows[1], `data-testid="row-unread"`) || strings.Contains(rows[1], `data-testid="row-waited"`) || strings.Contains(rows[1], `data-testid="badge-waiting"`) {
		t.Errorf("an answered hand-off shows as waiting:\n%s", rows[1])
	}
	// The whole page: the list, the views, and no conversation open.
	resp, whole := agent.do(t, "GET", "/work?view=mine", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(whole, `data-testid="view-mine" aria-current="page"`) && !strings.Contains(whole, `aria-current="page" data-testid="view-mine"`) {
		t.Fatalf("workspace page: %d", resp.StatusCode)
	}
	if !strings.Contains(whole, `data-testid="nav-w"`) {
		t.Error("the navigation has no workspace entry")
	}
}

// Viewers see numbers masked in the list and the pane; the list's read
// follows the inbox's rule (a search is audited by a keyed fingerprint,
// never its words; a listing is not), and opening a conversation is a
// view of the contact, audited.
func TestWorkspace_MasksAndAudits(t *testing.T) {
	site := newConsoleSite(t, nil)
	viewer := site.as(t, models.RoleViewer)
	id := staffID(t, site, "viewer@example.org")
	p := site.seedWork(t, id, id)
	ctx := context.Background()
	_, page := workRows(t, viewer, "view=all")
	if strings.Contains(page, "+14155550102") || strings.Contains(page, "+919876543210") || !strings.Contains(page, "•••") && !strings.Contains(page, "0102") {
		t.Fatalf("a viewer sees whole numbers:\n%s", page)
	}
	if !strings.Contains(page, "Asha Verma") {
		t.Fatal("the name is not shown")
	}
	audits := func() string {
		var s string
		_ = site.db.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(action, ',' ORDER BY seq), '') FROM audit_events WHERE action NOT LIKE 'staff.%'`).Scan(&s)
		return s
	}
	if got := audits(); got != "" {
		t.Fatalf("a listing audited %q", got)
	}
	got, _ := workRows(t, viewer, url.Values{"view": {"all"}, "q": {"verma"}}.Encode())
	if strings.Join(got, ",") != itoa(p.waiting.ID) {
		t.Fatalf("searching a name found %v", got)
	}
	got, _ = workRows(t, viewer, url.Values{"view": {"all"}, "q": {"0104"}}.Encode())
	if strings.Join(got, ",") != itoa(p.failed.ID) {
		t.Fatalf("searching last digits found %v", got)
	}
	if got := audits(); got != "conversations.search,conversations.search" {
		t.Fatalf("searches audited %q", got)
	}
	var plain int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE position('verma'::bytea in coalesce(details_enc, ''::bytea)) > 0`).Scan(&plain)
	if plain != 0 {
		t.Fatal("the search's words are in the audit log in the clear")
	}
	resp, pane := viewer.do(t, "GET", "/work/pane/"+itoa(p.mine.ID)+"?view=all", nil, map[string]string{"HX-Request": "true"})
	if resp.StatusCode != 200 || strings.Contains(pane, "+14155550102") || !strings.Contains(pane, `data-testid="reveal"`) || !strings.Contains(pane, "I want a person") {
		t.Fatalf("the pane for a viewer: %d\n%s", resp.StatusCode, pane)
	}
	if strings.Contains(pane, `data-testid="reply-form"`) || strings.Contains(pane, `data-testid="override-end"`) {
		t.Fatal("a viewer is offered to reply or override")
	}
	if got := audits(); got != "conversations.search,conversations.search,contact.view" {
		t.Fatalf("opening a conversation audited %q", got)
	}
}

// A reply a staff member writes reads as theirs, labelled and coloured
// apart from the bot's, in the pane as on the contact's page.
func TestWorkspace_StaffRepliesLookApartFromTheBot(t *testing.T) {
	site := newConsoleSite(t, nil)
	agent := site.as(t, models.RoleAgent)
	site.as(t, models.RoleSupervisor)
	p := site.seedWork(t, staffID(t, site, "agent@example.org"), staffID(t, site, "supervisor@example.org"))
	if _, err := site.db.Pool.Exec(context.Background(), `UPDATE messages SET provider = 'twilio'`); err != nil {
		t.Fatal(err)
	}
	page := "/contacts/" + itoa(p.mine.ID)
	_, whole := agent.do(t, "GET", page, nil, nil)
	csrf := formCSRF.FindStringSubmatch(whole)[1]
	if resp, body := agent.do(t, "POST", page+"/reply", url.Values{"_csrf": {csrf}, "text": {"I am looking at it now."}}, nil); resp.StatusCode != 303 {
		t.Fatalf("the reply: %d\n%s", resp.StatusCode, body)
	}
	outRE := regexp.MustCompile(`(?s)<li[^>]*data-testid="message-out"[^>]*data-sender="(\w+)"[^>]*>\s*<p[^>]*>([^<]*)</p>\s*<p[^>]*>\s*<span[^>]*>(\w+)</span>`)
	for _, path := range []string{"/work/pane/" + itoa(p.mine.ID) + "?view=all", page + "/timeline"} {
		_, html := agent.do(t, "GET", path, nil, map[string]string{"HX-Request": "true"})
		got := map[string]string{}
		for _, m := range outRE.FindAllStringSubmatch(html, -1) {
			got[m[2]] = m[1] + " " + m[3]
		}
		want := map[string]string{"A colleague will answer you here.": "bot Bot", "I am looking at it now.": "staff Staff"}
		if len(got) != len(want) || got["A colleague will answer you here."] != want["A colleague will answer you here."] || got["I am looking at it now."] != want["I am looking at it now."] {
			t.Errorf("%s: the replies read as %v, want %v", path, got, want)
		}
	}
}
