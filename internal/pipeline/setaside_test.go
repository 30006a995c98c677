package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// poisoned runs the flows but always fails on one message, as a value that
// no longer decrypts or a pinned flow that no longer parses would, message
// by message and in a batch alike.
type poisoned struct{ *pipeline.Flows }

func (p poisoned) Respond(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message) (*pipeline.Outcome, error) {
	return poison(ctx, tx, p.Flows, contact, in)
}

func (p poisoned) Batch(ctx context.Context, tx *gorm.DB, contactIDs []int64) (pipeline.BatchResponder, error) {
	b, err := p.Flows.Batch(ctx, tx, contactIDs)
	return poisonedBatch{b}, err
}

type poisonedBatch struct{ pipeline.BatchResponder }

func (p poisonedBatch) Respond(ctx context.Context, tx *gorm.DB, contact *models.Contact, in *models.Message) (*pipeline.Outcome, error) {
	return poison(ctx, tx, p.BatchResponder, contact, in)
}

// holdContact holds the row lock of the contact at number (made when
// new), as a long staff override would, until release is called (or the
// test ends).
func (e *env) holdContact(t *testing.T, number string) (release func()) {
	t.Helper()
	c, _, err := store.NewContactStore(e.db, e.crypto).FindOrCreate(context.Background(), number)
	if err != nil {
		t.Fatal(err)
	}
	hold, err := e.db.Pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Rollback(context.Background()) })
	if _, err := hold.Exec(context.Background(), `SELECT 1 FROM contacts WHERE id = $1 FOR NO KEY UPDATE`, c.ID); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := hold.Rollback(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// poison fails on the message "poison" and lets r answer any other.
func poison(ctx context.Context, tx *gorm.DB, r pipeline.Responder, contact *models.Contact, in *models.Message) (*pipeline.Outcome, error) {
	if in.Body == "poison" {
		return nil, errors.New("this message can never be processed")
	}
	return r.Respond(ctx, tx, contact, in)
}

func TestProcess_AMessageThatAlwaysFailsIsSetAsideAndTheRestGoOn(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(reg)
	e.startWith(t, pipeline.Deps{
		Responder: poisoned{pipeline.NewFlows(engine.Builtin(), e.db, e.crypto)}, Metrics: metrics,
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:  pipeline.Config{MaxProcessTries: 3, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond, SendRate: 1000, SendBurst: 100},
	})
	const from = "+919876543210"
	if _, err := e.pipelineIngest(t, sms("SM1", from, "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first message to be answered", func() bool { return len(e.api.Sent()) > 0 && e.idle(t) })
	// The poison and the two messages after it arrive together: one job.
	if _, err := e.pipelineIngest(t, sms("SM2", from, "poison"), sms("SM3", from, "Asha"), sms("SM4", from, "34")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every message to be done with", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`) == 0 && e.idle(t)
	})
	var status, code, reason string
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE provider_message_id = 'SM2'`).
		Scan(&status, &code, &reason); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || code != "parley:processing_failed" || !strings.Contains(reason, "failed 3 times") {
		t.Fatalf("the poison message: %s %s %q; want failed, parley:processing_failed, with a reason", status, code, reason)
	}
	if strings.Contains(reason, "never be processed") {
		t.Errorf("the reason shows an internal error's text: %q", reason)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND status = 'processed' AND provider_message_id IN ('SM3', 'SM4')`); n != 2 {
		t.Fatalf("%d of the two later messages processed", n)
	}
	var convStatus, convError string
	var handedOff *time.Time
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error, handoff_at FROM conversations`).Scan(&convStatus, &convError, &handedOff); err != nil {
		t.Fatal(err)
	}
	if convStatus != "handoff" || convError == "" || handedOff == nil {
		t.Fatalf("conversation %s (%q) handed off at %v, want handed to a person with the reason and the time (the queue's \"since\")", convStatus, convError, handedOff)
	}
	if got := metricValue(t, reg, "parley_messages_set_aside_total"); got != 1 {
		t.Fatalf("parley_messages_set_aside_total = %v, want 1", got)
	}

	// A message after the set-aside is processed as usual, at the first try.
	if _, err := e.pipelineIngest(t, sms("SM5", from, "anyone there?")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next message to be processed", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM5' AND status = 'processed'`) == 1
	})
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE handoff_at = $1`, *handedOff); n != 1 {
		t.Fatal("a message to the waiting hand-off moved the time it was handed off")
	}
}

// metricValue reads a counter or a gauge without labels from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			if g := f.GetMetric()[0].GetGauge(); g != nil {
				return g.GetValue()
			}
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s is not registered", name)
	return 0
}

// Ingest leaves the contact row alone (processing may hold it locked); the
// profile name the platform sent is applied when the message is processed.
func TestProcess_NamesTheContactFromItsProfileName(t *testing.T) {
	e := newEnv(t)
	e.start(t, pipeline.Ack{})
	in := sms("SMwa", "whatsapp:+919812345678", "hi")
	in.ProfileName = "Ravi Kumar"
	if _, err := e.pipelineIngest(t, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message to be processed", func() bool { return e.idle(t) })
	var id int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT id FROM contacts`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	c, err := store.NewContactStore(e.db, e.crypto).Get(context.Background(), id)
	if err != nil || c.Name != "Ravi Kumar" {
		t.Fatalf("contact %+v, %v; want named Ravi Kumar", c, err)
	}
	page, err := store.NewMessageStore(e.db, e.crypto).Search(context.Background(), models.MessageSearch{Name: "ravi"})
	if err != nil || len(page.Hits) != 1 {
		t.Fatalf("search by the name: %+v, %v", page, err)
	}
}

// A message whose sealed body no longer opens (a key removed too early, a
// damaged row) fails every read of the contact's messages; on the last try
// it is set aside alone and the others are processed.
func TestProcess_AMessageThatNoLongerDecryptsIsSetAside(t *testing.T) {
	e := newEnv(t)
	const from = "+919876543210"
	if _, err := e.pipelineIngest(t, sms("SM1", from, "hello"), sms("SM2", from, "damaged"), sms("SM3", from, "Asha")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE messages SET body_enc = overlay(body_enc placing '\xff'::bytea from length(body_enc)) WHERE provider_message_id = 'SM2'`); err != nil {
		t.Fatal(err)
	}
	e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    pipeline.Config{MaxProcessTries: 2, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond, SendRate: 1000, SendBurst: 100},
	})
	waitFor(t, "every message to be done with", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`) == 0 && e.idle(t)
	})
	if n := e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM2' AND status = 'failed' AND error_code = 'parley:processing_failed'`); n != 1 {
		t.Fatal("the damaged message was not set aside")
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id IN ('SM1', 'SM3') AND status = 'processed'`); n != 2 {
		t.Fatalf("%d of the two readable messages processed", n)
	}
}

// The contacts of one ingest commit are processed together, in one job
// and one transaction. One contact whose message always fails does not
// hold up the others: the batch hands each contact to a job of its own,
// and only the poisoned message is set aside. A contact whose lock
// another transaction holds past the batch's wait for it (2 s) is handed
// on too, and answered once it is free.
func TestProcess_ABatchOfContactsGoesOnPastOneThatFailsOrIsBusy(t *testing.T) {
	e := newEnv(t)
	e.startWith(t, pipeline.Deps{
		Responder: poisoned{pipeline.NewFlows(engine.Builtin(), e.db, e.crypto)},
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    pipeline.Config{MaxProcessTries: 2, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond, SendRate: 1000, SendBurst: 100},
	})
	// Hold the busy contact's row lock, as a staff override would.
	busyAt := "+919800000009"
	release := e.holdContact(t, busyAt)
	ins := []channel.Inbound{sms("SM1", "+919800000001", "hello"), sms("SM2", "+919800000002", "poison"), sms("SM3", "+919800000003", "hello"), sms("SM4", busyAt, "hello")}
	if _, err := e.pipelineIngest(t, ins...); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'process_contacts'`); n != 1 {
		t.Fatalf("%d batch jobs for one commit of four contacts, want 1", n)
	}
	waitFor(t, "the two free, healthy contacts answered and the poison set aside", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND provider_message_id IN ('SM1', 'SM3') AND status = 'processed'`) == 2 &&
			e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM2' AND status = 'failed'`) == 1
	})
	if n := e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM4' AND processed_at IS NOT NULL`); n != 0 {
		t.Fatal("the busy contact's message was processed while its lock was held")
	}
	release()
	waitFor(t, "the busy contact answered once free", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM4' AND status = 'processed'`) == 1 && e.idle(t)
	})
	// Each healthy contact got the flow's first question exactly once.
	asked := map[string]int{}
	for _, s := range e.api.Sent() {
		if strings.Contains(s.Body, "What is your name?") {
			asked[s.To]++
		}
	}
	for _, to := range []string{"+919800000001", "+919800000003", busyAt} {
		if asked[to] != 1 {
			t.Fatalf("the first question went to %s %d times, want once (all: %v)", to, asked[to], asked)
		}
	}
}

// The name a person gives the flow (its name variable) becomes the
// contact's, in place of the platform's profile name, and is found by a
// search; later turns leave it as it is.
func TestProcess_TheNameGivenToTheFlowNamesTheContact(t *testing.T) {
	e := newEnv(t)
	e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    pipeline.Config{RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond, SendRate: 1000, SendBurst: 100},
	})
	ctx := context.Background()
	name := func() string {
		t.Helper()
		var id int64
		if err := e.db.Pool.QueryRow(ctx, `SELECT id FROM contacts`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		c, err := store.NewContactStore(e.db, e.crypto).Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.Name
	}
	for i, turn := range []struct{ say, want string }{
		{"hi", "Ravi K"}, // the profile name, until the flow knows better
		{"Asha Verma", "Asha Verma"},
		{"34", "Asha Verma"},
	} {
		in := sms(fmt.Sprintf("SMname%d", i), "whatsapp:+919812345678", turn.say)
		in.ProfileName = "Ravi K"
		if _, err := e.pipelineIngest(t, in); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the message to be processed", func() bool {
			return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`) == 0 && e.idle(t)
		})
		if got := name(); got != turn.want {
			t.Fatalf("after %q the contact is named %q, want %q", turn.say, got, turn.want)
		}
	}
	page, err := store.NewMessageStore(e.db, e.crypto).Search(ctx, models.MessageSearch{Name: "verma"})
	if err != nil || len(page.Hits) == 0 {
		t.Fatalf("search by the name the flow was given: %+v, %v", page, err)
	}
}
