package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/meta"
	"github.com/parley-chat/parley/internal/channel/meta/metatest"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// platform is a WhatsApp provider under test: its fake, a sender reading
// the registry, and what the fake took, as (template, parameters, text).
type platform struct {
	name    string
	sender  channel.Sender
	source  pipeline.TemplateSource
	sent    func() []sentTemplate
	refuse  func(code int)
	inbound func(id, from, body string) channel.Inbound
}

type sentTemplate struct{ template, params, body string }

func twilioPlatform(t *testing.T, reg *store.TemplateStore) *platform {
	api := twiliotest.NewAPI(accountSID, authToken)
	t.Cleanup(api.Close)
	api.AddContent(twiliotest.Content{SID: "HX00000000000000000000000000000001", FriendlyName: "appointment_reminder", Language: "en",
		Body: "Hi {{1}}, we are still holding your appointment.", Status: "approved", Category: "utility"})
	api.AddContent(twiliotest.Content{SID: "HX00000000000000000000000000000002", FriendlyName: "results_ready", Language: "en",
		Body: "{{1}}, your results are ready.", Status: "approved", Category: "utility"})
	tc, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: "+15005550006", APIBaseURL: api.URL, Templates: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &platform{name: channel.Twilio, sender: tc, source: tc,
		sent: func() []sentTemplate {
			var out []sentTemplate
			for _, s := range api.Sent() {
				out = append(out, sentTemplate{s.ContentSID, s.ContentVariables, s.Body})
			}
			return out
		},
		refuse: func(code int) { api.FailNext(twiliotest.Failure{HTTPStatus: 400, Code: code, Message: "refused"}) },
		inbound: func(id, from, body string) channel.Inbound {
			return channel.Inbound{Provider: channel.Twilio, ProviderMessageID: id, From: "whatsapp:" + from, To: "whatsapp:+15005550006", Body: body}
		}}
}

func metaPlatform(t *testing.T, reg *store.TemplateStore) *platform {
	api := metatest.New(t)
	api.AddTemplate(metatest.Template{ID: "1", Name: "appointment_reminder", Language: "en", Status: "APPROVED", Category: "UTILITY", Body: "Hi {{1}}, we are still holding your appointment."})
	api.AddTemplate(metatest.Template{ID: "2", Name: "results_ready", Language: "en", Status: "APPROVED", Category: "UTILITY", Body: "{{1}}, your results are ready."})
	mc, err := meta.NewClient(meta.Config{AccessToken: metatest.Token, PhoneNumberID: metatest.PhoneNumberID, BaseURL: api.BaseURL(), WABAID: metatest.WABAID, Templates: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &platform{name: channel.Meta, sender: mc, source: mc,
		sent: func() []sentTemplate {
			var out []sentTemplate
			for _, s := range api.Sent() {
				out = append(out, sentTemplate{s.Template, strings.Join(s.Params, ","), s.Body})
			}
			return out
		},
		refuse: func(code int) { api.FailNext(metatest.Failure{HTTPStatus: 400, Code: code, Message: "refused"}) },
		inbound: func(id, from, body string) channel.Inbound {
			return channel.Inbound{Provider: channel.Meta, ProviderMessageID: id, From: "whatsapp:" + from, Body: body}
		}}
}

const reminderFlowYAML = `
id: reminders
languages: [en]
start: ask_name
nodes:
  ask_name:
    ask: {prompt: "What is your name?", type: text, save: name, retry: {limit: 3}}
    next: ask_time
  ask_time:
    ask:
      prompt: "When suits you, {{name}}?"
      type: text
      retry: {limit: 3}
      timeout:
        remind_after: 30h
        remind: "Still there, {{name}}?"
        remind_template: {name: appointment_reminder, params: {"1": "{{name}}"}}
        expire_after: 48h
        then: goodbye
    next: goodbye
  goodbye:
    end: {send: "Goodbye!", template: {name: conversation_closed}}
`

// A reminder that comes due after WhatsApp's 24-hour window goes out as
// the approved template its flow names, on both platforms through their
// real clients; the expiry's goodbye, whose template the registry does
// not hold, hands the conversation to a person with the reason instead of
// sending what WhatsApp would refuse.
func TestFlows_ReminderAfter24HoursGoesAsATemplate(t *testing.T) {
	for _, mk := range []func(*testing.T, *store.TemplateStore) *platform{twilioPlatform, metaPlatform} {
		e := newEnv(t)
		reg := store.NewTemplateStore(e.db)
		pl := mk(t, reg)
		t.Run(pl.name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := pipeline.SyncTemplates(ctx, reg, map[string]pipeline.TemplateSource{pl.name: pl.source}); err != nil {
				t.Fatal(err)
			}
			f, err := engine.Parse("reminders.yaml", []byte(reminderFlowYAML))
			if err != nil {
				t.Fatal(err)
			}
			p := e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.NewLibrary(f), e.db, e.crypto),
				Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * 1e6}})
			const from = "+919876543210"
			for i, text := range []string{"hi", "Asha"} {
				if _, err := p.Ingest(ctx, []channel.Inbound{pl.inbound(fmt.Sprintf("in%d", i), from, text)}); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the replies", func() bool { return len(pl.sent()) == i+1 && e.idle(t) })
			}
			if s := pl.sent()[1]; s.template != "" || s.body != "When suits you, Asha?" {
				t.Fatalf("inside the window: %+v, want free text", s)
			}
			// A day and a half passes: the contact last wrote 30 hours ago
			// when the reminder comes due.
			e.exec(t, `UPDATE messages SET created_at = created_at - interval '30 hours' WHERE direction = 'in'`)
			e.due(t, "remind")
			waitFor(t, "the reminder", func() bool { return len(pl.sent()) == 3 && e.idle(t) })
			s := pl.sent()[2]
			if s.body != "Hi Asha, we are still holding your appointment." || s.template == "" || !strings.Contains(s.params, "Asha") {
				t.Fatalf("reminder past the window = %+v, want the template with Asha", s)
			}
			if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent' AND template_enc IS NOT NULL`); n != 1 {
				t.Fatalf("%d sent messages keep their template, want the reminder", n)
			}
			e.due(t, "expire")
			waitFor(t, "the expiry", func() bool { return e.idle(t) })
			if n := len(pl.sent()); n != 3 {
				t.Fatalf("%d sent after the expiry, want nothing more", n)
			}
			var status, reason string
			if err := e.db.Pool.QueryRow(ctx, `SELECT status FROM conversations ORDER BY id DESC LIMIT 1`).Scan(&status); err != nil {
				t.Fatal(err)
			}
			conv := e.lastConversation(t)
			reason = conv.Error
			if status != "handoff" || !strings.Contains(reason, `template "conversation_closed" (en) is not in the template registry`) {
				t.Fatalf("after the expiry: %s, %q; want handed off, with the reason", status, reason)
			}
			if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status <> 'sent'`); n != 0 {
				t.Fatalf("%d messages left unsent or failed; a closed window must not queue what WhatsApp refuses", n)
			}
		})
	}
}

// A flow that names no template for a send past the window hands the
// conversation to a person, saying so; nothing is queued to fail.
func TestFlows_NoTemplatePastTheWindowHandsOff(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	pl := metaPlatform(t, reg)
	f, err := engine.Parse("plain.yaml", []byte(`
id: plain
languages: [en]
start: ask
nodes:
  ask:
    ask: {prompt: "Name?", type: text, retry: {limit: 3}, timeout: {remind_after: 25h, remind: "Still there?", expire_after: 48h, then: bye}}
    next: bye
  bye:
    end: {send: "Bye"}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.NewLibrary(f), e.db, e.crypto),
		Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * 1e6}})
	if _, err := p.Ingest(context.Background(), []channel.Inbound{pl.inbound("in1", "+919876543210", "hi")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the prompt", func() bool { return len(pl.sent()) == 1 && e.idle(t) })
	e.exec(t, `UPDATE messages SET created_at = created_at - interval '25 hours' WHERE direction = 'in'`)
	e.due(t, "remind")
	waitFor(t, "the reminder's turn", func() bool { return e.idle(t) })
	conv := e.lastConversation(t)
	if len(pl.sent()) != 1 || conv.Status != models.ConversationHandoff || !strings.Contains(conv.Error, `node "ask" names no template`) {
		t.Fatalf("sent %d, conversation %s (%q); want nothing more sent, handed off with the reason", len(pl.sent()), conv.Status, conv.Error)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'conversation_wait' AND state = 'scheduled'`); n != 1 {
		t.Fatalf("%d waits scheduled; the expiry stays (stale, as the conversation moved on)", n)
	}
	e.due(t, "expire")
	waitFor(t, "the stale expiry", func() bool { return e.idle(t) })
	if conv := e.lastConversation(t); len(pl.sent()) != 1 || conv.Status != models.ConversationHandoff {
		t.Fatalf("after the stale expiry: sent %d, %s", len(pl.sent()), conv.Status)
	}
}

// templateReplier answers each message with one template reply.
type templateReplier struct{ ref *models.TemplateRef }

func (r templateReplier) Respond(context.Context, *gorm.DB, *models.Contact, *models.Message) (*pipeline.Outcome, error) {
	return &pipeline.Outcome{Replies: []string{"rendered"}, ReplyTemplates: []*models.TemplateRef{r.ref}}, nil
}

// Each refusal of a template send that matters is shown on the message,
// with its code and a reason a person can act on; a throughput refusal
// only slows the send, which then goes.
func TestSend_TemplateRefusalsShownOnTheMessage(t *testing.T) {
	ref := &models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha"}}
	cases := []struct {
		mk     func(*testing.T, *store.TemplateStore) *platform
		code   int
		reason string
	}{
		{metaPlatform, 132000, "parameters do not match"},
		{metaPlatform, 132001, "no approved template"},
		{metaPlatform, 132015, "paused"},
		{metaPlatform, 132016, "disabled"},
		{metaPlatform, 131026, "not on WhatsApp"},
		{metaPlatform, 131047, "More than 24 hours"},
		{twilioPlatform, 63016, "More than 24 hours"},
		{twilioPlatform, 63003, "not on WhatsApp"},
		{twilioPlatform, 63027, "no approved template"},
		{twilioPlatform, 63028, "parameters do not match"},
		{metaPlatform, 130429, ""},
	}
	for i, tc := range cases {
		e := newEnv(t)
		reg := store.NewTemplateStore(e.db)
		pl := tc.mk(t, reg)
		t.Run(fmt.Sprintf("%s %d", pl.name, tc.code), func(t *testing.T) {
			if _, err := pipeline.SyncTemplates(context.Background(), reg, map[string]pipeline.TemplateSource{pl.name: pl.source}); err != nil {
				t.Fatal(err)
			}
			p := e.startWith(t, pipeline.Deps{Responder: templateReplier{ref}, Senders: map[string]channel.Sender{pl.name: pl.sender},
				Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * 1e6, RetryBase: 10 * 1e6, RetryMax: 50 * 1e6}})
			pl.refuse(tc.code)
			if _, err := p.Ingest(context.Background(), []channel.Inbound{pl.inbound(fmt.Sprintf("in%d", i), "+919876543210", "hi")}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the send to settle", func() bool {
				return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status IN ('sent', 'failed')`) == 1
			})
			var status, code, reason string
			if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&status, &code, &reason); err != nil {
				t.Fatal(err)
			}
			if tc.reason == "" {
				if status != "sent" || len(pl.sent()) != 1 {
					t.Fatalf("throttled send = %s (%s), sent %d; want it sent after slowing down", status, code, len(pl.sent()))
				}
				return
			}
			if status != "failed" || code != fmt.Sprint(tc.code) || !strings.Contains(reason, tc.reason) {
				t.Fatalf("message = %s, %s, %q; want failed, %d, %q", status, code, reason, tc.code, tc.reason)
			}
		})
	}
}

func (e *env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// due makes the conversation's scheduled wait of this input come due now.
func (e *env) due(t *testing.T, input string) {
	t.Helper()
	e.exec(t, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'conversation_wait' AND state = 'scheduled' AND args->>'input' = $1`, input)
}

func (e *env) lastConversation(t *testing.T) *models.Conversation {
	t.Helper()
	var id int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT max(id) FROM conversations`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	conv, err := store.NewConversationStore(e.db, e.crypto).Get(context.Background(), nil, id)
	if err != nil {
		t.Fatal(err)
	}
	return conv
}

// failingSource is a platform whose template list cannot be read.
type failingSource struct{}

func (failingSource) Templates(context.Context) ([]models.Template, error) {
	return nil, fmt.Errorf("no answer")
}

// The periodic job syncs the registry when the pipeline starts; a
// platform that fails leaves its templates as they were (not gone) while
// the others sync.
func TestTemplateSync_PeriodicJobSyncsAndAFailingPlatformKeepsItsTemplates(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	ctx := context.Background()
	kept := []models.Template{{PlatformID: "HX1", Name: "results_ready", Language: "en", Body: "x", Status: models.TemplateApproved}}
	if _, err := reg.Sync(ctx, channel.Twilio, kept, time.Now()); err != nil {
		t.Fatal(err)
	}
	pl := metaPlatform(t, reg)
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{}, TemplateSources: map[string]pipeline.TemplateSource{channel.Meta: pl.source, channel.Twilio: failingSource{}},
		Config: pipeline.Config{FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "the sync job", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'templates_sync' AND state IN ('completed', 'retryable', 'discarded')`) > 0
	})
	if tpl, err := reg.Find(ctx, channel.Meta, "appointment_reminder", "en"); err != nil || tpl.Status != models.TemplateApproved {
		t.Fatalf("Meta's template after the job = %+v, %v", tpl, err)
	}
	if tpl, err := reg.Find(ctx, channel.Twilio, "results_ready", "en"); err != nil || tpl.Status != models.TemplateApproved {
		t.Fatalf("the failing platform's template = %+v, %v; want kept as it was", tpl, err)
	}
}

// A template Twilio took (201) and WhatsApp refused afterwards comes back
// in a status callback: the message shows the code and its reason.
func TestStatus_ALateTemplateRefusalIsShownWithItsReason(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	pl := twilioPlatform(t, reg)
	if _, err := pipeline.SyncTemplates(context.Background(), reg, map[string]pipeline.TemplateSource{pl.name: pl.source}); err != nil {
		t.Fatal(err)
	}
	p := e.startWith(t, pipeline.Deps{Responder: templateReplier{&models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha"}}},
		Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
	if _, err := p.Ingest(context.Background(), []channel.Inbound{pl.inbound("in1", "+919876543210", "hi")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the send", func() bool { return len(pl.sent()) == 1 && e.idle(t) })
	var sid string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT provider_message_id FROM messages WHERE direction = 'out'`).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	st, ok, err := twilio.ParseStatus(map[string]string{"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "63027"})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := p.ApplyStatuses(context.Background(), []channel.Status{st}); err != nil {
		t.Fatal(err)
	}
	var status, code, reason string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&status, &code, &reason); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || code != "63027" || !strings.Contains(reason, "no approved template") {
		t.Fatalf("message = %s, %s, %q; want failed with 63027's reason", status, code, reason)
	}
}

// A template the registry knows is not approved, or filled with other
// parameters than it takes, is refused before the platform is called:
// the message shows why, and nothing reached Meta.
func TestSend_TemplateRefusedBeforeTheCallFromTheRegistry(t *testing.T) {
	for _, tc := range []struct {
		ref    *models.TemplateRef
		code   string
		reason string
	}{
		{&models.TemplateRef{Name: "paused_one", Language: "en", Params: map[string]string{"1": "Asha"}}, channel.CodeTemplateNotApproved, "paused by WhatsApp"},
		{&models.TemplateRef{Name: "results_ready", Language: "en", Params: map[string]string{"1": "Asha", "2": "CBC"}}, channel.CodeTemplateParams, "it has no {{2}}"},
	} {
		e := newEnv(t)
		reg := store.NewTemplateStore(e.db)
		pl := metaPlatform(t, reg)
		ctx := context.Background()
		list, err := pl.source.Templates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, models.Template{PlatformID: "9", Name: "paused_one", Language: "en", Body: "Hi {{1}}", Status: models.TemplatePaused})
		if _, err := reg.Sync(ctx, pl.name, list, time.Now()); err != nil {
			t.Fatal(err)
		}
		p := e.startWith(t, pipeline.Deps{Responder: templateReplier{tc.ref}, Senders: map[string]channel.Sender{pl.name: pl.sender},
			Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
		if _, err := p.Ingest(ctx, []channel.Inbound{pl.inbound("in1", "+919876543210", "hi")}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the send to settle", func() bool {
			return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'failed'`) == 1
		})
		var code, reason string
		if err := e.db.Pool.QueryRow(ctx, `SELECT error_code, error_reason FROM messages WHERE direction = 'out'`).Scan(&code, &reason); err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(reason, tc.reason) || strings.Contains(reason, "Asha") || len(pl.sent()) != 0 {
			t.Fatalf("%s: %s, %q, Meta got %d; want %s before any call", tc.ref.Name, code, reason, len(pl.sent()), tc.code)
		}
	}
}
