package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// situation is where a contact's conversation stands, for who may write
// to it and take it.
type situation string

const (
	noConversation situation = "no conversation"
	midFlow        situation = "mid-flow"
	notTaken       situation = "a hand-off nobody holds"
	heldByCaller   situation = "a hand-off the caller holds"
	heldByOther    situation = "a hand-off another agent holds"
	pausedByOther  situation = "a hand-off another agent holds and paused"
	pausedByCaller situation = "a conversation the caller paused (and so holds)"
	pausedNobody   situation = "a paused conversation nobody holds"
)

// allowed stands for the action's success in the matrix: a redirect in the
// console, 202 (reply) or 204 (take) in the API.
const allowed = 0

// handoffRules are, per action and situation, what each role is answered.
var handoffRules = map[string]map[situation]map[models.Role]int{
	// Agents reply to the hand-offs they hold; supervisors and admins anywhere.
	"reply": {
		noConversation: {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		midFlow:        {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		notTaken:       {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByCaller:   {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByOther:    {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		// With the bot paused, its holder (who paused it) answers the person.
		pausedByCaller: {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		pausedByOther:  {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		pausedNobody:   {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
	},
	// Taking a hand-off another member holds is a supervisor's action.
	"take": {
		midFlow:      {models.RoleViewer: 403, models.RoleAgent: 404, models.RoleSupervisor: 404, models.RoleAdmin: 404},
		notTaken:     {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByCaller: {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByOther:  {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
	},
	// Pausing and resuming the bot is hand-off work, but a hand-off another
	// member holds is theirs: resuming it would end it, a take-over by
	// another route.
	"pause": {
		midFlow:       {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		notTaken:      {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByCaller:  {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByOther:   {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		pausedByOther: {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
	},
	"resume": {
		midFlow:       {models.RoleViewer: 403, models.RoleAgent: 409, models.RoleSupervisor: 409, models.RoleAdmin: 409},
		notTaken:      {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByCaller:  {models.RoleViewer: 403, models.RoleAgent: allowed, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		heldByOther:   {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
		pausedByOther: {models.RoleViewer: 403, models.RoleAgent: 403, models.RoleSupervisor: allowed, models.RoleAdmin: allowed},
	},
}

// handoffSuccess is how each face answers an allowed action.
var handoffSuccess = map[bool]map[string]int{
	false: {"reply": 303, "take": 303, "pause": 303, "resume": 303},
	true:  {"reply": 202, "take": 204, "pause": 204, "resume": 204},
}

// TestAuthorisationMatrix_Handoffs asks, in the console and the API alike,
// every role to reply to, take, pause and resume a conversation in every
// situation, each on a contact of its own; a take-over is audited as one,
// and a refused pause or resume leaves the hand-off where it was.
func TestAuthorisationMatrix_Handoffs(t *testing.T) {
	s := newFullServer(t)
	doc := loadAPIDoc(t, s.base)
	ctx := context.Background()
	creds := map[models.Role]credentials{}
	for _, c := range callers[1:] {
		creds[models.Role(c)] = s.signIn(t, models.Role(c))
	}
	hash, _ := auth.HashPassword("matrix password!")
	other, err := s.staff.Create(ctx, "", "other.agent@example.org", models.RoleAgent, hash)
	if err != nil {
		t.Fatal(err)
	}
	contacts := store.NewContactStore(s.db, s.crypto)
	n := 0
	// arrange makes a contact who wrote by SMS, with a conversation in sit;
	// it returns the contact and the conversation (0: none).
	arrange := func(sit situation, caller string) (int64, int64) {
		n++
		contact, _, err := contacts.FindOrCreate(ctx, fmt.Sprintf("+1415555%04d", n))
		if err != nil {
			t.Fatal(err)
		}
		in := storetest.Inbound(t, s.db, s.crypto, contact, "hello")
		if _, err := s.db.Pool.Exec(ctx, `UPDATE messages SET status = 'processed' WHERE id = $1`, in.ID); err != nil {
			t.Fatal(err)
		}
		status, holder := "handoff", any(nil)
		switch sit {
		case noConversation:
			return contact.ID, 0
		case midFlow:
			status = "active"
		case heldByCaller:
			holder = caller
		case heldByOther:
			holder = other.ID
		case pausedByOther:
			status, holder = "paused", other.ID
		case pausedByCaller:
			status, holder = "paused", caller
		case pausedNobody:
			status = "paused"
		}
		var conv int64
		if err := s.db.Pool.QueryRow(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status, assigned_to)
			VALUES ($1, 'clinic', 'v1', 'handoff', $2, $3::uuid) RETURNING id`, contact.ID, status, holder).Scan(&conv); err != nil {
			t.Fatal(err)
		}
		return contact.ID, conv
	}
	for _, api := range []bool{false, true} {
		face := map[bool]string{false: "console", true: "API"}[api]
		for action, bySituation := range handoffRules {
			for sit, byRole := range bySituation {
				for role, want := range byRole {
					cr := creds[role]
					contact, conv := arrange(sit, cr.id)
					path, fields := "/conversations/"+itoa(conv)+"/"+action, map[string]string(nil)
					switch action {
					case "reply":
						path, fields = "/contacts/"+itoa(contact)+"/reply", map[string]string{"text": "A person writes."}
					case "pause", "resume":
						path, fields = "/conversations/"+itoa(conv)+"/override", map[string]string{"kind": action}
					}
					was := conversationState(t, s, conv)
					if !api && action == "resume" && sit != midFlow {
						// The page offers to resume exactly those it would let.
						if offered := strings.Contains(consolePage(t, s.base, cr, "/contacts/"+itoa(contact)), `data-testid="override-resume"`); offered != (want == allowed) {
							t.Errorf("console: %s, %s: resume offered %v", role, sit, offered)
						}
					}
					status, raw := handoffCall(t, s.base, cr, api, path, fields)
					if api {
						doc.check(t, "POST", "/api/v1"+path, status, raw)
					}
					ok := handoffSuccess[api][action]
					if want == allowed {
						want = ok
					}
					if status != want {
						t.Errorf("%s: %s %s, %s: %d %s, want %d", face, role, action, sit, status, raw, want)
					}
					switch action {
					case "take":
						checkTake(t, s, role, sit, conv, cr.id, other.ID, status == ok)
					case "pause", "resume":
						// A paused hand-off stays its holder's, and one
						// nobody held becomes the pauser's (with the bot
						// stopped, somebody answers); an ended one is
						// nobody's.
						now, holder := conversationState(t, s, conv), was[strings.Index(was, " ")+1:]
						if holder == "-" {
							holder = cr.id
						}
						if after := map[string]string{"pause": "paused " + holder, "resume": "ended -"}[action]; status == ok && now != after {
							t.Errorf("%s: %s %s, %s: now %s, want %s", face, role, action, sit, now, after)
						}
						if status != ok && now != was {
							t.Errorf("%s: %s %s, %s refused: now %s, was %s", face, role, action, sit, now, was)
						}
						checkCommandAudit(t, s, role, action, sit, conv, other.ID, status == ok)
					}
				}
			}
		}
	}
}

// conversationState is where conversation id stands and who holds it
// ("-": nobody): what a refused action must leave alone.
func conversationState(t *testing.T, s *fullServer, id int64) string {
	t.Helper()
	var state string
	_ = s.db.Pool.QueryRow(context.Background(), `SELECT status || ' ' || coalesce(assigned_to::text, '-') FROM conversations WHERE id = $1`, id).Scan(&state)
	return state
}

// consolePage is the console's page at path as the caller sees it.
func consolePage(t *testing.T, base string, cr credentials, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Cookie", "parley_session="+cr.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	return string(raw)
}

// handoffCall posts fields to path as the caller, by the console's form or
// the API's JSON; it returns the answer.
func handoffCall(t *testing.T, base string, cr credentials, api bool, path string, fields map[string]string) (int, []byte) {
	t.Helper()
	var req *http.Request
	if api {
		body := "{}"
		if fields != nil {
			raw, _ := json.Marshal(fields)
			body = string(raw)
		}
		req, _ = http.NewRequest("POST", base+"/api/v1"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+cr.bearer)
	} else {
		form := url.Values{"_csrf": {cr.csrf}}
		for k, v := range fields {
			form.Set(k, v)
		}
		req, _ = http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", "parley_session="+cr.cookie)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw
}

// checkTake checks who holds conv after a take (the caller when it was
// taken, whoever held it before when not) and how it was audited: a take,
// or a take-over from the other agent.
func checkTake(t *testing.T, s *fullServer, role models.Role, sit situation, conv int64, caller, other string, taken bool) {
	t.Helper()
	ctx := context.Background()
	var holder string
	_ = s.db.Pool.QueryRow(ctx, `SELECT coalesce(assigned_to::text, '') FROM conversations WHERE id = $1`, conv).Scan(&holder)
	want := map[situation]string{notTaken: "", heldByCaller: caller, heldByOther: other, midFlow: ""}[sit]
	if taken {
		want = caller
	}
	if holder != want {
		t.Errorf("%s took %s: held by %q, want %q", role, sit, holder, want)
	}
	entries, err := store.NewAuditStore(s.db, s.crypto).List(ctx, store.AuditQuery{SubjectType: "conversation", SubjectID: itoa(conv)})
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, e := range entries {
		audited = append(audited, fmt.Sprintf("%s by %v from %v", e.Action, e.ActorID == caller, e.Details["from"]))
	}
	var wantAudit []string
	switch {
	case taken && sit == heldByOther:
		wantAudit = []string{"conversation.take_over by true from " + other}
	case taken:
		wantAudit = []string{"conversation.take by true from <nil>"}
	}
	if strings.Join(audited, ";") != strings.Join(wantAudit, ";") {
		t.Errorf("%s took %s: audited %q, want %q", role, sit, audited, wantAudit)
	}
}

// checkCommandAudit checks how a pause or resume of conv was audited: as
// an override when done, from the other agent when they held it; nothing
// when refused.
func checkCommandAudit(t *testing.T, s *fullServer, role models.Role, action string, sit situation, conv int64, other string, done bool) {
	t.Helper()
	entries, err := store.NewAuditStore(s.db, s.crypto).List(context.Background(), store.AuditQuery{SubjectType: "conversation", SubjectID: itoa(conv)})
	if err != nil {
		t.Fatal(err)
	}
	var audited []string
	for _, e := range entries {
		audited = append(audited, fmt.Sprintf("%s from %v", e.Action, e.Details["from"]))
	}
	var want []string
	switch {
	case done && (sit == heldByOther || sit == pausedByOther):
		want = []string{"conversation.override from " + other}
	case done:
		want = []string{"conversation.override from <nil>"}
	}
	if strings.Join(audited, ";") != strings.Join(want, ";") {
		t.Errorf("%s %s, %s: audited %q, want %q", role, action, sit, audited, want)
	}
}
