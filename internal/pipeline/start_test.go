package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// reminderFlow is a flow a clinic starts: it opens with the appointment
// it was started with and asks whether the person will come.
const reminderFlow = `id: reminder
languages: [en]
start: hello
nodes:
  hello:
    send: {en: "Hello! Your appointment with {{doctor}} is at {{appointment_at}}."}
    next: confirm
  confirm:
    ask: {prompt: {en: "Will you come? (yes/no)"}, type: yes_no, save: coming}
    next: bye
  bye:
    end: {send: {en: "Thank you!"}}
`

// recordingSender is the real Twilio client, remembering what the
// pipeline handed it (the fake Twilio keeps only what went on the wire).
type recordingSender struct {
	channel.Sender
	mu  sync.Mutex
	out []channel.Outbound
}

func (r *recordingSender) Send(ctx context.Context, m channel.Outbound) (string, error) {
	r.mu.Lock()
	r.out = append(r.out, m)
	r.mu.Unlock()
	return r.Sender.Send(ctx, m)
}

func (r *recordingSender) sent() []channel.Outbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]channel.Outbound(nil), r.out...)
}

func startEnv(t *testing.T) (*env, *pipeline.Pipeline, *recordingSender) {
	t.Helper()
	e := newEnv(t)
	f, err := engine.Parse("reminder.yaml", []byte(reminderFlow))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingSender{Sender: e.twilio}
	e.addTemplates(t, map[string]string{"appointment_reminder": "Hello! Your appointment with {{1}} is at {{2}}."})
	p := e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.NewLibrary(append([]*engine.Flow{f}, engine.Builtin().Flows()...)...), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: rec},
		Templates: envRegistry{e},
		Config:    pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO staff_users (id, email, role) VALUES ($1, 'sup@example.org', 'supervisor')`, supervisor.ID); err != nil {
		t.Fatal(err)
	}
	return e, p, rec
}

var supervisor = models.Actor{ID: "6f1d0c1e-1111-4c4c-8888-000000000001", Role: models.RoleSupervisor, RequestID: "req-1"}

func appointment() pipeline.StartRequest {
	return pipeline.StartRequest{Flow: "reminder", Variables: map[string]string{"doctor": "Dr Rao", "appointment_at": "2026-12-08 10:00"}}
}

// TestStart_NewNumberBySMS_RetriedWithKeyStartsOne starts the reminder
// for a number that never wrote, by SMS (no window), as the API does:
// the contact is created, the opening sent to the fake Twilio, and the
// same request retried with its key starts nothing more and answers the
// first result. The person's answer then goes on in the started flow.
func TestStart_NewNumberBySMS_RetriedWithKeyStartsOne(t *testing.T) {
	e, p, _ := startEnv(t)
	ctx := context.Background()
	req := pipeline.StartByPhone{Phone: "098765 43210", Channel: models.ChannelSMS, StartRequest: appointment()}
	res, replayed, err := p.StartConversation(ctx, supervisor, req, "key-1")
	if err != nil || replayed || !res.NewContact || res.Templated || len(res.Messages) != 2 {
		t.Fatalf("StartConversation = %+v, replayed %v, %v", res, replayed, err)
	}
	waitFor(t, "the opening to be sent", func() bool { return len(e.api.Sent()) == 2 && e.idle(t) })
	sent := e.api.Sent()
	if sent[0].To != "+919876543210" || sent[0].Body != "Hello! Your appointment with Dr Rao is at 2026-12-08 10:00." || sent[1].Body != "Will you come? (yes/no)" {
		t.Fatalf("Twilio received %+v", sent)
	}
	again, replayed, err := p.StartConversation(ctx, supervisor, req, "key-1")
	if err != nil || !replayed || again.ConversationID != res.ConversationID || again.ContactID != res.ContactID {
		t.Fatalf("the retry = %+v, replayed %v, %v; first %+v", again, replayed, err, res)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`); n != 1 {
		t.Fatalf("%d conversations after the retry, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM start_keys WHERE key LIKE '%key-1%'`); n != 0 {
		t.Fatal("the client's key is kept as it was sent")
	}
	if n := e.count(t, `SELECT count(*) FROM contacts`); n != 1 {
		t.Fatalf("%d contacts, want 1", n)
	}
	// The same key with another request is refused, not answered with the first.
	other := req
	other.Variables = map[string]string{"doctor": "Dr Iyer"}
	if _, _, err := p.StartConversation(ctx, supervisor, other, "key-1"); models.ErrorCode(err) != models.ECONFLICT {
		t.Fatalf("the key with another request: %v, want ECONFLICT", err)
	}
	// Without replace, a second start (new key) finds the running one.
	if _, _, err := p.StartConversation(ctx, supervisor, req, "key-2"); models.ErrorCode(err) != models.ECONFLICT || !strings.Contains(models.ErrorMessage(err), "replace") {
		t.Fatalf("a start over a running conversation: %v", err)
	}
	if _, err := p.Ingest(ctx, []channel.Inbound{sms("SM1", "+919876543210", "yes")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the answer's reply", func() bool { return len(e.api.Sent()) == 3 && e.idle(t) })
	if got := e.api.Sent()[2].Body; got != "Thank you!" {
		t.Fatalf("the reply to the answer is %q", got)
	}
	if got := e.stateValue(t, res.ContactID, "var coming"); got != "yes" {
		t.Fatalf("coming = %q", got)
	}
	if got := e.stateValue(t, res.ContactID, "var doctor"); got != "Dr Rao" {
		t.Fatalf("doctor = %q", got)
	}
	// A day on, the key is forgotten (swept, or taken afresh): the same
	// request starts again (the first conversation has ended).
	if _, err := e.db.Pool.Exec(ctx, `UPDATE start_keys SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	if n, err := store.NewStartKeys(e.db, e.crypto).Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	if later, replayed, err := p.StartConversation(ctx, supervisor, req, "key-1"); replayed || err != nil || later.ConversationID == res.ConversationID {
		t.Fatalf("a key past its day: %+v, replayed %v, %v", later, replayed, err)
	}
	var details string
	if err := e.db.Pool.QueryRow(ctx, `SELECT count(*)::text FROM audit_events WHERE action = 'conversation.start'`).Scan(&details); err != nil || details != "2" {
		t.Fatalf("%s conversation.start entries (%v), want 2 (the retry started nothing)", details, err)
	}
}

// TestStart_WhatsAppWindow: a number that never wrote on WhatsApp is
// outside the window: without an opening template the start is refused
// with the reason (nothing is queued, no key kept); with one, the opening
// goes as that template, one message, handed to the sender with it.
func TestStart_WhatsAppWindow(t *testing.T) {
	e, p, rec := startEnv(t)
	ctx := context.Background()
	req := pipeline.StartByPhone{Phone: "+919876543210", StartRequest: appointment()}
	_, _, err := p.StartConversation(ctx, supervisor, req, "k")
	if models.ErrorCode(err) != models.ECONFLICT || !strings.Contains(models.ErrorMessage(err), "template") {
		t.Fatalf("a closed window without a template: %v", err)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`) + e.count(t, `SELECT count(*) FROM messages`) + e.count(t, `SELECT count(*) FROM start_keys`); n != 0 {
		t.Fatalf("a refused start left %d rows", n)
	}
	// A template the registry lacks, or one given the wrong parameters, is
	// refused with the reason before anything is queued.
	for _, bad := range []*models.TemplateRef{{Name: "no_such_template", Language: "en"},
		{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "Dr Rao"}}} {
		req.Template = bad
		_, _, err = p.StartConversation(ctx, supervisor, req, "k")
		if models.ErrorCode(err) != models.EINVALID || !strings.Contains(models.ErrorMessage(err), "Template") {
			t.Fatalf("template %+v: %v", bad, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`) + e.count(t, `SELECT count(*) FROM messages`) + e.count(t, `SELECT count(*) FROM start_keys`); n != 0 {
		t.Fatalf("refused templates left %d rows", n)
	}
	req.Template = &models.TemplateRef{Name: "appointment_reminder", Language: "en", Params: map[string]string{"1": "Dr Rao", "2": "10:00"}}
	res, _, err := p.StartConversation(ctx, supervisor, req, "k")
	if err != nil || !res.Templated || len(res.Messages) != 1 {
		t.Fatalf("with a template: %+v, %v", res, err)
	}
	waitFor(t, "the template to be sent", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	out := rec.sent()
	if len(out) != 1 || out[0].Template == nil || out[0].Template.Name != "appointment_reminder" || out[0].Template.Params["1"] != "Dr Rao" || out[0].To != "whatsapp:+919876543210" {
		t.Fatalf("the sender was handed %+v", out)
	}
	m, err := store.NewMessageStore(e.db, e.crypto).Get(ctx, res.Messages[0])
	if err != nil || m.Status != models.StatusSent || m.Template == nil || m.Body != "Hello! Your appointment with Dr Rao is at 10:00." {
		t.Fatalf("the stored message: %+v, %v", m, err)
	}
}

// TestStart_RefusesOptedOutAndHandoff: a contact who sent STOP is not
// written to, and one whose conversation a person holds is not taken
// over, each with its reason; replace: true ends a running one and starts
// afresh.
func TestStart_RefusesOptedOutAndHandoff(t *testing.T) {
	e, p, _ := startEnv(t)
	ctx := context.Background()
	sms1 := pipeline.StartByPhone{Phone: "+919876543210", Channel: models.ChannelSMS, StartRequest: appointment()}
	first, _, err := p.StartConversation(ctx, supervisor, sms1, "")
	if err != nil {
		t.Fatal(err)
	}
	// A supervisor pauses the bot: they hold the conversation now.
	if err := p.Override(ctx, supervisor, first.ConversationID, engine.Override{Kind: engine.OverridePause}); err != nil {
		t.Fatal(err)
	}
	sms1.Replace = true
	if _, _, err := p.StartConversation(ctx, supervisor, sms1, ""); models.ErrorCode(err) != models.ECONFLICT || !strings.Contains(models.ErrorMessage(err), "person holds") {
		t.Fatalf("a start over a hand-off: %v", err)
	}
	if err := p.Override(ctx, supervisor, first.ConversationID, engine.Override{Kind: engine.OverrideResume}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pipeline to settle", func() bool { return e.idle(t) })
	// Resumed at its question, it runs: replace ends it for a new one.
	again, _, err := p.StartConversation(ctx, supervisor, sms1, "")
	if err != nil || again.Replaced != first.ConversationID || again.ConversationID == first.ConversationID {
		t.Fatalf("replace: %+v, %v (first %d)", again, err, first.ConversationID)
	}
	if got := e.count(t, `SELECT count(*) FROM conversations WHERE status = 'ended' AND id = $1`, first.ConversationID); got != 1 {
		t.Fatal("the replaced conversation did not end")
	}
	if _, err := p.Ingest(ctx, []channel.Inbound{sms("SM1", "+919876543210", "STOP")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the opt-out", func() bool { return e.stateValue(t, first.ContactID, "opted_out") == "true" && e.idle(t) })
	before := len(e.api.Sent())
	if _, _, err := p.StartConversation(ctx, supervisor, sms1, "k2"); models.ErrorCode(err) != models.ECONFLICT || !strings.Contains(models.ErrorMessage(err), "opted out") {
		t.Fatalf("a start for an opted-out contact: %v", err)
	}
	waitFor(t, "the pipeline to settle", func() bool { return e.idle(t) })
	if len(e.api.Sent()) != before {
		t.Fatal("something was sent to the opted-out contact")
	}
	agent := models.Actor{ID: "agent-1", Role: models.RoleAgent}
	if _, _, err := p.StartConversation(ctx, agent, sms1, ""); models.ErrorCode(err) != models.EFORBIDDEN {
		t.Fatalf("an agent's start: %v", err)
	}
	var fe *pipeline.FieldError
	bad := sms1
	bad.Phone = "hello"
	if _, _, err := p.StartConversation(ctx, supervisor, bad, ""); !errors.As(err, &fe) || fe.Field != "phone" {
		t.Fatalf("a bad number: %v", err)
	}
}

// TestStart_SameKeyAtOnce: a client that retries before its first try
// has answered (a timeout on its side) sends the same request twice at
// once: one conversation, both answered with it.
func TestStart_SameKeyAtOnce(t *testing.T) {
	e, p, _ := startEnv(t)
	req := pipeline.StartByPhone{Phone: "+919876543210", Channel: models.ChannelSMS, StartRequest: appointment()}
	const tries = 4
	results := make([]*pipeline.StartResult, tries)
	errs := make([]error, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _, errs[i] = p.StartConversation(context.Background(), supervisor, req, "at-once")
		}()
	}
	wg.Wait()
	for i := range tries {
		if errs[i] != nil || results[i].ConversationID != results[0].ConversationID {
			t.Fatalf("try %d: %+v, %v (first %+v)", i, results[i], errs[i], results[0])
		}
	}
	if n := e.count(t, `SELECT count(*) FROM conversations`); n != 1 {
		t.Fatalf("%d conversations", n)
	}
}
