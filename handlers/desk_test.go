package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// deskSite is the full server sending through a fake Twilio, with a
// contact named Asha whose conversation is handed off and held by the
// agent signed in.
type deskSite struct {
	*fullServer
	api                   *twiliotest.API
	doc                   *apiDoc
	agent, other, sup, vw credentials
	contact, conv         int64
}

func newDeskSite(t *testing.T) *deskSite {
	t.Helper()
	fake := twiliotest.NewAPI(accountSID, authToken)
	t.Cleanup(fake.Close)
	tc, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: "+15005550006", APIBaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	// storetest.Inbound writes as provider "test": replies go back through it.
	s := newFullServerWith(t, map[string]channel.Sender{channel.Twilio: tc, "test": tc})
	if err := s.pipe.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := &deskSite{fullServer: s, api: fake, doc: loadAPIDoc(t, s.base)}
	d.agent = s.signIn(t, models.RoleAgent)
	d.sup = s.signIn(t, models.RoleSupervisor)
	d.vw = s.signIn(t, models.RoleViewer)
	d.other = d.signInAs(t, "second.agent@example.org", models.RoleAgent)
	ctx := context.Background()
	contacts := store.NewContactStore(s.db, s.crypto)
	c, _, err := contacts.FindOrCreate(ctx, "+14155550199")
	if err != nil {
		t.Fatal(err)
	}
	if err := contacts.SetName(ctx, nil, c.ID, "Asha"); err != nil {
		t.Fatal(err)
	}
	in := storetest.Inbound(t, s.db, s.crypto, c, "I need a person")
	if _, err := s.db.Pool.Exec(ctx, `UPDATE messages SET status = 'processed' WHERE id = $1`, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Pool.QueryRow(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, assigned_to)
		VALUES ($1, 'clinic', 'v1', 'handoff', 'handoff', $2::uuid) RETURNING id`, c.ID, d.agent.id).Scan(&d.conv); err != nil {
		t.Fatal(err)
	}
	d.contact = c.ID
	return d
}

// signInAs signs in a second member of a role under another email, with
// a console session as signIn's.
func (d *deskSite) signInAs(t *testing.T, email string, role models.Role) credentials {
	t.Helper()
	hash, _ := auth.HashPassword("desk password!")
	u, err := d.staff.Create(context.Background(), "", email, role, hash)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{site: &consoleSite{base: d.base}}
	if resp := b.signIn(t, email, "desk password!", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in as %s: %d", email, resp.StatusCode)
	}
	_, page := b.do(t, "GET", "/", nil, nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token for %s", email)
	}
	bearer, _, _ := d.local.Issue(u, "")
	return credentials{id: u.ID, cookie: b.cookie, csrf: m[1], bearer: bearer}
}

// call sends an API request as cr (body as JSON unless nil), checked
// against the OpenAPI document.
func (d *deskSite) call(t *testing.T, cr credentials, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, d.base+"/api/v1"+path, r)
	req.Header.Set("Authorization", "Bearer "+cr.bearer)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	d.doc.check(t, method, "/api/v1"+path, resp.StatusCode, raw)
	return resp.StatusCode, raw
}

// post submits a console form as cr (a signed-in session), as htmx does.
func (d *deskSite) post(t *testing.T, cr credentials, path string, fields url.Values) (int, string) {
	t.Helper()
	fields.Set("_csrf", cr.csrf)
	req, _ := http.NewRequest("POST", d.base+path, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "parley_session="+cr.cookie)
	req.Header.Set("HX-Request", "true")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// audits lists the audit entries of action, newest first.
func (d *deskSite) audits(t *testing.T, action string) []store.AuditEntry {
	t.Helper()
	list, err := store.NewAuditStore(d.db, d.crypto).List(context.Background(), store.AuditQuery{Action: action, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (d *deskSite) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := d.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

const secretNote = "Prefers calls after 6pm; her son Ravi translates"

// Notes through the API: written, read in the order written by anyone who
// reads conversations, sealed at rest, audited without their text,
// changed only by their author or a supervisor, never sent, and gone with
// the contact's erasure.
func TestDesk_Notes(t *testing.T) {
	d := newDeskSite(t)
	path := fmt.Sprintf("/contacts/%d/notes", d.contact)
	var notes []models.Note
	for _, body := range []string{secretNote, "Booked for Tuesday"} {
		status, raw := d.call(t, d.agent, "POST", path, map[string]string{"body": body})
		if status != 201 {
			t.Fatalf("add note: %d %s", status, raw)
		}
		var n models.Note
		_ = json.Unmarshal(raw, &n)
		notes = append(notes, n)
	}
	if notes[0].AuthorID != d.agent.id || notes[0].Body != secretNote {
		t.Errorf("note = %+v", notes[0])
	}
	// Refusals: nothing written, a viewer, a missing contact.
	for _, tc := range []struct {
		cr     credentials
		path   string
		body   string
		status int
	}{
		{d.agent, path, "   ", 400},
		{d.agent, path, strings.Repeat("x", models.MaxNote+1), 400},
		{d.vw, path, "a viewer's note", 403},
		{d.agent, "/contacts/999999/notes", "nobody's note", 404},
	} {
		if status, raw := d.call(t, tc.cr, "POST", tc.path, map[string]string{"body": tc.body}); status != tc.status {
			t.Errorf("POST %s (%d chars): %d %s, want %d", tc.path, len(tc.body), status, raw, tc.status)
		}
	}
	// Read twice, by a viewer too, in the order written.
	for _, cr := range []credentials{d.other, d.other, d.vw} {
		var got struct{ Notes []models.Note }
		status, raw := d.call(t, cr, "GET", path, nil)
		if status != 200 || json.Unmarshal(raw, &got) != nil || len(got.Notes) != 2 || got.Notes[0].Body != secretNote || got.Notes[1].Body != "Booked for Tuesday" {
			t.Fatalf("GET notes: %d %s", status, raw)
		}
	}
	// Sealed at rest: the bytes hold neither the text nor a word of it.
	var sealed []byte
	if err := d.db.Pool.QueryRow(context.Background(), `SELECT body_enc FROM contact_notes WHERE id = $1`, notes[0].ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte("Ravi")) || bytes.Contains(sealed, []byte("6pm")) {
		t.Errorf("note stored in the clear: %q", sealed)
	}
	// Only the author, a supervisor or an admin change a note.
	notePath := fmt.Sprintf("/notes/%d", notes[0].ID)
	if status, raw := d.call(t, d.other, "PATCH", notePath, map[string]string{"body": "rewritten"}); status != 403 {
		t.Errorf("another agent edits: %d %s", status, raw)
	}
	if status, raw := d.call(t, d.other, "DELETE", notePath, nil); status != 403 {
		t.Errorf("another agent deletes: %d %s", status, raw)
	}
	if status, raw := d.call(t, d.sup, "PATCH", notePath, map[string]string{"body": "Prefers calls after 6pm"}); status != 200 {
		t.Errorf("a supervisor edits: %d %s", status, raw)
	}
	if status, raw := d.call(t, d.agent, "DELETE", fmt.Sprintf("/notes/%d", notes[1].ID), nil); status != 204 {
		t.Errorf("the author deletes: %d %s", status, raw)
	}
	if status, _ := d.call(t, d.agent, "DELETE", fmt.Sprintf("/notes/%d", notes[1].ID), nil); status != 404 {
		t.Errorf("deleted twice: %d", status)
	}
	// Audited: each write, with the note's id and never its text; the
	// reads once per reader within the read window.
	for action, want := range map[string]int{"note.add": 2, "note.edit": 1, "note.delete": 1, "notes.view": 2} {
		got := d.audits(t, action)
		if len(got) != want {
			t.Errorf("%d %s entries, want %d", len(got), action, want)
		}
		for _, e := range got {
			if e.SubjectType != "contact" || e.SubjectID != fmt.Sprint(d.contact) {
				t.Errorf("%s on %s %s", action, e.SubjectType, e.SubjectID)
			}
			if details, _ := json.Marshal(e.Details); bytes.Contains(details, []byte("6pm")) || bytes.Contains(details, []byte("Tuesday")) {
				t.Errorf("%s details hold the note: %s", action, details)
			}
		}
	}
	// Never sent: a reply made afterwards is the one thing the provider
	// receives.
	if status, raw := d.call(t, d.agent, "POST", fmt.Sprintf("/contacts/%d/reply", d.contact), map[string]string{"text": "Hello from the clinic"}); status != 202 {
		t.Fatalf("reply: %d %s", status, raw)
	}
	sent := waitSent(t, d.api, 1)
	if len(sent) != 1 || sent[0].Body != "Hello from the clinic" {
		t.Errorf("the provider received %+v, want the reply alone", sent)
	}
	if n := d.count(t, `SELECT count(*) FROM messages WHERE contact_id = $1 AND direction = 'out'`, d.contact); n != 1 {
		t.Errorf("%d outbound messages, want the reply alone", n)
	}
	// Exported with the contact, and erased with them.
	var export struct{ Notes []models.Note }
	admin := d.signInAs(t, "admin.desk@example.org", models.RoleAdmin)
	if status, raw := d.call(t, admin, "GET", fmt.Sprintf("/contacts/%d/export", d.contact), nil); status != 200 || json.Unmarshal(raw, &export) != nil ||
		len(export.Notes) != 1 || export.Notes[0].Body != "Prefers calls after 6pm" {
		t.Errorf("export: %d %s", status, raw)
	}
	if status, raw := d.call(t, admin, "DELETE", fmt.Sprintf("/contacts/%d", d.contact), nil); status != 200 && status != 204 {
		t.Fatalf("erase: %d %s", status, raw)
	}
	if n := d.count(t, `SELECT count(*) FROM contact_notes`); n != 0 {
		t.Errorf("%d notes left after the erasure", n)
	}
}

// waitSent waits, within the test's own bound, until the fake provider
// has received n messages, and returns what it received.
func waitSent(t *testing.T, api *twiliotest.API, n int) []twiliotest.Sent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(api.Sent()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the provider received %d messages, want %d", len(api.Sent()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return api.Sent()
}

// Tags: normalised, refused when malformed, past ten or by a viewer,
// audited once per change, and the inbox's filter in the API and the
// console finds the tagged conversation and no other.
func TestDesk_Tags(t *testing.T) {
	d := newDeskSite(t)
	path := fmt.Sprintf("/conversations/%d/tags", d.conv)
	for i := 0; i < 2; i++ { // the second add changes nothing
		status, raw := d.call(t, d.agent, "POST", path, map[string]string{"tag": "  Follow Up "})
		if status != 200 || string(raw) != `{"tags":["follow-up"]}` {
			t.Fatalf("add tag (%d): %d %s", i+1, status, raw)
		}
	}
	for _, tc := range []struct {
		cr     credentials
		tag    string
		status int
	}{
		{d.agent, "!!", 400},
		{d.agent, strings.Repeat("a", 33), 400},
		{d.vw, "vip", 403},
	} {
		if status, raw := d.call(t, tc.cr, "POST", path, map[string]string{"tag": tc.tag}); status != tc.status {
			t.Errorf("tag %q: %d %s, want %d", tc.tag, status, raw, tc.status)
		}
	}
	for i := 2; i <= models.MaxTags; i++ {
		if status, raw := d.call(t, d.sup, "POST", path, map[string]string{"tag": fmt.Sprintf("t%d", i)}); status != 200 {
			t.Fatalf("tag %d: %d %s", i, status, raw)
		}
	}
	if status, raw := d.call(t, d.sup, "POST", path, map[string]string{"tag": "one-too-many"}); status != 400 {
		t.Errorf("an eleventh tag: %d %s", status, raw)
	}
	for i := 2; i <= models.MaxTags; i++ {
		if status, raw := d.call(t, d.sup, "DELETE", fmt.Sprintf("%s/t%d", path, i), nil); status != 204 {
			t.Fatalf("untag %d: %d %s", i, status, raw)
		}
	}
	if n := len(d.audits(t, "conversation.tag")); n != models.MaxTags {
		t.Errorf("%d conversation.tag entries, want %d (the repeated add not again)", n, models.MaxTags)
	}
	// A second contact, untagged, that every other filter would list.
	contacts := store.NewContactStore(d.db, d.crypto)
	other, _, _ := contacts.FindOrCreate(context.Background(), "+14155550123")
	storetest.Inbound(t, d.db, d.crypto, other, "Another person")
	var hits []apiHit
	var page struct{ Conversations []apiHit }
	for tag, want := range map[string][]int64{"follow-up": {d.contact}, "Follow up": {d.contact}, "nobody-has-this": nil} {
		status, raw := d.call(t, d.agent, "GET", "/conversations?tag="+url.QueryEscape(tag), nil)
		if status != 200 || json.Unmarshal(raw, &page) != nil {
			t.Fatalf("filter %q: %d %s", tag, status, raw)
		}
		hits = page.Conversations
		var got []int64
		for _, h := range hits {
			got = append(got, h.Contact.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("filter %q: contacts %v, want %v", tag, got, want)
		}
	}
	// Each row names its contact's tags, as the inbox's badges do.
	_, raw := d.call(t, d.agent, "GET", "/conversations?tag=follow-up", nil)
	var tagged struct{ Conversations []struct{ Tags []string } }
	if err := json.Unmarshal(raw, &tagged); err != nil || len(tagged.Conversations) != 1 || !slices.Contains(tagged.Conversations[0].Tags, "follow-up") {
		t.Errorf("the API's row lacks the contact's tags: %s", raw)
	}
	if status, raw := d.call(t, d.agent, "GET", "/conversations?tag=%21%21", nil); status != 400 {
		t.Errorf("a malformed filter: %d %s", status, raw)
	}
	page2 := consolePage(t, d.base, d.agent, "/?tag=follow-up")
	if !strings.Contains(page2, fmt.Sprintf(`href="/contacts/%d`, d.contact)) || strings.Contains(page2, fmt.Sprintf(`href="/contacts/%d`, other.ID)) {
		t.Errorf("the inbox filtered by tag does not list the tagged contact alone")
	}
	if !strings.Contains(page2, `data-testid="hit-tag">follow-up</span>`) {
		t.Errorf("the inbox row shows no tag badge")
	}
	// The search form carries the filter, so typing a search or choosing
	// another filter keeps it (the form's fields are all htmx sends).
	if !strings.Contains(page2, `name="tag" value="follow-up" checked`) {
		t.Errorf("the inbox's search form drops the tag filter")
	}
	// The conversation page's panel shows the badge, linked to the filter.
	panel := consolePage(t, d.base, d.agent, fmt.Sprintf("/contacts/%d/tags", d.contact))
	if !strings.Contains(panel, `href="/?tag=follow-up"`) || !strings.Contains(panel, `data-testid="tag-form"`) {
		t.Errorf("tags panel: %s", panel)
	}
	if viewer := consolePage(t, d.base, d.vw, fmt.Sprintf("/contacts/%d/tags", d.contact)); strings.Contains(viewer, `data-testid="tag-form"`) ||
		!strings.Contains(viewer, `href="/?tag=follow-up"`) {
		t.Errorf("a viewer's tags panel offers tagging or hides the tags")
	}
	// Removed through the console's form; a malformed one answers the
	// panel with the reason beside the field and the words kept.
	if status, body := d.post(t, d.agent, fmt.Sprintf("/conversations/%d/tags", d.conv), url.Values{"tag": {"no good!"}}); status != 200 ||
		!strings.Contains(body, `data-testid="tag-error"`) || !strings.Contains(body, `value="no good!"`) {
		t.Errorf("a refused tag in the console: %d %s", status, body)
	}
	if status, body := d.post(t, d.agent, fmt.Sprintf("/conversations/%d/untag", d.conv), url.Values{"tag": {"follow-up"}}); status != 200 || strings.Contains(body, `data-testid="tag"`) {
		t.Errorf("untag in the console: %d %s", status, body)
	}
	if status, raw := d.call(t, d.agent, "GET", path, nil); status != 200 || string(raw) != `{"tags":[]}` {
		t.Errorf("tags after untagging: %d %s", status, raw)
	}
}

// Saved replies: managed by supervisors, picked by agents, filled on the
// server from the conversation with a missing variable left visible and
// named, never blank; the fill audited as a read of the contact.
func TestDesk_SavedReplies(t *testing.T) {
	d := newDeskSite(t)
	body := map[string]string{"title": "Appointment", "body": "Hello {{name}}, see you at {{ appointment_at }}."}
	status, raw := d.call(t, d.sup, "POST", "/saved-replies", body)
	if status != 201 {
		t.Fatalf("add: %d %s", status, raw)
	}
	var r models.SavedReply
	_ = json.Unmarshal(raw, &r)
	for _, tc := range []struct {
		cr     credentials
		body   map[string]string
		status int
	}{
		{d.sup, map[string]string{"title": "APPOINTMENT", "body": "again"}, 409},
		{d.sup, map[string]string{"title": "", "body": "untitled"}, 400},
		{d.agent, map[string]string{"title": "Mine", "body": "an agent's"}, 403},
	} {
		if status, raw := d.call(t, tc.cr, "POST", "/saved-replies", tc.body); status != tc.status {
			t.Errorf("add %v: %d %s, want %d", tc.body, status, raw, tc.status)
		}
	}
	var list struct {
		SavedReplies []models.SavedReply `json:"saved_replies"`
	}
	if status, raw := d.call(t, d.agent, "GET", "/saved-replies", nil); status != 200 || json.Unmarshal(raw, &list) != nil || len(list.SavedReplies) != 1 {
		t.Fatalf("list: %d %s", status, raw)
	}
	render := fmt.Sprintf("/contacts/%d/saved-replies/%d", d.contact, r.ID)
	var got struct {
		Text    string
		Missing []string
	}
	status, raw = d.call(t, d.agent, "GET", render, nil)
	if status != 200 || json.Unmarshal(raw, &got) != nil || got.Text != "Hello Asha, see you at {{appointment_at}}." || fmt.Sprint(got.Missing) != "[appointment_at]" {
		t.Fatalf("render without the appointment: %d %s", status, raw)
	}
	if status, raw := d.call(t, d.sup, "POST", fmt.Sprintf("/conversations/%d/override", d.conv),
		map[string]string{"kind": "set_var", "var": "appointment_at", "value": "Tue 10:30"}); status != 204 {
		t.Fatalf("set the appointment: %d %s", status, raw)
	}
	status, raw = d.call(t, d.agent, "GET", render, nil)
	if status != 200 || json.Unmarshal(raw, &got) != nil || got.Text != "Hello Asha, see you at Tue 10:30." || len(got.Missing) != 0 {
		t.Fatalf("render with the appointment: %d %s", status, raw)
	}
	if status, _ := d.call(t, d.vw, "GET", render, nil); status != 403 {
		t.Errorf("a viewer renders: %d", status)
	}
	if n := len(d.audits(t, "saved_reply.render")); n != 2 {
		t.Errorf("%d saved_reply.render entries, want 2", n)
	}
	for _, e := range d.audits(t, "saved_reply.") {
		if details, _ := json.Marshal(e.Details); bytes.Contains(details, []byte("Asha")) || bytes.Contains(details, []byte("10:30")) {
			t.Errorf("%s details hold personal data: %s", e.Action, details)
		}
	}
	// The console's box, filled for this conversation.
	box := consolePage(t, d.base, d.agent, fmt.Sprintf("/contacts/%d/saved-reply?saved=%d", d.contact, r.ID))
	if !strings.Contains(box, "Hello Asha, see you at Tue 10:30.</textarea>") {
		t.Errorf("console box: %s", box)
	}
	picker := consolePage(t, d.base, d.agent, fmt.Sprintf("/contacts/%d/saved-replies", d.contact))
	if !strings.Contains(picker, fmt.Sprintf(`<option value="%d">Appointment</option>`, r.ID)) {
		t.Errorf("picker: %s", picker)
	}
	// Changed and deleted by a supervisor; deleted twice is not found.
	if status, raw := d.call(t, d.sup, "PUT", fmt.Sprintf("/saved-replies/%d", r.ID), map[string]string{"title": "Appointment", "body": "Hi {{name}}"}); status != 200 {
		t.Errorf("change: %d %s", status, raw)
	}
	if status, raw = d.call(t, d.agent, "GET", render, nil); status != 200 || json.Unmarshal(raw, &got) != nil || got.Text != "Hi Asha" {
		t.Errorf("render after the change: %d %s", status, raw)
	}
	if status, _ := d.call(t, d.sup, "DELETE", fmt.Sprintf("/saved-replies/%d", r.ID), nil); status != 204 {
		t.Errorf("delete: %d", status)
	}
	if status, _ := d.call(t, d.sup, "DELETE", fmt.Sprintf("/saved-replies/%d", r.ID), nil); status != 404 {
		t.Errorf("delete twice: %d", status)
	}
}

// The console's notes panel: a refused note comes back in its field with
// the reason beside it; an accepted one is listed with its author.
func TestDesk_NotesPanel(t *testing.T) {
	d := newDeskSite(t)
	path := fmt.Sprintf("/contacts/%d/notes", d.contact)
	status, body := d.post(t, d.agent, path, url.Values{"body": {strings.Repeat("y", models.MaxNote+1)}})
	if status != 200 || !strings.Contains(body, `data-testid="note-error"`) || !strings.Contains(body, strings.Repeat("y", models.MaxNote+1)+"</textarea>") {
		t.Errorf("a refused note: %d %.300s", status, body)
	}
	status, body = d.post(t, d.agent, path, url.Values{"body": {secretNote}})
	if status != 200 || !strings.Contains(body, secretNote) || !strings.Contains(body, "agent@example.org") || strings.Contains(body, `data-testid="note-error"`) {
		t.Errorf("a note: %d %s", status, body)
	}
	// A colleague sees it, may not delete it; its author may.
	if other := consolePage(t, d.base, d.sup, path); !strings.Contains(other, secretNote) || !strings.Contains(other, `data-testid="note-delete"`) {
		t.Errorf("a supervisor's panel: %s", other)
	}
	if status, body := d.post(t, d.agent, fmt.Sprintf("/notes/%d/delete", d.noteID(t)), url.Values{}); status != 200 || strings.Contains(body, secretNote) {
		t.Errorf("delete: %d %s", status, body)
	}
}

// Editing a note in the console: its author and a supervisor may, in the
// panel, one after the other; an empty edit comes back open in the
// note's form with the reason beside it and the note unchanged; another
// agent sees no form and is refused; each edit audited without the text.
func TestDesk_NotesPanelEdit(t *testing.T) {
	d := newDeskSite(t)
	path := fmt.Sprintf("/contacts/%d/notes", d.contact)
	if status, _ := d.post(t, d.agent, path, url.Values{"body": {secretNote}}); status != 200 {
		t.Fatalf("add: %d", status)
	}
	id := d.noteID(t)
	edit := fmt.Sprintf("/notes/%d", id)
	contact := fmt.Sprint(d.contact)
	if page := consolePage(t, d.base, d.agent, path); !strings.Contains(page, `data-testid="note-edit-form"`) || strings.Contains(page, "· edited") {
		t.Errorf("the author's panel has no edit form, or calls a new note edited: %s", page)
	}
	// Refused: empty. The panel comes back with the form open, the reason
	// beside the field, and the note as it was.
	status, body := d.post(t, d.agent, edit, url.Values{"body": {"  "}, "contact": {contact}})
	if status != 200 || !strings.Contains(body, `data-testid="note-edit-error"`) || !strings.Contains(body, `open data-testid="note-edit"`) ||
		!strings.Contains(body, `data-testid="note-body">`+secretNote+`</p>`) {
		t.Errorf("an empty edit: %d %s", status, body)
	}
	// The author's edit, then the supervisor's: each shown in place.
	const first, second = "Prefers calls after 7pm", "Prefers calls after 7pm; Ravi is away in May"
	status, body = d.post(t, d.agent, edit, url.Values{"body": {first}, "contact": {contact}})
	if status != 200 || !strings.Contains(body, `data-testid="note-body">`+first+`</p>`) || strings.Contains(body, secretNote) ||
		!strings.Contains(body, "· edited") || strings.Contains(body, `data-testid="note-edit-error"`) {
		t.Errorf("the author's edit: %d %s", status, body)
	}
	status, body = d.post(t, d.sup, edit, url.Values{"body": {second}, "contact": {contact}})
	if status != 200 || !strings.Contains(body, `data-testid="note-body">`+second+`</p>`) {
		t.Errorf("the supervisor's edit: %d %s", status, body)
	}
	// Another agent: no form on their panel, and refused if they post.
	if page := consolePage(t, d.base, d.other, path); !strings.Contains(page, second) || strings.Contains(page, `data-testid="note-edit"`) ||
		strings.Contains(page, `data-testid="note-delete"`) {
		t.Errorf("another agent's panel offers to change the note: %s", page)
	}
	if status, _ := d.post(t, d.other, edit, url.Values{"body": {"overwritten"}, "contact": {contact}}); status != 403 {
		t.Errorf("another agent's edit: %d", status)
	}
	if page := consolePage(t, d.base, d.sup, path); !strings.Contains(page, second) || strings.Contains(page, "overwritten") {
		t.Errorf("the note after a refused edit: %s", page)
	}
	edits := d.audits(t, "note.edit")
	if len(edits) != 2 {
		t.Fatalf("note.edit audited %d times, want 2", len(edits))
	}
	for _, e := range edits {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), "Prefers") || strings.Contains(string(raw), "overwritten") {
			t.Errorf("an edit's audit entry holds the note's text: %s", raw)
		}
	}
}

func (d *deskSite) noteID(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := d.db.Pool.QueryRow(context.Background(), `SELECT id FROM contact_notes ORDER BY id LIMIT 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
