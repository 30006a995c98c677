package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
				Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
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
		Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
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

// A message answered more than 24 hours after it came does not close the
// window when the contact wrote again since: its replies go as text.
func TestFlows_AnOldMessageWithANewerOneKeepsTheWindowOpen(t *testing.T) {
	e := newEnv(t)
	reg := store.NewTemplateStore(e.db)
	pl := metaPlatform(t, reg)
	f, err := engine.Parse("reminders.yaml", []byte(reminderFlowYAML))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := e.pipeline(t, nil)
	if _, err := p.Ingest(ctx, []channel.Inbound{pl.inbound("old", "+919876543210", "hi"), pl.inbound("new", "+919876543210", "Asha")}); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE messages SET created_at = created_at - interval '25 hours' WHERE provider_message_id = 'old'`)
	e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.NewLibrary(f), e.db, e.crypto),
		Senders: map[string]channel.Sender{pl.name: pl.sender}, Config: pipeline.Config{SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "both answers", func() bool { return len(pl.sent()) == 2 && e.idle(t) })
	if conv := e.lastConversation(t); conv.Status != models.ConversationActive || conv.Node != "ask_time" {
		t.Fatalf("conversation %s at %s (%q); want it going on", conv.Status, conv.Node, conv.Error)
	}
}
