package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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

// signInAs signs in a second member of a role under another email.
func (d *deskSite) signInAs(t *testing.T, email string, role models.Role) credentials {
	t.Helper()
	u, err := d.staff.Create(context.Background(), "", email, role, "")
	if err != nil {
		t.Fatal(err)
	}
	bearer, _, _ := d.local.Issue(u, "")
	return credentials{id: u.ID, bearer: bearer}
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
