package handlers_test

import (
	"bufio"
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/auth"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/internal/store/storetest"
	"github.com/parley-chat/parley/models"
)

// seed stores a conversation: a named WhatsApp contact writing and being
// answered, and an SMS contact.
func (site *consoleSite) seed(t *testing.T) (asha, ravi *models.Contact) {
	t.Helper()
	ctx := context.Background()
	contacts, messages := store.NewContactStore(site.db, site.crypto), store.NewMessageStore(site.db, site.crypto)
	var err error
	if asha, _, err = contacts.FindOrCreate(ctx, "whatsapp:+919876543210"); err != nil {
		t.Fatal(err)
	}
	if err := contacts.SetName(ctx, nil, asha.ID, "Asha Verma"); err != nil {
		t.Fatal(err)
	}
	if ravi, _, err = contacts.FindOrCreate(ctx, "+14155550100"); err != nil {
		t.Fatal(err)
	}
	// Each written by its own path: a webhook's, then processing's (which
	// indexes the words of what came in and answers).
	knee := storetest.Inbound(t, site.db, site.crypto, asha, "I need an appointment for my knee")
	answer := &models.Message{ContactID: asha.ID, Channel: models.ChannelWhatsApp, Provider: "test", Body: "What is your name?", Status: models.StatusDelivered}
	if err := messages.InsertReplies(ctx, nil, []*models.Message{answer}); err != nil {
		t.Fatal(err)
	}
	refill := storetest.Inbound(t, site.db, site.crypto, ravi, "refill my prescription please")
	if err := messages.IndexWords(ctx, nil, knee, refill); err != nil {
		t.Fatal(err)
	}
	if err := messages.MarkProcessed(ctx, nil, []int64{knee.ID, refill.ID}); err != nil {
		t.Fatal(err)
	}
	return asha, ravi
}

func (site *consoleSite) as(t *testing.T, role models.Role) *browser {
	t.Helper()
	email := string(role) + "@example.org"
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := site.staff.Create(context.Background(), "", email, role, hash); err != nil {
		t.Fatal(err)
	}
	b := &browser{site: site}
	if resp := b.signIn(t, email, "a long enough password", "/"); resp.StatusCode != 303 {
		t.Fatalf("sign-in as %s: %d", role, resp.StatusCode)
	}
	return b
}

func TestInbox_SearchesByPhoneNameAndWords(t *testing.T) {
	site := newConsoleSite(t, nil)
	site.seed(t)
	agent := site.as(t, models.RoleAgent)
	tests := []struct {
		label, q string
		want     []string // bodies found: a conversation's newest message found stands for it
	}{
		{"everything, newest first", "", []string{"refill my prescription please", "What is your name?"}},
		{"a number as people type it", "098765 43210", []string{"What is your name?"}},
		{"a name word", "verma", []string{"What is your name?"}},
		{"words of an older message", "knee", []string{"I need an appointment for my knee"}},
		{"message words", "Prescription", []string{"refill my prescription please"}},
		{"nothing", "zebra", nil},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			// The live search's fragment, as HTMX asks for it.
			resp, page := agent.do(t, "GET", "/inbox/results?"+url.Values{"q": {tt.q}}.Encode(), nil, map[string]string{"HX-Request": "true"})
			if resp.StatusCode != 200 || strings.Contains(page, "<html") {
				t.Fatalf("%d, a whole page: %v", resp.StatusCode, strings.Contains(page, "<html"))
			}
			var got []string
			for _, part := range strings.Split(page, `data-testid="hit"`)[1:] {
				for _, w := range []string{"refill my prescription please", "What is your name?", "I need an appointment for my knee"} {
					if strings.Contains(part, w) {
						got = append(got, w)
					}
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("found %q, want %q", got, tt.want)
			}
			if len(tt.want) == 0 && !strings.Contains(page, `data-testid="no-results"`) {
				t.Fatal("no word for an empty result")
			}
		})
	}
}

// Viewers see numbers masked; every read is audited, the search's words
// sealed.
func TestInbox_ViewersSeeMaskedNumbersAndReadsAreAudited(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	viewer, agent := site.as(t, models.RoleViewer), site.as(t, models.RoleAgent)
	_, page := viewer.do(t, "GET", "/?q=knee", nil, nil)
	if !strings.Contains(page, "+••••••••3210") || strings.Contains(page, "9876543210") {
		t.Fatalf("a viewer's inbox shows the number: %s", page)
	}
	resp, page := viewer.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "Asha Verma") || strings.Contains(page, "9876543210") ||
		!strings.Contains(page, `data-testid="message-in"`) || !strings.Contains(page, `data-testid="message-out"`) {
		t.Fatalf("a viewer's contact page: %d\n%s", resp.StatusCode, page)
	}
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); !strings.Contains(page, "+919876543210") || !strings.Contains(page, `data-testid="ticks-delivered"`) {
		t.Fatal("an agent does not see the number, or the reply's delivery")
	}
	if resp, _ := agent.do(t, "GET", "/contacts/987654", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a contact that is not there: %d", resp.StatusCode)
	}
	var actions string
	var plain int
	_ = site.db.Pool.QueryRow(context.Background(), `SELECT string_agg(action || ':' || actor_role, ',' ORDER BY seq),
		count(*) FILTER (WHERE position('knee'::bytea in coalesce(details_enc, ''::bytea)) > 0) FROM audit_events WHERE action NOT LIKE 'staff.%'`).Scan(&actions, &plain)
	want := "messages.search:viewer,contact.view:viewer,contact.view:agent,contact.view:agent"
	if actions != want || plain != 0 {
		t.Fatalf("audited %q (the search's words in the clear: %d), want %q", actions, plain, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var formCSRF = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// A reply goes out through the pipeline (stored, queued to send); it is
// refused with the reason when WhatsApp's window has closed; an agent
// replies to the hand-offs they hold and is told why not elsewhere;
// viewers get no reply box and their posts are refused.
func TestInbox_Reply(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, ravi := site.seed(t)
	ctx := context.Background()
	agent := site.as(t, models.RoleAgent)
	// The seed's messages have no provider to answer through: give them one.
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)
	if csrf == nil || strings.Contains(page, `data-testid="reply-form"`) || !strings.Contains(page, "agents reply to hand-offs they have taken") {
		t.Fatal("an agent is offered a reply box to a contact the bot answers, or not told why not")
	}
	resp, page := agent.do(t, "POST", "/contacts/"+itoa(ravi.ID)+"/reply", url.Values{"_csrf": {csrf[1]}, "text": {"Your refill is ready."}}, nil)
	if resp.StatusCode != 403 || !strings.Contains(page, "agents reply to hand-offs they have taken") {
		t.Fatalf("an agent's reply to a contact the bot answers: %d\n%s", resp.StatusCode, page)
	}
	// Ravi is handed off, and the agent takes him.
	var conv int64
	if err := site.db.Pool.QueryRow(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status) VALUES ($1, 'clinic', 'v1', 'handoff', 'handoff')
		RETURNING id`, ravi.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	if resp, _ := agent.do(t, "POST", "/conversations/"+itoa(conv)+"/take", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 303 {
		t.Fatalf("take: %d", resp.StatusCode)
	}
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil); !strings.Contains(page, `data-testid="reply-form"`) {
		t.Fatal("no reply box for the agent holding the hand-off")
	}
	resp, _ = agent.do(t, "POST", "/contacts/"+itoa(ravi.ID)+"/reply", url.Values{"_csrf": {csrf[1]}, "text": {"Your refill is ready."}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("reply: %d", resp.StatusCode)
	}
	var n int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE contact_id = $1 AND direction = 'out' AND status = 'queued'`, ravi.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("%d replies queued", n)
	}
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'send_message'`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d send jobs", n)
	}
	// Asha wrote on WhatsApp more than a day ago; a supervisor, who may
	// write to her, is told the window is closed.
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET created_at = now() - interval '25 hours' WHERE contact_id = $1`, asha.ID)
	supervisor := site.as(t, models.RoleSupervisor)
	_, page = supervisor.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	scsrf := formCSRF.FindStringSubmatch(page)
	resp, page = supervisor.do(t, "POST", "/contacts/"+itoa(asha.ID)+"/reply", url.Values{"_csrf": {scsrf[1]}, "text": {"Hello again"}}, nil)
	if resp.StatusCode != 409 || !strings.Contains(page, "24 hours") {
		t.Fatalf("reply outside the window: %d\n%s", resp.StatusCode, page)
	}
	viewer := site.as(t, models.RoleViewer)
	_, page = viewer.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil)
	if strings.Contains(page, `data-testid="reply-form"`) {
		t.Fatal("a viewer gets a reply box")
	}
	vcsrf := formCSRF.FindStringSubmatch(page)
	if resp, _ := viewer.do(t, "POST", "/contacts/"+itoa(ravi.ID)+"/reply", url.Values{"_csrf": {vcsrf[1]}, "text": {"hi"}}, nil); resp.StatusCode != 403 {
		t.Fatalf("a viewer's reply: %d", resp.StatusCode)
	}
	if resp, _ := agent.do(t, "POST", "/contacts/"+itoa(ravi.ID)+"/reply", url.Values{"text": {"no token"}}, nil); resp.StatusCode != 403 {
		t.Fatalf("a reply without the CSRF token: %d", resp.StatusCode)
	}
}

// A failed message is sent again as a new message, once, however often
// the button is pressed.
func TestInbox_ResendOnce(t *testing.T) {
	site := newConsoleSite(t, nil)
	_, ravi := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	var failed int64
	_ = site.db.Pool.QueryRow(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code, error_reason)
		VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'failed', 'parley:uncertain', 'It may or may not have arrived.')
		RETURNING id`, ravi.ID).Scan(&failed)
	agent := site.as(t, models.RoleAgent)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil)
	if !strings.Contains(page, `data-testid="resend"`) || !strings.Contains(page, "It may or may not have arrived.") {
		t.Fatal("a failed message has no resend button, or no reason")
	}
	// From the workspace, the resend returns to the workspace, also once its
	// timeline was fetched again; a way back elsewhere is not followed.
	backOf := func(page string) string {
		i := strings.Index(page, `action="/messages/`+itoa(failed)+`/resend"`)
		if i < 0 {
			return ""
		}
		m := regexp.MustCompile(`name="back" value="([^"]*)"`).FindStringSubmatch(page[i:])
		return html.UnescapeString(m[1])
	}
	if _, work := agent.do(t, "GET", "/work?view=all&c="+itoa(ravi.ID), nil, nil); !strings.HasPrefix(backOf(work), "/work?") {
		t.Errorf("the workspace's resend returns to %q", backOf(work))
	}
	if _, tl := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID)+"/timeline?back="+url.QueryEscape("/work?view=failed&c="+itoa(ravi.ID)), nil, nil); backOf(tl) != "/work?view=failed&c="+itoa(ravi.ID) {
		t.Errorf("the workspace's timeline fetched again: resend returns to %q", backOf(tl))
	}
	if _, tl := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID)+"/timeline?back="+url.QueryEscape("https://evil.example/"), nil, nil); backOf(tl) != "/" {
		t.Errorf("a way back to another site: %q", backOf(tl))
	}
	csrf := formCSRF.FindStringSubmatch(page)
	for range 3 { // a double (triple) click
		resp, _ := agent.do(t, "POST", "/messages/"+itoa(failed)+"/resend", url.Values{"_csrf": {csrf[1]}, "back": {"/contacts/" + itoa(ravi.ID)}}, nil)
		if resp.StatusCode != 303 || resp.Header.Get("Location") != "/contacts/"+itoa(ravi.ID) {
			t.Fatalf("resend: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Sent again: the failed one says so and offers no second resend.
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil); strings.Contains(page, `data-testid="resend"`) || !strings.Contains(page, `data-testid="resent"`) {
		t.Errorf("after the resend, the failed message still offers it:\n%s", page)
	}
	var resends, jobs int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE resend_of = $1 AND status = 'queued'`, failed).Scan(&resends)
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'send_message'`).Scan(&jobs)
	if resends != 1 || jobs != 1 {
		t.Fatalf("%d resends, %d send jobs; want one of each", resends, jobs)
	}
	var audited int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'message.resend' AND actor_role = 'agent'`).Scan(&audited)
	if audited != 1 {
		t.Fatalf("%d resends audited", audited)
	}
}

// The contact's page shows the open conversation's state; agents pause and
// resume the bot, supervisors also move the conversation; each is audited.
func TestInbox_Overrides(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	if err := convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source); err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	conv := &models.Conversation{ContactID: asha.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "ask_age", Status: models.ConversationActive,
		Variables: map[string]string{"name": "Asha"}, Language: "hi", ExpiresAt: &expires}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var s string
		_ = site.db.Pool.QueryRow(ctx, `SELECT status || '@' || node FROM conversations WHERE id = $1`, conv.ID).Scan(&s)
		return s
	}
	post := func(b *browser, kind string, extra url.Values) int {
		t.Helper()
		_, page := b.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
		csrf := formCSRF.FindStringSubmatch(page)
		form := url.Values{"_csrf": {csrf[1]}, "kind": {kind}, "back": {"/contacts/" + itoa(asha.ID)}}
		for k, v := range extra {
			form[k] = v
		}
		resp, _ := b.do(t, "POST", "/conversations/"+itoa(conv.ID)+"/override", form, nil)
		return resp.StatusCode
	}
	agent, supervisor := site.as(t, models.RoleAgent), site.as(t, models.RoleSupervisor)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if !strings.Contains(page, "Language</span> hi") || !strings.Contains(page, "Times out</span> 2 Jan 03:04 UTC") {
		t.Error("the state panel lacks the language or the pending time-out")
	}
	_, _ = site.db.Pool.Exec(ctx, `UPDATE contacts SET language = 'hi' WHERE id = $1`, asha.ID)
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); !strings.Contains(page, `data-testid="contact-language">hi<`) {
		t.Error("the contact panel lacks the contact's language")
	}
	// Timers: the current wait's reminder shows; a stale wait's does not.
	for seq, at := range map[int]string{0: "2030-01-01 09:30:00+00", 7: "2030-01-01 08:00:00+00"} {
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, queue, priority, scheduled_at)
			VALUES ('conversation_wait', jsonb_build_object('conversation_id', $1::bigint, 'contact_id', $2::bigint, 'input', 'remind', 'seq', $3::int),
			        'scheduled', 5, 'default', 1, $4)`, conv.ID, asha.ID, seq, at); err != nil {
			t.Fatal(err)
		}
	}
	_, page = agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	if strings.Count(page, `data-testid="timer"`) != 1 || !strings.Contains(page, "Reminder at 1 Jan 09:30 UTC") {
		t.Errorf("the pending timers:\n%s", page)
	}
	if !strings.Contains(page, `data-testid="state"`) || !strings.Contains(page, "ask_age") || !strings.Contains(page, `data-testid="override-pause"`) ||
		strings.Contains(page, `data-testid="override-end"`) {
		t.Fatalf("an agent's state panel:\n%s", page)
	}
	if st := post(agent, "pause", nil); st != 303 || status() != "paused@ask_age" {
		t.Fatalf("an agent pauses: %d, %s", st, status())
	}
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); !strings.Contains(page, "takes the conversation back") || strings.Contains(page, "no question here") {
		t.Errorf("paused at a question, resuming says the bot answers on:\n%s", page)
	}
	if st := post(agent, "move", url.Values{"node": {"goodbye"}}); st != 403 {
		t.Fatalf("an agent moves the conversation: %d", st)
	}
	if st := post(supervisor, "resume", nil); st != 303 || status() != "active@ask_age" {
		t.Fatalf("a supervisor resumes: %d, %s", st, status())
	}
	if st := post(supervisor, "move", url.Values{"node": {"nowhere"}}); st != 400 {
		t.Fatalf("a move to a node the flow lacks: %d", st)
	}
	_, page = supervisor.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	// Every override asks before it acts: no form's submit stands outside
	// the question its label opens.
	forms := strings.Split(page, `action="/conversations/`+itoa(conv.ID)+`/override"`)[1:]
	if len(forms) != 6 { // clear name, pause, end, move, set, start afresh
		t.Errorf("%d override forms for a supervisor, want 6", len(forms))
	}
	for _, f := range forms {
		f = f[:strings.Index(f, "</form>")]
		if d, b := strings.Index(f, "<details"), strings.Index(f, `type="submit"`); d < 0 || b < d {
			t.Errorf("an override submits without asking first:\n%s", f)
		}
	}
	if !strings.Contains(page, `<option value="goodbye"`) || !strings.Contains(page, `<option value="triage"`) || !strings.Contains(page, `data-testid="clear-name"`) {
		t.Fatalf("a supervisor's panel lacks the flow's nodes, the flows or clearing a variable:\n%s", page)
	}
	if st := post(supervisor, "clear_var", url.Values{"var": {"name"}}); st != 303 {
		t.Fatalf("clear a variable: %d", st)
	}
	if _, page = supervisor.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); strings.Contains(page, `data-testid="clear-name"`) {
		t.Fatal("the variable is still there")
	}
	if st := post(supervisor, "end", nil); st != 303 || !strings.HasPrefix(status(), "ended") {
		t.Fatalf("a supervisor ends it: %d, %s", st, status())
	}
	var audited string
	_ = site.db.Pool.QueryRow(ctx, `SELECT string_agg(actor_role, ',' ORDER BY seq) FROM audit_events WHERE action = 'conversation.override'`).Scan(&audited)
	if audited != "agent,supervisor,supervisor,supervisor" {
		t.Fatalf("overrides audited by %q", audited)
	}
}

// Handed-off conversations are a queue of their own, with who has taken
// each.
func TestInbox_HandoffQueue(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, ravi := site.seed(t)
	ctx := context.Background()
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	_ = convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source)
	handedOff := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	waiting := &models.Conversation{ContactID: asha.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "handoff", Status: models.ConversationHandoff, HandoffAt: &handedOff}
	active := &models.Conversation{ContactID: ravi.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "ask_age", Status: models.ConversationActive}
	for _, c := range []*models.Conversation{waiting, active} {
		if err := convs.Save(ctx, nil, c); err != nil {
			t.Fatal(err)
		}
	}
	agent := site.as(t, models.RoleAgent)
	_, page := agent.do(t, "GET", "/handoffs", nil, nil)
	if n := strings.Count(page, `data-testid="handoff"`); n != 1 || !strings.Contains(page, "Asha Verma") || !strings.Contains(page, "not taken") {
		t.Fatalf("the queue lists %d:\n%s", n, page)
	}
	// Waiting since the hand-off, however the conversation changed after.
	if !strings.Contains(page, "since 4 Mar 05:06 UTC") {
		t.Fatalf("the queue does not say since when it waits:\n%s", page)
	}
	csrf := formCSRF.FindStringSubmatch(page)
	resp, _ := agent.do(t, "POST", "/conversations/"+itoa(waiting.ID)+"/take", url.Values{"_csrf": {csrf[1]}, "back": {"/handoffs"}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("take: %d", resp.StatusCode)
	}
	_, page = agent.do(t, "GET", "/handoffs", nil, nil)
	if !strings.Contains(page, `data-testid="taken-by">agent@example.org`) || strings.Contains(page, `data-testid="take"`) {
		t.Fatalf("after taking it:\n%s", page)
	}
	if resp, _ := agent.do(t, "POST", "/conversations/"+itoa(active.ID)+"/take", url.Values{"_csrf": {csrf[1]}}, nil); resp.StatusCode != 404 {
		t.Fatalf("taking a conversation the bot is running: %d", resp.StatusCode)
	}
	var audited string
	_ = site.db.Pool.QueryRow(ctx, `SELECT string_agg(action, ',' ORDER BY seq) FROM audit_events WHERE action LIKE 'conversation%'`).Scan(&audited)
	if audited != "conversations.handoffs,conversation.take,conversations.handoffs" {
		t.Fatalf("audited %q", audited)
	}
	// Held by the agent: a supervisor is offered to take it over, another
	// agent nothing.
	_, page = site.as(t, models.RoleSupervisor).do(t, "GET", "/handoffs", nil, nil)
	if !strings.Contains(page, `data-testid="take-over"`) || strings.Contains(page, `data-testid="take"`) {
		t.Fatalf("a supervisor's queue:\n%s", page)
	}
	second := secondAgent(t, site)
	_, page = second.do(t, "GET", "/handoffs", nil, nil)
	if !strings.Contains(page, `data-testid="taken-by"`) || strings.Contains(page, `data-testid="take-over"`) || strings.Contains(page, `data-testid="take"`) {
		t.Fatalf("another agent's queue:\n%s", page)
	}
}

// An open contact page follows the conversation: the event stream says
// "changed" when a message arrives, and the timeline fetched then shows it.
func TestInbox_LiveTimeline(t *testing.T) {
	site := newConsoleSite(t, nil)
	_, ravi := site.seed(t)
	agent := site.as(t, models.RoleAgent)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID), nil, nil)
	if !strings.Contains(page, `sse-connect="/contacts/`+itoa(ravi.ID)+`/events?since=`) {
		t.Fatal("the page does not follow the conversation")
	}
	req, _ := http.NewRequest("GET", site.base+"/contacts/"+itoa(ravi.ID)+"/events", nil)
	req.Header.Set("Cookie", "parley_session="+agent.cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	// The stream is open (its first line came); now a message arrives.
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "retry:") {
		t.Fatalf("the stream opened with %q", lines.Text())
	}
	storetest.Inbound(t, site.db, site.crypto, ravi, "are you there?")
	changed := false
	for !changed && lines.Scan() {
		changed = lines.Text() == "event: changed"
	}
	if !changed {
		t.Fatal("the stream ended without saying the messages changed")
	}
	_, fragment := agent.do(t, "GET", "/contacts/"+itoa(ravi.ID)+"/timeline", nil, map[string]string{"HX-Request": "true"})
	if !strings.HasPrefix(strings.TrimSpace(fragment), "<ol") || !strings.Contains(fragment, "are you there?") {
		t.Fatalf("the timeline fetched again:\n%s", fragment)
	}
}

// A viewer sees a number masked until they ask to see it, which the audit
// log records.
func TestInbox_RevealAMaskedNumber(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	viewer := site.as(t, models.RoleViewer)
	_, page := viewer.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)
	if !strings.Contains(page, `data-testid="reveal"`) || csrf == nil {
		t.Fatal("no way to reveal the number")
	}
	if resp, _ := viewer.do(t, "POST", "/contacts/"+itoa(asha.ID)+"/reveal", nil, map[string]string{"HX-Request": "true"}); resp.StatusCode != 403 {
		t.Fatalf("a reveal without the CSRF token: %d", resp.StatusCode)
	}
	resp, body := viewer.do(t, "POST", "/contacts/"+itoa(asha.ID)+"/reveal", nil, map[string]string{"HX-Request": "true", "X-CSRF-Token": csrf[1]})
	if resp.StatusCode != 200 || body != "+919876543210" {
		t.Fatalf("reveal: %d %q", resp.StatusCode, body)
	}
	var n int
	_ = site.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'contact.reveal_phone' AND actor_role = 'viewer' AND subject_id = $1`, itoa(asha.ID)).Scan(&n)
	if n != 1 {
		t.Fatalf("%d reveals audited", n)
	}
	agent := site.as(t, models.RoleAgent)
	if _, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); strings.Contains(page, `data-testid="reveal"`) {
		t.Fatal("an agent, who sees numbers whole, is offered a reveal")
	}
}

func TestInbox_Filters(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET status = 'failed', error_code = '21211', error_reason = 'The recipient''s number is not valid.' WHERE body_enc IS NOT NULL AND direction = 'out'`)
	// Asha's conversation in the clinic flow is handed off; Ravi has none open.
	if _, err := site.db.Pool.Exec(ctx, `INSERT INTO conversations (contact_id, flow_id, flow_version, node, status) VALUES ($1, 'clinic', 'v1', 'ask_name', 'handoff')`, asha.ID); err != nil {
		t.Fatal(err)
	}
	agent := site.as(t, models.RoleAgent)
	count := func(query string) (int, int) {
		resp, page := agent.do(t, "GET", "/inbox/results?"+query, nil, map[string]string{"HX-Request": "true"})
		return resp.StatusCode, strings.Count(page, `data-testid="hit"`)
	}
	today := time.Now().UTC().Format("2006-01-02")
	tests := []struct {
		query string
		want  int
	}{
		{"", 2}, // one row per conversation: Asha's two messages are one
		{"channel=whatsapp", 1},
		{"channel=sms", 1},
		{"direction=out", 1},
		{"status=failed", 1},
		{"status=failed&channel=sms", 0},
		{"q=verma&direction=in", 1},
		{"since=" + today + "&until=" + today, 2},
		{"until=2020-01-01", 0},
		{"state=handoff", 1},
		{"state=ended", 1},
		{"state=active", 0},
		{"state=waiting", 0},
		{"state=failed", 1},
		{"state=failed&channel=sms", 0},
		{"flow=clinic", 1},
		{"flow=triage", 0},
	}
	for _, tt := range tests {
		if status, n := count(tt.query); status != 200 || n != tt.want {
			t.Errorf("%q: %d, %d found; want %d", tt.query, status, n, tt.want)
		}
	}
	for _, bad := range []string{"channel=fax", "status=lost", "since=yesterday", "direction=sideways", "state=asleep"} {
		if status, _ := count(bad); status != 400 {
			t.Errorf("%q: %d, want 400", bad, status)
		}
	}
	// The filters are kept on the page, and in the audit log, sealed.
	_, page := agent.do(t, "GET", "/?status=failed&channel=whatsapp&state=handoff", nil, nil)
	if !strings.Contains(page, `<option value="failed" selected`) || !strings.Contains(page, `<option value="whatsapp" selected`) ||
		!strings.Contains(page, `<option value="handoff" selected`) {
		t.Error("the page forgets the filters chosen")
	}
	// The headline counts: one hand-off, not taken; one failed send.
	for testid, want := range map[string]string{"count-handoff": ">1</span>", "count-failed": ">1</span>", "count-active": ">0</span> <span class=\"text-slate-600\">active conversations<", "count-unassigned": ">1 not taken<"} {
		i := strings.Index(page, `data-testid="`+testid+`"`)
		if i < 0 || !strings.Contains(page[i:min(len(page), i+200)], want) {
			t.Errorf("count %s is not %s", testid, want)
		}
	}
}

// Failed messages of a range of days are counted first, then sent again,
// once each however often it is asked.
func TestInbox_BulkResend(t *testing.T) {
	site := newConsoleSite(t, nil)
	_, ravi := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	for _, age := range []string{"1 hour", "2 hours", "40 days"} {
		if _, err := site.db.Pool.Exec(ctx, `INSERT INTO messages (id, contact_id, direction, channel, provider, status, error_code, created_at)
			VALUES (nextval(pg_get_serial_sequence('messages', 'id')), $1, 'out', 'sms', 'twilio', 'failed', '20500', now() - $2::interval)`, ravi.ID, age); err != nil {
			t.Fatal(err)
		}
	}
	agent := site.as(t, models.RoleAgent)
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02") }
	_, page := agent.do(t, "GET", "/resend?since="+day(-2)+"&until="+day(0), nil, nil)
	if !strings.Contains(page, "2 failed messages in this range") {
		t.Fatalf("preview:\n%s", page)
	}
	csrf := formCSRF.FindStringSubmatch(page)
	for range 2 {
		resp, _ := agent.do(t, "POST", "/resend", url.Values{"_csrf": {csrf[1]}, "since": {day(-2)}, "until": {day(0)}}, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("bulk resend: %d", resp.StatusCode)
		}
	}
	var resends int
	_ = site.db.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE resend_of IS NOT NULL`).Scan(&resends)
	if resends != 2 {
		t.Fatalf("%d resends, want 2 (the old one is outside the range; a second go sends nothing again)", resends)
	}
}

// The flows page lists what this instance runs; each flow reads as an
// outline, from its start, with where each node leads.
func TestFlowsPages(t *testing.T) {
	site := newConsoleSite(t, nil)
	viewer := site.as(t, models.RoleViewer)
	_, page := viewer.do(t, "GET", "/flows", nil, nil)
	if strings.Count(page, `data-testid="flow"`) != 2 || !strings.Contains(page, "clinic") || !strings.Contains(page, "triage") {
		t.Fatalf("flows:\n%s", page)
	}
	resp, page := viewer.do(t, "GET", "/flows/clinic", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(page, "What is your name?") || !strings.Contains(page, `href="#node-ask_name"`) ||
		strings.Index(page, `id="node-welcome"`) > strings.Index(page, `id="node-ask_name"`) {
		t.Fatalf("clinic:\n%s", page)
	}
	if resp, _ := viewer.do(t, "GET", "/flows/nope", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("no such flow: %d", resp.StatusCode)
	}
	if strings.Contains(page, `data-testid="flow-problems"`) {
		t.Fatal("problems shown for a sound folder")
	}
	if _, page := viewer.do(t, "GET", "/flows", nil, nil); strings.Contains(page, `data-testid="flow-warnings"`) {
		t.Fatal("warnings shown for the built-in flows, which have none")
	}
	// A running flow with a question without a retry limit: the page
	// lists the warning, as flows validate prints it.
	loose, err := engine.Parse("loose.yaml", []byte("id: loose\nstart: a\nnodes:\n  a: {ask: {prompt: q, type: yes_no}, next: b}\n  b: {end: {}}\n"))
	if err != nil || len(loose.Warnings) != 1 {
		t.Fatalf("loose flow: %v %v", loose, err)
	}
	site.pipe.Flows()[0].Warnings = loose.Warnings
	if _, page := viewer.do(t, "GET", "/flows", nil, nil); !strings.Contains(page, `data-testid="flow-warnings"`) ||
		!strings.Contains(page, "<li>loose.yaml: node &#34;a&#34;: ask has no retry limit") {
		t.Fatalf("the flows page with a warning:\n%s", page)
	}
	// An author breaks a file: the page says what, in words, line by line.
	site.flowProblems = errors.New("clinic.yaml: node ask_age: next names \"nowhere\", which is not a node\ntriage.yaml: <b>start</b> is missing")
	_, page = viewer.do(t, "GET", "/flows", nil, nil)
	if !strings.Contains(page, `data-testid="flow-problems"`) || strings.Count(page, "<li>clinic.yaml") != 1 ||
		!strings.Contains(page, "<li>triage.yaml: &lt;b&gt;start&lt;/b&gt; is missing</li>") {
		t.Fatalf("the flows page with problems:\n%s", page)
	}
}

// At a hand-off node the bot has no question to go back to, so resuming it
// ends the conversation; the question before resuming says so, to agents
// and supervisors, where elsewhere it says the bot answers on.
func TestInbox_ResumeAtAHandoffSaysItEnds(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	ctx := context.Background()
	_, _ = site.db.Pool.Exec(ctx, `UPDATE messages SET provider = 'twilio'`)
	conv := handedOff(t, site, asha)
	supervisor := site.as(t, models.RoleSupervisor)
	for _, b := range []*browser{site.as(t, models.RoleAgent), supervisor} {
		for _, path := range []string{"/contacts/" + itoa(asha.ID), "/work?c=" + itoa(asha.ID)} {
			_, page := b.do(t, "GET", path, nil, nil)
			if !strings.Contains(page, "no question here for the bot to go back to") || strings.Contains(page, "takes the conversation back") {
				t.Errorf("%s: resuming at a hand-off does not say it ends the conversation:\n%s", path, page)
			}
		}
	}
	_, page := supervisor.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	csrf := formCSRF.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no form token")
	}
	if resp, _ := supervisor.do(t, "POST", "/conversations/"+itoa(conv.ID)+"/override", url.Values{"_csrf": {csrf[1]}, "kind": {"resume"}}, nil); resp.StatusCode != 303 {
		t.Fatalf("resume: %d", resp.StatusCode)
	}
	var status string
	_ = site.db.Pool.QueryRow(ctx, `SELECT status FROM conversations WHERE id = $1`, conv.ID).Scan(&status)
	if status != "ended" {
		t.Fatalf("resumed at a hand-off: %s, want ended as the question said", status)
	}
}

// An agent reading a hand-off nobody holds takes it where they read it (the
// contact page or the workspace), then replies there; once it is held,
// another agent is offered nothing to take.
func TestInbox_TakeAHandoffWhereItIsRead(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	conv := handedOff(t, site, asha)
	agent := site.as(t, models.RoleAgent)
	for _, path := range []string{"/contacts/" + itoa(asha.ID), "/work?c=" + itoa(asha.ID)} {
		_, page := agent.do(t, "GET", path, nil, nil)
		if !strings.Contains(page, `data-testid="take-here"`) || !strings.Contains(page, `action="/conversations/`+itoa(conv.ID)+`/take"`) || strings.Contains(page, `data-testid="reply-form"`) {
			t.Fatalf("%s: an untaken hand-off offers no take:\n%s", path, page)
		}
	}
	_, page := agent.do(t, "GET", "/work?c="+itoa(asha.ID), nil, nil)
	back := regexp.MustCompile(`data-testid="take-here"`).FindStringIndex(page)
	form := page[strings.LastIndex(page[:back[0]], "<form"):back[0]]
	backURL := regexp.MustCompile(`name="back" value="([^"]*)"`).FindStringSubmatch(form)
	if backURL == nil || !strings.HasPrefix(html.UnescapeString(backURL[1]), "/work") {
		t.Fatalf("taking from the workspace goes back to %v", backURL)
	}
	csrf := formCSRF.FindStringSubmatch(page)
	resp, _ := agent.do(t, "POST", "/conversations/"+itoa(conv.ID)+"/take", url.Values{"_csrf": {csrf[1]}, "back": {html.UnescapeString(backURL[1])}}, nil)
	if resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/work") {
		t.Fatalf("take: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, page := agent.do(t, "GET", "/work?c="+itoa(asha.ID), nil, nil); strings.Contains(page, `data-testid="take-here"`) || !strings.Contains(page, `data-testid="reply-form"`) {
		t.Fatalf("taken: no reply box, or still offered to take:\n%s", page)
	}
	second := secondAgent(t, site)
	if _, page := second.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil); strings.Contains(page, `data-testid="take-here"`) {
		t.Fatalf("a hand-off another holds is offered to take:\n%s", page)
	}
}

// A hand-off whose pinned flow version no longer parses (processing hands
// such conversations to a person) is read and answered as any other: the
// page says the bot cannot take it back and offers none of its controls.
func TestInbox_HandoffWithAnUnreadableFlow(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	ctx := context.Background()
	convs := store.NewConversationStore(site.db, site.crypto)
	if err := convs.PinFlow(ctx, nil, "clinic", "broken-1", "clinic.yaml", []byte("nodes: [")); err != nil {
		t.Fatal(err)
	}
	conv := &models.Conversation{ContactID: asha.ID, FlowID: "clinic", FlowVersion: "broken-1", Node: "ask_age", Status: models.ConversationHandoff}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	for _, role := range []models.Role{models.RoleAgent, models.RoleSupervisor} {
		b := site.as(t, role)
		for _, path := range []string{"/contacts/" + itoa(asha.ID), "/work?c=" + itoa(asha.ID)} {
			resp, page := b.do(t, "GET", path, nil, nil)
			if resp.StatusCode != 200 || !strings.Contains(page, `data-testid="flow-unreadable"`) || strings.Contains(page, `name="kind"`) {
				t.Errorf("%s, %s: %d\n%s", role, path, resp.StatusCode, page)
			}
		}
	}
}

// handedOff gives contact a conversation of the built-in clinic flow handed
// to a person at its hand-off node, nobody holding it.
func handedOff(t *testing.T, site *consoleSite, contact *models.Contact) *models.Conversation {
	t.Helper()
	ctx := context.Background()
	flow := engine.Builtin().Current("clinic")
	convs := store.NewConversationStore(site.db, site.crypto)
	if err := convs.PinFlow(ctx, nil, flow.ID, flow.Version, flow.File, flow.Source); err != nil {
		t.Fatal(err)
	}
	conv := &models.Conversation{ContactID: contact.ID, FlowID: flow.ID, FlowVersion: flow.Version, Node: "handoff", Status: models.ConversationHandoff,
		Variables: map[string]string{"name": "Asha"}}
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	return conv
}

// secondAgent adds another agent to site, signed in.
func secondAgent(t *testing.T, site *consoleSite) *browser {
	t.Helper()
	hash, _ := auth.HashPassword("a long enough password")
	if _, err := site.staff.Create(context.Background(), "", "second.agent@example.org", models.RoleAgent, hash); err != nil {
		t.Fatal(err)
	}
	second := &browser{site: site}
	second.signIn(t, "second.agent@example.org", "a long enough password", "/")
	return second
}

// A contact without a name is headed by their number, once: the line under
// the heading gives the channel, not the number again; a named contact's
// line gives the number beside the name. On the page and in the
// workspace's pane, and masked the same way for a viewer, whose reveal
// still finds the number it replaces.
func TestInbox_AnUnnamedContactsNumberShowsOnce(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, ravi := site.seed(t)
	agent, viewer := site.as(t, models.RoleAgent), site.as(t, models.RoleViewer)
	// The heading, and the line after it up to the end of its block (the
	// page's) or the pane's link to the full page.
	heading := func(page, tag, until string) (head, line string) {
		t.Helper()
		start := strings.Index(page, `data-testid="contact-name"`)
		end := strings.Index(page[max(start, 0):], "</"+tag+">")
		if start < 0 || end < 0 {
			t.Fatalf("no heading in\n%s", page)
		}
		head, rest := page[start:start+end], page[start+end:]
		stop := strings.Index(rest, until)
		if stop < 0 {
			t.Fatalf("nothing after the heading ends with %q:\n%s", until, rest)
		}
		return head, rest[:stop]
	}
	for _, c := range []struct {
		who      *browser
		contact  *models.Contact
		number   string
		named    bool
		revealed bool
	}{
		{agent, ravi, "+14155550100", false, false},
		{agent, asha, "+919876543210", true, false},
		{viewer, ravi, "0100", false, true},
	} {
		_, page := c.who.do(t, "GET", "/contacts/"+itoa(c.contact.ID), nil, nil)
		_, pane := c.who.do(t, "GET", "/work/pane/"+itoa(c.contact.ID)+"?view=all", nil, map[string]string{"HX-Request": "true"})
		for _, view := range []struct{ name, html, tag, until string }{{"page", page, "h1", "</div>"}, {"pane", pane, "h2", "Full page"}} {
			head, line := heading(view.html, view.tag, view.until)
			inHead, inLine := strings.Count(head, c.number), strings.Count(line, c.number)
			if c.named && (inHead != 0 || inLine != 1 || !strings.Contains(head, "Asha Verma")) ||
				!c.named && (inHead != 1 || inLine != 0 || !strings.Contains(head, `data-testid="contact-phone"`)) {
				t.Fatalf("%s of contact %d: the number %d times in the heading, %d in the line under it:\n%s\n%s", view.name, c.contact.ID, inHead, inLine, head, line)
			}
			if c.revealed && !strings.Contains(line, `hx-target="previous [data-testid=contact-phone]"`) {
				t.Fatalf("%s: a viewer's reveal does not find the number:\n%s", view.name, line)
			}
		}
	}
}

// Message times say their zone, as the reminders, notes and hand-offs
// beside them do: on the contact's page, in search hits and in the
// workspace's list.
func TestInbox_MessageTimesSayTheirZone(t *testing.T) {
	site := newConsoleSite(t, nil)
	asha, _ := site.seed(t)
	agent := site.as(t, models.RoleAgent)
	stamp := regexp.MustCompile(`\b\d{1,2} [A-Z][a-z]{2} \d{2}:\d{2}( UTC)?\b`)
	_, page := agent.do(t, "GET", "/contacts/"+itoa(asha.ID), nil, nil)
	_, hits := agent.do(t, "GET", "/?q=knee", nil, nil)
	_, list := agent.do(t, "GET", "/work?view=all", nil, nil)
	// The page's timeline alone: reminders and notes have times of their own.
	timeline := page[strings.Index(page, `data-testid="timeline"`):]
	timeline = timeline[:strings.Index(timeline, "</ol>")]
	for name, html := range map[string]string{"timeline": timeline, "search": hits, "workspace": list} {
		times := stamp.FindAllStringSubmatch(html, -1)
		if len(times) == 0 {
			t.Fatalf("%s: no message time", name)
		}
		for _, m := range times {
			if m[1] == "" {
				t.Fatalf("%s: a time without its zone: %q", name, m[0])
			}
		}
	}
}
