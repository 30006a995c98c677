package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// apiClient calls the JSON API with a staff member's bearer token and
// checks every answer against the OpenAPI document.
type apiClient struct {
	base, token string
	doc         *apiDoc
}

// api signs a new staff member of role in for the API.
func (site *consoleSite) api(t *testing.T, role models.Role, doc *apiDoc) *apiClient {
	t.Helper()
	u, err := site.staff.Create(context.Background(), "", string(role)+".api@example.org", role, "")
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := site.issuer.Issue(u, "")
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{base: site.base, token: token, doc: doc}
}

// call sends body (a string as it is, anything else as JSON) and returns
// the status and the answer, checked against the document.
func (cl *apiClient) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, cl.base+path, r)
	req.Header.Set("Authorization", "Bearer "+cl.token)
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	cl.doc.check(t, method, path, resp.StatusCode, raw)
	return resp.StatusCode, raw
}

// get calls and decodes a 200 answer into out.
func (cl *apiClient) get(t *testing.T, path string, out any) {
	t.Helper()
	status, raw := cl.call(t, "GET", path, nil)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", path, status, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

// errCode is the code of an error answer.
func errCode(raw []byte) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal(raw, &e)
	return e.Error.Code
}

type apiHit struct {
	Contact struct {
		ID    int64
		Phone string
		Name  string
	}
	Message struct{ Body string }
	More    int
}

// Search, read, page: what the console reads, as JSON, audited, with
// viewers seeing numbers masked; errors in one shape with stable codes.
func TestAPI_ReadsConversations(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	asha, ravi := site.seed(t)
	ctx := context.Background()
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	_ = convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source)
	expires := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	conv := &models.Conversation{ContactID: asha.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "ask_age", Status: models.ConversationActive,
		Variables: map[string]string{"name": "Asha"}, Language: "hi", ExpiresAt: &expires}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	agent, viewer := site.api(t, models.RoleAgent, doc), site.api(t, models.RoleViewer, doc)

	var found struct {
		Conversations []apiHit
		Next          string
	}
	agent.get(t, "/api/v1/conversations?q=knee", &found)
	if len(found.Conversations) != 1 || found.Conversations[0].Contact.ID != asha.ID || found.Conversations[0].Message.Body != "I need an appointment for my knee" ||
		found.Conversations[0].Contact.Phone != "+919876543210" || found.Next != "" {
		t.Fatalf("search for a word: %+v", found)
	}
	// Keyset paging: one row a page, the whole list once.
	var seen []int64
	for after, pages := "", 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		found.Conversations, found.Next = nil, ""
		agent.get(t, "/api/v1/conversations?limit=1&after="+after, &found)
		for _, h := range found.Conversations {
			seen = append(seen, h.Contact.ID)
		}
		if found.Next == "" {
			break
		}
		after = found.Next
	}
	// Three messages, newest first: Ravi's, then Asha's two, one
	// conversation each: a later page does not list Asha again.
	if fmt.Sprint(seen) != fmt.Sprint([]int64{ravi.ID, asha.ID}) {
		t.Fatalf("pages gave contacts %v", seen)
	}
	viewer.get(t, "/api/v1/conversations?q=verma", &found)
	if len(found.Conversations) != 1 || found.Conversations[0].Contact.Phone != "+••••••••3210" {
		t.Fatalf("a viewer's search: %+v", found)
	}

	var one struct {
		Contact struct {
			Phone       string
			PhoneMasked bool `json:"phone_masked"`
			Name        string
		}
		Conversation *struct {
			ID        int64
			Node      string
			Variables map[string]string
			ExpiresAt *time.Time `json:"expires_at"`
		}
	}
	viewer.get(t, "/api/v1/contacts/"+itoa(asha.ID), &one)
	if one.Contact.Name != "Asha Verma" || !one.Contact.PhoneMasked || strings.Contains(one.Contact.Phone, "98765") || one.Conversation == nil ||
		one.Conversation.Node != "ask_age" || one.Conversation.Variables["name"] != "Asha" || !one.Conversation.ExpiresAt.Equal(expires) {
		t.Fatalf("a contact read by a viewer: %+v %+v", one.Contact, one.Conversation)
	}
	agent.get(t, "/api/v1/contacts/"+itoa(ravi.ID), &one)
	if one.Conversation != nil || one.Contact.Phone != "+14155550100" {
		t.Fatalf("a contact with no conversation: %+v", one)
	}
	var c1 struct {
		ID     int64
		Status string
		Timers []struct{ Kind string }
	}
	agent.get(t, "/api/v1/conversations/"+itoa(conv.ID), &c1)
	if c1.ID != conv.ID || c1.Status != "active" {
		t.Fatalf("a conversation: %+v", c1)
	}
	var msgs struct {
		Messages []struct {
			Body, Direction string
			Attachments     []any
		}
		Next string
	}
	agent.get(t, "/api/v1/contacts/"+itoa(asha.ID)+"/messages?limit=1", &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Body != "What is your name?" || msgs.Messages[0].Direction != "out" || msgs.Next == "" {
		t.Fatalf("the first page of messages: %+v", msgs)
	}
	agent.get(t, "/api/v1/contacts/"+itoa(asha.ID)+"/messages?limit=1&after="+msgs.Next, &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0].Body != "I need an appointment for my knee" {
		t.Fatalf("the second page of messages: %+v", msgs)
	}

	for _, tc := range []struct {
		path, code string
		status     int
	}{
		{"/api/v1/contacts/987654", "not_found", 404},
		{"/api/v1/contacts/987654/messages", "not_found", 404},
		{"/api/v1/conversations/987654", "not_found", 404},
		{"/api/v1/conversations?state=sleeping", "invalid", 400},
		{"/api/v1/conversations?since=yesterday", "invalid", 400},
		{"/api/v1/conversations?limit=0", "invalid", 400},
		{"/api/v1/conversations?limit=201", "invalid", 400},
		{"/api/v1/conversations?after=-3", "invalid", 400},
		{"/api/v1/audit", "forbidden", 403}, // an agent may not read the audit log
	} {
		status, raw := agent.call(t, "GET", tc.path, nil)
		if status != tc.status || errCode(raw) != tc.code {
			t.Errorf("GET %s: %d %s, want %d %s", tc.path, status, raw, tc.status, tc.code)
		}
	}
	var actions string
	_ = site.db.Pool.QueryRow(ctx, `SELECT string_agg(DISTINCT action, ',') FROM audit_events`).Scan(&actions)
	if actions != "contact.view,conversation.view,messages.search" {
		t.Fatalf("audited %q", actions)
	}
}

// Reply, resend (once), bulk resend, overrides and taking a hand-off, each
// with the console's permission and audit; a request body that is not
// what the route takes is refused with the reason.
func TestAPI_StaffActions(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	asha, ravi := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	agent, viewer, supervisor := site.api(t, models.RoleAgent, doc), site.api(t, models.RoleViewer, doc), site.api(t, models.RoleSupervisor, doc)
	count := func(sql string, args ...any) int {
		var n int
		if err := site.db.Pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Supervisors write to anyone (who may, where: TestAuthorisationMatrix_Handoffs).
	status, raw := supervisor.call(t, "POST", "/api/v1/contacts/"+itoa(ravi.ID)+"/reply", map[string]string{"text": "Your refill is ready."})
	var queued struct {
		MessageID int64 `json:"message_id"`
	}
	_ = json.Unmarshal(raw, &queued)
	if status != 202 || count(`SELECT count(*) FROM messages WHERE id = $1 AND contact_id = $2 AND status = 'queued'`, queued.MessageID, ravi.ID) != 1 {
		t.Fatalf("reply: %d %s", status, raw)
	}
	for _, tc := range []struct {
		label string
		who   *apiClient
		body  any
		code  string
	}{
		{"not JSON", agent, "text=hi", "invalid"},
		{"an unknown field", agent, map[string]string{"txt": "hi"}, "invalid"},
		{"a number for text", agent, map[string]int{"text": 3}, "invalid"},
		{"two values", agent, `{"text":"a"}{"text":"b"}`, "invalid"},
		{"empty", agent, map[string]string{"text": "  "}, "invalid"},
		{"a saved reply's gap left unfilled", supervisor, map[string]string{"text": "Your visit is at {{appointment_at}}."}, "invalid"},
		{"a viewer", viewer, map[string]string{"text": "hi"}, "forbidden"},
	} {
		status, raw := tc.who.call(t, "POST", "/api/v1/contacts/"+itoa(ravi.ID)+"/reply", tc.body)
		if errCode(raw) != tc.code || status < 400 || strings.Contains(string(raw), "text=hi") {
			t.Errorf("%s: %d %s, want %s", tc.label, status, raw, tc.code)
		}
	}
	if n := count(`SELECT count(*) FROM messages WHERE contact_id = $1 AND direction = 'out'`, ravi.ID); n != 1 {
		t.Fatalf("%d replies queued to Ravi, want the first alone", n)
	}
	// WhatsApp's window closed for Asha: a conflict, with the reason.
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET created_at = now() - interval '25 hours' WHERE contact_id = $1`, asha.ID)
	if status, raw := supervisor.call(t, "POST", "/api/v1/contacts/"+itoa(asha.ID)+"/reply", map[string]string{"text": "Hello again"}); status != 409 || errCode(raw) != "conflict" {
		t.Fatalf("a reply outside the window: %d %s", status, raw)
	}

	// Resend: once, however often asked; the same new id each time.
	var failed int64
	_ = site.db.Pool.QueryRow(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code, error_reason, created_at)
		VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'failed', 'parley:uncertain', 'It may or may not have arrived.', now() - interval '1 hour')
		RETURNING id`, ravi.ID).Scan(&failed)
	var ids []int64
	for range 2 {
		status, raw := agent.call(t, "POST", "/api/v1/messages/"+itoa(failed)+"/resend", nil)
		var q struct {
			MessageID int64 `json:"message_id"`
		}
		_ = json.Unmarshal(raw, &q)
		if status != 202 || q.MessageID == 0 {
			t.Fatalf("resend: %d %s", status, raw)
		}
		ids = append(ids, q.MessageID)
	}
	if ids[0] != ids[1] || count(`SELECT count(*) FROM messages WHERE resend_of = $1`, failed) != 1 {
		t.Fatalf("resent as %v", ids)
	}
	if status, raw := agent.call(t, "POST", "/api/v1/messages/"+itoa(queued.MessageID)+"/resend", nil); status != 409 || errCode(raw) != "conflict" {
		t.Fatalf("resending a message that did not fail: %d %s", status, raw)
	}

	// Bulk resend: counted first, then sent, once.
	for _, age := range []string{"2 hours", "3 hours", "40 days"} {
		_, _ = site.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code, created_at)
			VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'failed', '20500', now() - $2::interval)`, ravi.ID, age)
	}
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02") }
	var bulk struct {
		Found, Refused int
		Resent         []int64
		More           bool
	}
	rangeOf := map[string]any{"since": day(-2), "until": day(0), "dry_run": true}
	if status, raw := agent.call(t, "POST", "/api/v1/messages/resend", rangeOf); status != 200 || json.Unmarshal(raw, &bulk) != nil || bulk.Found != 2 || len(bulk.Resent) != 0 {
		t.Fatalf("a dry run: %d %s", status, raw)
	}
	delete(rangeOf, "dry_run")
	for i := range 2 {
		bulk.Resent = nil
		status, raw := agent.call(t, "POST", "/api/v1/messages/resend", rangeOf)
		if status != 200 || json.Unmarshal(raw, &bulk) != nil || len(bulk.Resent) != 2-2*i || bulk.More {
			t.Fatalf("bulk resend, go %d: %d %s", i+1, status, raw)
		}
	}
	if status, raw := agent.call(t, "POST", "/api/v1/messages/resend", map[string]any{"since": day(0)}); status != 400 || errCode(raw) != "invalid" {
		t.Fatalf("a range without its end: %d %s", status, raw)
	}

	// Overrides: agents pause and resume, supervisors move.
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	_ = convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source)
	conv := &models.Conversation{ContactID: ravi.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "ask_age", Status: models.ConversationActive}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		var s string
		_ = site.db.Pool.QueryRow(ctx, `SELECT status || '@' || node FROM conversations WHERE id = $1`, conv.ID).Scan(&s)
		return s
	}
	over := "/api/v1/conversations/" + itoa(conv.ID) + "/override"
	for _, tc := range []struct {
		who    *apiClient
		body   any
		status int
		after  string
	}{
		{agent, map[string]string{"kind": "pause"}, 204, "paused@ask_age"},
		{agent, map[string]string{"kind": "move", "node": "goodbye"}, 403, "paused@ask_age"},
		{viewer, map[string]string{"kind": "resume"}, 403, "paused@ask_age"},
		{supervisor, map[string]string{"kind": "resume"}, 204, "active@ask_age"},
		{supervisor, map[string]string{"kind": "move", "node": "nowhere"}, 400, "active@ask_age"},
		{supervisor, map[string]string{"kind": "fly"}, 400, "active@ask_age"},
		{supervisor, map[string]string{"kind": "move", "node": "handoff"}, 204, "handoff@handoff"},
	} {
		if status, raw := tc.who.call(t, "POST", over, tc.body); status != tc.status || state() != tc.after {
			t.Errorf("override %v: %d %s, now %s; want %d, %s", tc.body, status, raw, state(), tc.status, tc.after)
		}
	}
	if status, _ := supervisor.call(t, "POST", "/api/v1/conversations/987654/override", map[string]string{"kind": "pause"}); status != 404 {
		t.Errorf("an override of nothing: %d", status)
	}

	// The hand-off queue, and taking from it.
	var queue struct {
		Handoffs []struct {
			ConversationID int64   `json:"conversation_id"`
			AssignedTo     *string `json:"assigned_to"`
		}
	}
	agent.get(t, "/api/v1/handoffs", &queue)
	if len(queue.Handoffs) != 1 || queue.Handoffs[0].ConversationID != conv.ID || queue.Handoffs[0].AssignedTo != nil {
		t.Fatalf("the hand-off queue: %+v", queue)
	}
	if status, raw := agent.call(t, "POST", "/api/v1/conversations/"+itoa(conv.ID)+"/take", nil); status != 204 {
		t.Fatalf("take: %d %s", status, raw)
	}
	agent.get(t, "/api/v1/handoffs", &queue)
	if queue.Handoffs[0].AssignedTo == nil {
		t.Fatal("taken, but not assigned")
	}
	if status, _ := viewer.call(t, "POST", "/api/v1/conversations/"+itoa(conv.ID)+"/take", nil); status != 403 {
		t.Fatalf("a viewer takes: %d", status)
	}

	// The audit log, as the API reads it: filtered, paged, its chain
	// checked; the reading audited too.
	var log struct {
		Entries []struct {
			Seq        int64
			Action     string
			ActorEmail string `json:"actor_email"`
		}
		Next string
	}
	supervisor.get(t, "/api/v1/audit?action=conversation.&limit=2", &log)
	if len(log.Entries) != 2 || log.Next == "" || log.Entries[0].Action != "conversation.take" || log.Entries[0].ActorEmail != "agent.api@example.org" {
		t.Fatalf("the audit log's first page: %+v", log)
	}
	first := log.Entries[0].Seq
	supervisor.get(t, "/api/v1/audit?action=conversation.&limit=2&after="+log.Next, &log)
	if len(log.Entries) == 0 || log.Entries[0].Seq >= first {
		t.Fatalf("the second page: %+v", log)
	}
	var verified struct {
		Intact  bool
		Entries int
	}
	supervisor.get(t, "/api/v1/audit/verify", &verified)
	if !verified.Intact || verified.Entries < 10 {
		t.Fatalf("the chain: %+v", verified)
	}
	var actions string
	_ = site.db.Pool.QueryRow(ctx, `SELECT string_agg(action || ':' || actor_role, ',' ORDER BY seq) FROM audit_events
		WHERE action IN ('conversation.reply', 'message.resend', 'messages.bulk_resend', 'conversation.take', 'audit.read')`).Scan(&actions)
	want := "conversation.reply:supervisor,message.resend:agent,messages.bulk_resend:agent,message.resend:agent,message.resend:agent,messages.bulk_resend:agent," +
		"conversation.take:agent,audit.read:supervisor,audit.read:supervisor,audit.read:supervisor"
	if actions != want {
		t.Fatalf("audited\n%s\nwant\n%s", actions, want)
	}
}

// An admin's export of a contact reads as the document says (snake_case
// throughout), and the erasure answers with its counts.
func TestAPI_ExportAndErase(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	asha, _ := site.seed(t)
	admin := site.api(t, models.RoleAdmin, doc)
	var exp struct {
		Contact struct {
			Address string
			Name    string
		}
		Messages []struct{ Body string }
	}
	// A failed message sent again: the export says which one the resend
	// sends again, as its schema does (answers are checked against it).
	if _, err := site.db.Pool.Exec(context.Background(), `WITH f AS (
			INSERT INTO messages (id, contact_id, direction, channel, provider, status) VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'failed') RETURNING id)
		INSERT INTO messages (id, contact_id, direction, channel, provider, status, resend_of)
		SELECT nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'queued', f.id FROM f`, asha.ID); err != nil {
		t.Fatal(err)
	}
	admin.get(t, "/api/v1/contacts/"+itoa(asha.ID)+"/export", &exp)
	if exp.Contact.Address != "+919876543210" || exp.Contact.Name != "Asha Verma" || len(exp.Messages) != 4 {
		t.Fatalf("the export: %+v", exp)
	}
	status, raw := admin.call(t, "DELETE", "/api/v1/contacts/"+itoa(asha.ID), nil)
	var erased struct{ Erased struct{ Messages int } }
	if status != 200 || json.Unmarshal(raw, &erased) != nil || erased.Erased.Messages != 4 {
		t.Fatalf("the erasure: %d %s", status, raw)
	}
	if status, raw := admin.call(t, "GET", "/api/v1/contacts/"+itoa(asha.ID)+"/export", nil); status != 404 || errCode(raw) != "not_found" {
		t.Fatalf("an erased contact's export: %d %s", status, raw)
	}
}
