package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// visitFlow plans a reminder the day before the appointment it was
// started with, then asks; visit_plain names no template for it.
const visitFlow = `id: visit
languages: [en]
start: remind
nodes:
  remind:
    schedule:
      at: "{{appointment_at}} - 24h"
      send: {en: "Reminder: {{doctor}} sees you tomorrow at {{appointment_at}}."}
      template: {name: appointment_reminder, language: en, params: ["{{doctor}}", "{{appointment_at}}"]}
    next: hello
  hello:
    ask: {prompt: {en: "We will remind you the day before. Reply CANCEL to cancel."}, type: text, save: note}
    next: bye
  bye:
    end: {send: {en: "Thank you!"}}
`

type schedEnv struct {
	*env
	rec  *recordingSender
	zone *time.Location
	deps pipeline.Deps
}

// pipeline starts a pipeline over the env's database (another instance,
// or the same after a restart).
func (s *schedEnv) pipeline(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	return s.startWith(t, s.deps)
}

func newSchedEnv(t *testing.T) *schedEnv {
	t.Helper()
	e := newEnv(t)
	var flows []*engine.Flow
	for i, src := range []string{visitFlow, strings.Replace(strings.Replace(visitFlow, "id: visit", "id: visit_plain", 1),
		"      template: {name: appointment_reminder, language: en, params: [\"{{doctor}}\", \"{{appointment_at}}\"]}\n", "", 1)} {
		f, err := engine.Parse([]string{"visit.yaml", "visit_plain.yaml"}[i], []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		flows = append(flows, f)
	}
	zone, _ := time.LoadLocation("Asia/Kolkata")
	responder := pipeline.NewFlows(engine.NewLibrary(flows...), e.db, e.crypto)
	responder.Zone = zone
	rec := &recordingSender{Sender: e.twilio}
	e.addTemplates(t, map[string]string{"visit_booked": "Your visit is booked: we will write the day before.",
		"appointment_reminder": "Reminder: {{1}} sees you tomorrow at {{2}}."})
	s := &schedEnv{env: e, rec: rec, zone: zone, deps: pipeline.Deps{Responder: responder, Senders: map[string]channel.Sender{channel.Twilio: rec}, Templates: envRegistry{e},
		Config: pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}}}
	if _, err := e.db.Pool.Exec(context.Background(), `INSERT INTO staff_users (id, email, role) VALUES ($1, 'sup@example.org', 'supervisor')`, supervisor.ID); err != nil {
		t.Fatal(err)
	}
	return s
}

// start starts flow for number with an appointment three days ahead (in
// the clinic's zone, to the minute) and returns the result and when the
// reminder is due.
func (s *schedEnv) start(t *testing.T, p *pipeline.Pipeline, number string, ch models.Channel, flow string, template bool) (*pipeline.StartResult, time.Time) {
	t.Helper()
	at := time.Now().In(s.zone).Add(72 * time.Hour).Truncate(time.Minute)
	req := pipeline.StartByPhone{Phone: number, Channel: ch, StartRequest: pipeline.StartRequest{Flow: flow,
		Variables: map[string]string{"doctor": "Dr Rao", "appointment_at": at.Format("2006-01-02 15:04")}}}
	if template {
		req.Template = &models.TemplateRef{Name: "visit_booked", Language: "en"}
	}
	res, _, err := p.StartConversation(context.Background(), supervisor, req, "")
	if err != nil {
		t.Fatal(err)
	}
	return res, at.Add(-24 * time.Hour)
}

// due makes the contact's scheduled jobs due now: time passes.
func (s *schedEnv) due(t *testing.T, contactID int64) {
	t.Helper()
	if _, err := s.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'scheduled_message' AND state = 'scheduled'
		AND (args->>'scheduled_id')::bigint IN (SELECT id FROM scheduled_messages WHERE contact_id = $1)`, contactID); err != nil {
		t.Fatal(err)
	}
}

func (s *schedEnv) sentTo(number string) []string {
	var out []string
	for _, m := range s.api.Sent() {
		if m.To == number || m.To == "whatsapp:"+number {
			out = append(out, m.Body)
		}
	}
	return out
}

// TestScheduled_FiresOnceAtItsTimeAcrossARestart: a flow started with
// appointment_at plans its reminder for the day before, read in the
// clinic's zone; the job waits in the queue through a restart of the
// pipeline and fires once when due, and a replay of the job sends
// nothing more.
func TestScheduled_FiresOnceAtItsTimeAcrossARestart(t *testing.T) {
	s := newSchedEnv(t)
	ctx := context.Background()
	first := s.pipeline(t)
	res, want := s.start(t, first, "+919876543210", models.ChannelSMS, "visit", false)
	waitFor(t, "the opening", func() bool { return len(s.sentTo("+919876543210")) == 1 && s.idle(t) })
	var at time.Time
	if err := s.db.Pool.QueryRow(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'scheduled_message' AND state = 'scheduled'`).Scan(&at); err != nil || !at.Equal(want) {
		t.Fatalf("the reminder's job is scheduled at %s (%v), want %s", at, err, want)
	}
	if n := s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'scheduled_message' AND args::text LIKE '%Rao%'`); n != 0 {
		t.Fatal("the queue holds the reminder's words")
	}
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	second := s.pipeline(t) // the restart
	_ = second
	s.due(t, res.ContactID)
	waitFor(t, "the reminder", func() bool { return len(s.sentTo("+919876543210")) == 2 && s.idle(t) })
	wantText := "Reminder: Dr Rao sees you tomorrow at " + want.Add(24*time.Hour).Format("2006-01-02 15:04") + "."
	if got := s.sentTo("+919876543210")[1]; got != wantText {
		t.Fatalf("the reminder said %q, want %q", got, wantText)
	}
	if n := s.count(t, `SELECT count(*) FROM scheduled_messages WHERE status = 'sent' AND message_id IS NOT NULL AND body_enc IS NULL`); n != 1 {
		t.Fatalf("%d scheduled messages sent and cleared", n)
	}
	// A replay of the job (rescued, or run by a second instance) finds it sent.
	if _, err := s.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now(), finalized_at = NULL WHERE kind = 'scheduled_message'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return s.idle(t) })
	if got := s.sentTo("+919876543210"); len(got) != 2 {
		t.Fatalf("after a replay the contact got %q", got)
	}
	if n := s.count(t, `SELECT count(*) FROM messages WHERE direction = 'out'`); n != 2 {
		t.Fatalf("%d outbound messages, want 2", n)
	}
}

// TestScheduled_CancelledByEndAndOptOut: ending the conversation, or the
// contact's STOP, cancels what it planned; due, nothing goes.
func TestScheduled_CancelledByEndAndOptOut(t *testing.T) {
	s := newSchedEnv(t)
	ctx := context.Background()
	p := s.pipeline(t)
	ended, _ := s.start(t, p, "+919876543210", models.ChannelSMS, "visit", false)
	stopped, _ := s.start(t, p, "+919812345678", models.ChannelSMS, "visit", false)
	waitFor(t, "the openings", func() bool { return len(s.api.Sent()) == 2 && s.idle(t) })
	if err := p.Override(ctx, supervisor, ended.ConversationID, engine.Override{Kind: engine.OverrideEnd}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ingest(ctx, []channel.Inbound{sms("SM1", "+919812345678", "STOP")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the opt-out", func() bool { return s.stateValue(t, stopped.ContactID, "opted_out") == "true" && s.idle(t) })
	if n := s.count(t, `SELECT count(*) FROM scheduled_messages WHERE status = 'cancelled' AND body_enc IS NULL`); n != 2 {
		t.Fatalf("%d scheduled messages cancelled, want 2", n)
	}
	before := len(s.api.Sent())
	s.due(t, ended.ContactID)
	s.due(t, stopped.ContactID)
	waitFor(t, "the due jobs", func() bool { return s.idle(t) })
	if got := s.api.Sent()[before:]; len(got) != 0 {
		t.Fatalf("sent after cancelling: %+v", got)
	}
}

// TestScheduled_OutsideTheWindow: on WhatsApp, a reminder due after the
// 24-hour window goes as the flow's template; one without a template
// hands the conversation to a person with the reason, sending nothing.
func TestScheduled_OutsideTheWindow(t *testing.T) {
	s := newSchedEnv(t)
	p := s.pipeline(t)
	withT, _ := s.start(t, p, "+919876543210", models.ChannelWhatsApp, "visit", true)
	plain, _ := s.start(t, p, "+919812345678", models.ChannelWhatsApp, "visit_plain", true)
	waitFor(t, "the openings", func() bool { return len(s.api.Sent()) == 2 && s.idle(t) })
	s.due(t, withT.ContactID)
	s.due(t, plain.ContactID)
	waitFor(t, "the reminder", func() bool { return len(s.api.Sent()) == 3 && s.idle(t) })
	var reminder *channel.Outbound
	for _, o := range s.rec.sent() {
		if strings.HasPrefix(o.Body, "Reminder:") {
			o := o
			reminder = &o
		}
	}
	if reminder == nil || reminder.To != "whatsapp:+919876543210" || reminder.Template == nil || reminder.Template.Name != "appointment_reminder" || reminder.Template.Params["1"] != "Dr Rao" {
		t.Fatalf("the reminder handed to the sender: %+v", reminder)
	}
	if got := s.stateValue(t, plain.ContactID, "status"); got != string(models.ConversationHandoff) {
		t.Fatalf("the conversation without a template is %q, want handoff", got)
	}
	if n := s.count(t, `SELECT count(*) FROM scheduled_messages WHERE status = 'handed_off' AND reason LIKE '%template%'`); n != 1 {
		t.Fatalf("%d scheduled messages handed off", n)
	}
}

// TestScheduled_ByStaff: a supervisor plans a message for a contact at a
// time in the clinic's zone; it goes then, once; another is cancelled
// and never goes; a time past is refused on its field.
func TestScheduled_ByStaff(t *testing.T) {
	s := newSchedEnv(t)
	ctx := context.Background()
	p := s.pipeline(t)
	res, _ := s.start(t, p, "+919876543210", models.ChannelSMS, "visit", false)
	waitFor(t, "the opening", func() bool { return len(s.api.Sent()) == 1 && s.idle(t) })
	at := time.Now().In(s.zone).Add(48 * time.Hour).Truncate(time.Minute)
	kept, err := p.ScheduleMessage(ctx, supervisor, res.ContactID, pipeline.ScheduleRequest{At: at.Format("2006-01-02 15:04"), Text: "Bring your reports."})
	if err != nil || !kept.FireAt.Equal(at) {
		t.Fatalf("ScheduleMessage = %+v, %v", kept, err)
	}
	dropped, err := p.ScheduleMessage(ctx, supervisor, res.ContactID, pipeline.ScheduleRequest{At: at.Format(time.RFC3339), Text: "Never mind."})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CancelScheduled(ctx, supervisor, dropped.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.CancelScheduled(ctx, supervisor, dropped.ID); models.ErrorCode(err) != models.ECONFLICT {
		t.Fatalf("cancelling twice: %v", err)
	}
	var jobAt time.Time
	if err := s.db.Pool.QueryRow(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'scheduled_message' AND (args->>'scheduled_id')::bigint = $1`, kept.ID).Scan(&jobAt); err != nil || !jobAt.Equal(at) {
		t.Fatalf("the job is due at %s (%v), want %s", jobAt, err, at)
	}
	if _, err := s.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE kind = 'scheduled_message' AND (args->>'scheduled_id')::bigint IN ($1, $2)`, kept.ID, dropped.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the planned message", func() bool { return len(s.api.Sent()) == 2 && s.idle(t) })
	if got := s.sentTo("+919876543210"); got[1] != "Bring your reports." || len(got) != 2 {
		t.Fatalf("the contact got %q", got)
	}
	var fe *pipeline.FieldError
	_, err = p.ScheduleMessage(ctx, supervisor, res.ContactID, pipeline.ScheduleRequest{At: "2020-01-01 10:00", Text: "Late"})
	if !errors.As(err, &fe) || fe.Field != "at" {
		t.Fatalf("a time past: %v", err)
	}
	if n := s.count(t, `SELECT count(*) FROM audit_events WHERE action IN ('message.schedule', 'message.schedule_cancel')`); n != 3 {
		t.Fatalf("%d audit entries, want 3", n)
	}
}

// TestScheduled_GoneWithAnErasedContact: erasing the contact removes
// what was planned for them; the job, when due, finds nothing to send.
func TestScheduled_GoneWithAnErasedContact(t *testing.T) {
	s := newSchedEnv(t)
	ctx := context.Background()
	p := s.pipeline(t)
	res, _ := s.start(t, p, "+919876543210", models.ChannelSMS, "visit", false)
	waitFor(t, "the opening", func() bool { return len(s.api.Sent()) == 1 && s.idle(t) })
	if _, err := store.NewContactStore(s.db, s.crypto).Erase(ctx, res.ContactID, nil, store.NewAuditStore(s.db, s.crypto)); err != nil {
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM scheduled_messages`); n != 0 {
		t.Fatalf("%d scheduled messages after the erasure", n)
	}
	if _, err := s.db.Pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE kind = 'scheduled_message'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the due job", func() bool { return s.idle(t) })
	if n := s.count(t, `SELECT count(*) FROM river_job WHERE kind = 'scheduled_message' AND state <> 'completed'`); n != 0 || len(s.api.Sent()) != 1 {
		t.Fatalf("after the erasure: %d jobs not completed, %d sent", n, len(s.api.Sent()))
	}
}

// TestScheduled_ShownWithTheTimers: a conversation's timers list the
// message it planned until it goes.
func TestScheduled_ShownWithTheTimers(t *testing.T) {
	s := newSchedEnv(t)
	ctx := context.Background()
	p := s.pipeline(t)
	res, want := s.start(t, p, "+919876543210", models.ChannelSMS, "visit", false)
	timers, err := store.NewConversationStore(s.db, s.crypto).Timers(ctx, res.ConversationID)
	if err != nil || len(timers) != 1 || timers[0].Input != "scheduled" || !timers[0].At.Equal(want) {
		t.Fatalf("timers %+v, %v", timers, err)
	}
	s.due(t, res.ContactID)
	waitFor(t, "the reminder", func() bool { return len(s.api.Sent()) == 2 && s.idle(t) })
	if timers, err := store.NewConversationStore(s.db, s.crypto).Timers(ctx, res.ConversationID); err != nil || len(timers) != 0 {
		t.Fatalf("after it went: %+v, %v", timers, err)
	}
}
