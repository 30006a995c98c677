package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/models"
)

// callWith is call with headers (the Idempotency-Key).
func (cl *apiClient) callWith(t *testing.T, method, path string, body any, headers map[string]string) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, cl.base+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	cl.doc.check(t, method, path, resp.StatusCode, answer)
	return resp.StatusCode, answer
}

type started struct {
	ContactID      int64   `json:"contact_id"`
	ConversationID int64   `json:"conversation_id"`
	Messages       []int64 `json:"message_ids"`
	NewContact     bool    `json:"new_contact"`
}

// POST /api/v1/conversations starts a flow for a new number, once however
// often it is retried with its key; an agent may not, a number that is
// not one is refused without being repeated, and a WhatsApp start outside
// the window without a template is refused with the reason. Every answer
// is checked against the OpenAPI document.
func TestAPI_StartConversation(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	supervisor, agent := site.api(t, models.RoleSupervisor, doc), site.api(t, models.RoleAgent, doc)
	body := map[string]any{"phone": "098765 43210", "channel": "sms", "flow": "clinic", "variables": map[string]string{"doctor": "Dr Rao"}}
	key := map[string]string{"Idempotency-Key": "visit-2026-12-08"}
	status, raw := supervisor.callWith(t, "POST", "/api/v1/conversations", body, key)
	var first started
	if status != 201 || json.Unmarshal(raw, &first) != nil || !first.NewContact || len(first.Messages) != 2 {
		t.Fatalf("start: %d %s", status, raw)
	}
	if n := site.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'queued' AND contact_id = `+itoa(first.ContactID)); n != 2 {
		t.Fatalf("%d messages queued", n)
	}
	status, raw = supervisor.callWith(t, "POST", "/api/v1/conversations", body, key)
	var again started
	if status != 200 || json.Unmarshal(raw, &again) != nil || again.ConversationID != first.ConversationID || again.NewContact != first.NewContact {
		t.Fatalf("the retry: %d %s (first %+v)", status, raw, first)
	}
	if n := site.count(t, `SELECT count(*) FROM conversations`); n != 1 {
		t.Fatalf("%d conversations after the retry", n)
	}
	if status, raw := agent.callWith(t, "POST", "/api/v1/conversations", body, nil); status != 403 || errCode(raw) != "forbidden" {
		t.Fatalf("an agent: %d %s", status, raw)
	}
	bad := map[string]any{"phone": "call me maybe", "flow": "clinic"}
	if status, raw := supervisor.callWith(t, "POST", "/api/v1/conversations", bad, nil); status != 400 || strings.Contains(string(raw), "call me") {
		t.Fatalf("not a number: %d %s", status, raw)
	}
	wa := map[string]any{"phone": "+919812345678", "flow": "clinic"}
	if status, raw := supervisor.callWith(t, "POST", "/api/v1/conversations", wa, nil); status != 409 || !strings.Contains(string(raw), "template") {
		t.Fatalf("WhatsApp outside the window without a template: %d %s", status, raw)
	}
	wa["template"] = map[string]any{"name": "clinic_hello", "language": "en"}
	if status, raw := supervisor.callWith(t, "POST", "/api/v1/conversations", wa, nil); status != 201 || !strings.Contains(string(raw), `"templated":true`) {
		t.Fatalf("with a template: %d %s", status, raw)
	}
	if n := site.count(t, `SELECT count(*) FROM audit_events WHERE action = 'conversation.start' AND subject_type = 'contact'`); n != 2 {
		t.Fatalf("%d conversation.start entries, want 2 (the retry starts nothing)", n)
	}
}

// The console's form: supervisors see it, agents do not; a refusal comes
// back beside its field with what was typed kept; a start opens the
// contact's page.
func TestConsole_StartConversationForm(t *testing.T) {
	site := newConsoleSite(t, nil)
	sup := site.as(t, models.RoleSupervisor)
	resp, page := sup.do(t, "GET", "/start", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, `data-testid="start-form"`) || !strings.Contains(page, `<option value="clinic"`) || !strings.Contains(page, `data-testid="nav-n"`) {
		t.Fatalf("the form: %d\n%s", resp.StatusCode, page)
	}
	csrf := formCSRF.FindStringSubmatch(page)[1]
	key := regexp1(page, `name="key" value="([^"]+)"`)
	form := url.Values{"_csrf": {csrf}, "key": {key}, "phone": {"12"}, "channel": {"sms"}, "flow": {"clinic"},
		"var_name": {"doctor", ""}, "var_value": {"Dr Rao", ""}}
	resp, page = sup.do(t, "POST", "/start", form, nil)
	if resp.StatusCode != 400 || !strings.Contains(page, `data-testid="error-phone"`) || !strings.Contains(page, `value="Dr Rao"`) {
		t.Fatalf("a bad number: %d\n%s", resp.StatusCode, page)
	}
	form.Set("phone", "+919876543210")
	resp, _ = sup.do(t, "POST", "/start", form, nil)
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/contacts/") {
		t.Fatalf("a start: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Submitted twice (the same form, its key): one conversation.
	resp, _ = sup.do(t, "POST", "/start", form, nil)
	if resp.StatusCode != 303 || site.count(t, `SELECT count(*) FROM conversations`) != 1 {
		t.Fatalf("the second submit: %d, %d conversations", resp.StatusCode, site.count(t, `SELECT count(*) FROM conversations`))
	}
	// A new form for the same number: the running conversation, above the form.
	form.Set("key", "another")
	resp, page = sup.do(t, "POST", "/start", form, nil)
	if resp.StatusCode != 409 || !strings.Contains(page, `data-testid="start-problem"`) || !strings.Contains(page, "replace") {
		t.Fatalf("over a running conversation: %d\n%s", resp.StatusCode, page)
	}
	agent := site.as(t, models.RoleAgent)
	if resp, page := agent.do(t, "GET", "/start", nil, nil); resp.StatusCode != 403 {
		t.Fatalf("an agent: %d", resp.StatusCode)
	} else if strings.Contains(page, `data-testid="nav-n"`) {
		t.Fatal("an agent is offered the form")
	}
}

// regexp1 is the first group of pattern in page ("" when absent).
func regexp1(page, pattern string) string {
	if m := regexp.MustCompile(pattern).FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// POST /api/v1/contacts/{id}/scheduled plans a message; DELETE
// /api/v1/scheduled/{id} cancels it, once; agents may do neither.
func TestAPI_ScheduleMessage(t *testing.T) {
	site := newConsoleSite(t, nil)
	doc := loadAPIDoc(t, site.base)
	supervisor, agent := site.api(t, models.RoleSupervisor, doc), site.api(t, models.RoleAgent, doc)
	status, raw := supervisor.callWith(t, "POST", "/api/v1/conversations", map[string]any{"phone": "+919876543210", "channel": "sms", "flow": "clinic"}, nil)
	var s started
	if status != 201 || json.Unmarshal(raw, &s) != nil {
		t.Fatalf("start: %d %s", status, raw)
	}
	path := "/api/v1/contacts/" + itoa(s.ContactID) + "/scheduled"
	at := time.Now().UTC().Add(26 * time.Hour).Truncate(time.Minute)
	status, raw = supervisor.callWith(t, "POST", path, map[string]any{"at": at.Format("2006-01-02 15:04"), "text": "Bring your reports."}, nil)
	var planned struct {
		ID int64     `json:"scheduled_id"`
		At time.Time `json:"at"`
	}
	if status != 201 || json.Unmarshal(raw, &planned) != nil || !planned.At.Equal(at) {
		t.Fatalf("schedule: %d %s", status, raw)
	}
	if n := site.count(t, `SELECT count(*) FROM river_job WHERE kind = 'scheduled_message' AND state = 'scheduled'`); n != 1 {
		t.Fatalf("%d scheduled jobs", n)
	}
	if status, raw := supervisor.callWith(t, "POST", path, map[string]any{"at": "yesterday", "text": "x"}, nil); status != 400 {
		t.Fatalf("a bad time: %d %s", status, raw)
	}
	if status, _ := agent.callWith(t, "POST", path, map[string]any{"at": at.Format(time.RFC3339), "text": "x"}, nil); status != 403 {
		t.Fatalf("an agent: %d", status)
	}
	cancel := "/api/v1/scheduled/" + itoa(planned.ID)
	if status, raw := supervisor.call(t, "DELETE", cancel, nil); status != 200 {
		t.Fatalf("cancel: %d %s", status, raw)
	}
	if status, raw := supervisor.call(t, "DELETE", cancel, nil); status != 409 || errCode(raw) != "conflict" {
		t.Fatalf("cancel again: %d %s", status, raw)
	}
	if status, _ := supervisor.call(t, "DELETE", "/api/v1/scheduled/999999", nil); status != 404 {
		t.Fatalf("cancel what is not there: %d", status)
	}
}
