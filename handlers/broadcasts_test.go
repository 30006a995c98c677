package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/models"
)

// The broadcast API through the real router and a real database: a CSV
// is planned (bad and repeated lines reported by line, never echoed),
// confirmed, paused, resumed and cancelled, each once and in that order
// (a second cancel conflicts); an agent may do none of it; every step is
// audited without a phone number; and the API's answers fit its
// document.
func TestBroadcastAPI_PlanConfirmPauseResumeCancel(t *testing.T) {
	s := newFullServer(t)
	doc := loadAPIDoc(t, s.base)
	sup := &apiClient{base: s.base, token: s.signIn(t, models.RoleSupervisor).bearer, doc: doc}
	agent := &apiClient{base: s.base, token: s.signIn(t, models.RoleAgent).bearer, doc: doc}
	csv := "phone,name\n+919876500001,Asha\n+919876500002,Ravi\nnot a number,X\n+919876500001,Asha again\n+919876500003,Meera\n"
	req := map[string]any{"name": "Camp", "channel": "simulator", "template": map[string]any{"name": "camp", "language": "en",
		"params": map[string]string{"1": "{{name}}"}}, "csv": csv}
	if status, _ := agent.call(t, "POST", "/api/v1/broadcasts", req); status != 403 {
		t.Fatalf("an agent planned a broadcast: %d", status)
	}
	// An empty CSV is refused, not taken for "no CSV" (everyone).
	empty := map[string]any{"name": "Camp", "channel": "simulator", "template": req["template"], "csv": ""}
	if status, raw := sup.call(t, "POST", "/api/v1/broadcasts", empty); status != 400 || !bytes.Contains(raw, []byte("CSV")) {
		t.Fatalf("an empty CSV: %d %s", status, raw)
	}
	status, raw := sup.call(t, "POST", "/api/v1/broadcasts", req)
	if status != 201 {
		t.Fatalf("plan: %d %s", status, raw)
	}
	if bytes.Contains(raw, []byte("not a number")) || bytes.Contains(raw, []byte("98765")) {
		t.Fatalf("the plan repeats a line's content: %s", raw)
	}
	var plan struct {
		Broadcast models.Broadcast         `json:"broadcast"`
		Progress  models.BroadcastProgress `json:"progress"`
		BadLines  []models.BadLine         `json:"bad_lines"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Progress.Reached != 3 || plan.Progress.Excluded[models.ExcludedInvalidNumber] != 1 || plan.Progress.Excluded[models.ExcludedDuplicate] != 1 ||
		len(plan.BadLines) != 1 || plan.BadLines[0].Line != 4 || plan.Broadcast.Status != models.BroadcastDraft {
		t.Fatalf("plan = %s", raw)
	}
	path := fmt.Sprintf("/api/v1/broadcasts/%d", plan.Broadcast.ID)
	for _, step := range []struct {
		action string
		want   int
	}{{"pause", 409}, {"confirm", 204}, {"confirm", 409}, {"pause", 204}, {"resume", 204}, {"cancel", 204}, {"cancel", 409}, {"resume", 409}} {
		if status, raw := sup.call(t, "POST", path+"/"+step.action, nil); status != step.want {
			t.Fatalf("%s: %d %s, want %d", step.action, status, raw, step.want)
		}
	}
	var got struct {
		Broadcast models.Broadcast         `json:"broadcast"`
		Progress  models.BroadcastProgress `json:"progress"`
	}
	sup.get(t, path, &got)
	if got.Broadcast.Status != models.BroadcastCancelled || got.Progress.Cancelled != 3 || got.Broadcast.FinishedAt == nil {
		t.Fatalf("after cancel: %+v %+v", got.Broadcast, got.Progress)
	}
	var list struct{ Broadcasts []models.Broadcast }
	sup.get(t, "/api/v1/broadcasts", &list)
	if len(list.Broadcasts) != 1 || list.Broadcasts[0].ID != plan.Broadcast.ID {
		t.Fatalf("list = %+v", list)
	}
	_, audit := sup.call(t, "GET", "/api/v1/audit?limit=200", nil)
	for _, action := range []string{"broadcast.create", "broadcast.confirm", "broadcast.pause", "broadcast.resume", "broadcast.cancel", "broadcast.read", "broadcasts.list"} {
		if !bytes.Contains(audit, []byte(`"`+action+`"`)) {
			t.Errorf("%s not audited", action)
		}
	}
	if bytes.Contains(audit, []byte("98765")) || bytes.Contains(audit, []byte("Asha")) {
		t.Errorf("the audit log holds a number or a name: %s", audit)
	}
}

// An audience's CSV may be up to 10 MB; every other request keeps the
// server's 1 MiB.
func TestBroadcastAPI_LargeCSVOnlyWhereItGoes(t *testing.T) {
	s := newFullServer(t)
	token := s.signIn(t, models.RoleSupervisor).bearer
	var csv strings.Builder
	csv.WriteString("phone,note\n")
	for i := 0; csv.Len() < 2<<20; i++ {
		fmt.Fprintf(&csv, "+9198%08d,%s\n", i, strings.Repeat("x", 40))
	}
	big, _ := json.Marshal(map[string]any{"name": "Big", "channel": "simulator", "template": map[string]any{"name": "camp", "language": "en"}, "csv": csv.String()})
	for _, tc := range []struct {
		path string
		want int
	}{{"/api/v1/broadcasts", 201}, {"/api/v1/messages/resend", 413}} {
		req, _ := http.NewRequest("POST", s.base+tc.path, bytes.NewReader(big))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s with %d bytes: %d, want %d", tc.path, len(big), resp.StatusCode, tc.want)
		}
	}
}

// A time to send without an offset is the clinic's; confirmed, the
// broadcast waits for it (scheduled), its driver queued for then.
func TestBroadcastAPI_SendAtInTheClinicsTimeZone(t *testing.T) {
	s := newFullServer(t)
	doc := loadAPIDoc(t, s.base)
	sup := &apiClient{base: s.base, token: s.signIn(t, models.RoleSupervisor).bearer, doc: doc}
	status, raw := sup.call(t, "POST", "/api/v1/broadcasts", map[string]any{"name": "Later", "channel": "simulator",
		"template": map[string]any{"name": "camp", "language": "en"}, "csv": "phone\n+919876500001\n", "send_at": "2030-01-02T10:00"})
	if status != 201 {
		t.Fatalf("plan: %d %s", status, raw)
	}
	var plan struct {
		Broadcast models.Broadcast `json:"broadcast"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC) // the test server's zone: UTC
	if plan.Broadcast.SendAt == nil || !plan.Broadcast.SendAt.Equal(want) {
		t.Fatalf("send_at = %v, want %v", plan.Broadcast.SendAt, want)
	}
	path := fmt.Sprintf("/api/v1/broadcasts/%d", plan.Broadcast.ID)
	if status, raw := sup.call(t, "POST", path+"/confirm", nil); status != 204 {
		t.Fatalf("confirm: %d %s", status, raw)
	}
	var got struct{ Broadcast models.Broadcast }
	sup.get(t, path, &got)
	if got.Broadcast.Status != models.BroadcastScheduled {
		t.Fatalf("confirmed for later: %s, want scheduled", got.Broadcast.Status)
	}
	var at time.Time
	if err := s.db.Gorm.Raw(`SELECT scheduled_at FROM river_job WHERE kind = 'broadcast_drive'`).Scan(&at).Error; err != nil || !at.Equal(want) {
		t.Fatalf("the driver is queued for %v (%v), want %v", at, err, want)
	}
	if status, _ := sup.call(t, "POST", "/api/v1/broadcasts", map[string]any{"name": "Bad time", "channel": "simulator",
		"template": map[string]any{"name": "camp", "language": "en"}, "csv": "phone\n+919876500001\n", "send_at": "tomorrow"}); status != 400 {
		t.Fatalf("a time that is not one: %d", status)
	}
}

// The console's broadcast form, sent through HTMX, is refused in place
// (422, the reason, not an error page), so what was typed and the file
// chosen stay in the form; planned, it goes on to the broadcast's page.
func TestBroadcastConsole_RefusedInPlace(t *testing.T) {
	s := newFullServer(t)
	creds := s.signIn(t, models.RoleSupervisor)
	b := &browser{site: &consoleSite{base: s.base}, cookie: creds.cookie}
	form := url.Values{"_csrf": {creds.csrf}, "name": {"Camp"}, "channel": {"simulator"}, "start_flow": {"no_such_flow"}}
	resp, body := b.do(t, "POST", "/broadcasts", form, htmx("/broadcasts"))
	if resp.StatusCode != 422 || !strings.Contains(body, `data-testid="refused"`) || !strings.Contains(body, "no_such_flow") || strings.Contains(body, "<html") {
		t.Fatalf("an unknown flow: %d\n%s", resp.StatusCode, body)
	}
	form.Del("start_flow")
	form.Set("template", "camp")
	form.Set("language", "en")
	resp, body = b.do(t, "POST", "/broadcasts", form, htmx("/broadcasts"))
	if resp.StatusCode != 204 || !strings.HasPrefix(resp.Header.Get("HX-Redirect"), "/broadcasts/") {
		t.Fatalf("planned: %d %q\n%s", resp.StatusCode, resp.Header.Get("HX-Redirect"), body)
	}
}
