package pipeline_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// startConversation brings a contact to the age question of the sample
// flow and returns the conversation id.
func startConversation(t *testing.T, e *env, p *pipeline.Pipeline) int64 {
	t.Helper()
	for i, text := range []string{"hello", "Asha"} {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SMstart"+string(rune('a'+i)), "+919876543210", text)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the message to be processed", func() bool { return e.idle(t) })
	}
	var id int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT id FROM conversations WHERE node = 'ask_age'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOverride_RacingAnInboundMessageBothAreRecorded(t *testing.T) {
	for range 3 {
		e := newEnv(t)
		p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
		conv := startConversation(t, e, p)

		var wg sync.WaitGroup
		var overrideErr, ingestErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			overrideErr = p.Override(context.Background(), models.Actor{Role: models.RoleSupervisor}, conv, engine.Override{Kind: engine.OverrideEnd})
		}()
		go func() {
			defer wg.Done()
			_, ingestErr = p.Ingest(context.Background(), []channel.Inbound{sms("SMrace", "+919876543210", "34")})
		}()
		wg.Wait()
		if overrideErr != nil || ingestErr != nil {
			t.Fatalf("override: %v, ingest: %v", overrideErr, ingestErr)
		}
		waitFor(t, "the message to be processed", func() bool { return e.idle(t) })

		if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'conversation.override' AND subject_id = $1`, itoa(conv)); n != 1 {
			t.Fatalf("%d audit entries for the override, want 1", n)
		}
		if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`); n != 0 {
			t.Fatalf("%d messages left unprocessed", n)
		}
		if n := e.count(t, `SELECT count(*) FROM conversations WHERE id = $1 AND status = 'ended'`, conv); n != 1 {
			t.Fatal("the overridden conversation is not ended")
		}
		if n := e.count(t, `SELECT count(*) FROM conversations WHERE status NOT IN ('ended', 'error')`); n > 1 {
			t.Fatalf("%d open conversations", n)
		}
	}
}

func TestOverride_MoveAsksAndIsAudited(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	conv := startConversation(t, e, p)
	before := len(e.api.Sent())
	if err := p.Override(context.Background(), models.Actor{Role: models.RoleSupervisor}, conv, engine.Override{Kind: engine.OverrideMove, Node: "ask_need"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the question to be sent", func() bool { return len(e.api.Sent()) == before+1 && e.idle(t) })
	if got := e.api.Sent()[before].Body; got != "What do you need? 1. Appointment 2. Prescription 3. Something else" {
		t.Fatalf("sent %q", got)
	}
	if err := p.Override(context.Background(), models.Actor{Role: models.RoleSupervisor}, conv, engine.Override{Kind: engine.OverrideMove, Node: "nowhere"}); err == nil {
		t.Fatal("a move to a node the flow lacks was accepted")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_events`); n != 1 {
		t.Fatalf("%d audit entries, want 1 (the refused move records nothing)", n)
	}
}

func TestWaits_FireAfterARestart(t *testing.T) {
	e := newEnv(t)
	first := e.pipeline(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Ingest(context.Background(), []channel.Inbound{sms("SM1", "+919876543210", "hello")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first question", func() bool { return len(e.api.Sent()) == 2 && e.idle(t) })
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The instance is gone; a new one starts, and the day passes.
	e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'conversation_wait' AND args->>'input' = 'expire'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expiry", func() bool { return len(e.api.Sent()) == 3 && e.idle(t) })
	if got := e.api.Sent()[2].Body; got != "Thank you, goodbye!" {
		t.Fatalf("after expiry sent %q", got)
	}
	// The reminder, due earlier but firing after the expiry, is stale.
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'conversation_wait' AND args->>'input' = 'remind'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stale reminder", func() bool { return e.idle(t) })
	if n := len(e.api.Sent()); n != 3 {
		t.Fatalf("a stale reminder was sent (%d messages)", n)
	}
}

// A wait that comes due after the person answered is stale, and is told
// apart without the contact's lock: it is dropped while a transaction holds
// the contact (as a processing run does), where it waited for the lock
// before, and sends nothing.
func TestWaits_StaleOnesWaitForNoLock(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	conv := startConversation(t, e, p) // asked for a name, answered, asked for an age
	var seq int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT wait_seq FROM conversations WHERE id = $1`, conv).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	stale := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'conversation_wait' AND state = 'scheduled' AND (args->>'seq')::bigint < $1`, seq)
	if stale == 0 {
		t.Fatal("no stale wait scheduled: the name's question set none")
	}
	sent := len(e.api.Sent())
	ctx := context.Background()
	hold, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.Rollback(ctx) })
	if _, err := hold.Exec(ctx, `SELECT 1 FROM contacts FOR NO KEY UPDATE`); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE kind = 'conversation_wait' AND state = 'scheduled' AND (args->>'seq')::bigint < $1`, seq)
	waitFor(t, "the stale waits, the contact held", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'conversation_wait' AND state = 'completed'`) == stale
	})
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pipeline to settle", func() bool { return e.idle(t) })
	if n := len(e.api.Sent()); n != sent {
		t.Fatalf("stale waits sent %d messages", n-sent)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestFlows_AnIdleConversationExpires(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	conv := startConversation(t, e, p)
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE conversations SET updated_at = now() - interval '4 days'`); err != nil {
		t.Fatal(err)
	}
	sent := len(e.api.Sent())
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SMlate", "+919876543210", "34")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late answer", func() bool { return len(e.api.Sent()) == sent+2 && e.idle(t) })
	if got := e.api.Sent()[sent].Body; got != "Hi! I'm the clinic assistant." {
		t.Fatalf("a message after four idle days got %q, want a fresh start", got)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE id = $1 AND status = 'ended' AND error LIKE 'expired%'`, conv); n != 1 {
		t.Fatal("the idle conversation was not closed as expired")
	}
}

// Every override is audited, not only the first: the audit chain links each
// entry to the one before.
func TestOverride_EachOfSeveralIsAudited(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	conv := startConversation(t, e, p)
	steps := []engine.Override{
		{Kind: engine.OverridePause},
		{Kind: engine.OverrideResume},
		{Kind: engine.OverrideSetVar, Var: "note", Value: "called back"},
		{Kind: engine.OverrideClearVar, Var: "note"},
		{Kind: engine.OverrideEnd},
	}
	for i, o := range steps {
		if err := p.Override(context.Background(), models.Actor{Role: models.RoleSupervisor, RequestID: "req-" + itoa(int64(i)), IP: "192.0.2.1"}, conv, o); err != nil {
			t.Fatalf("override %d (%s): %v", i+1, o.Kind, err)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'conversation.override' AND actor_role = 'supervisor' AND ip = '192.0.2.1' AND request_id LIKE 'req-%'`); n != len(steps) {
		t.Fatalf("%d audit entries, want %d", n, len(steps))
	}
	if n, err := store.NewAuditStore(e.db, e.crypto).Verify(context.Background()); err != nil || n != len(steps) {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

// The queue runs a job at least once: a reminder whose job runs again (its
// completion was lost, say) is not sent twice.
func TestWaits_AReminderFiresOnce(t *testing.T) {
	e := newEnv(t)
	e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first question", func() bool { return len(e.api.Sent()) == 2 && e.idle(t) })
	for run := range 2 {
		if _, err := e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now(), finalized_at = NULL
			WHERE kind = 'conversation_wait' AND args->>'input' = 'remind'`); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reminder's job to run", func() bool {
			return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'conversation_wait' AND args->>'input' = 'remind' AND state = 'completed'`) == 1 && e.idle(t)
		})
		if n := len(e.api.Sent()); n != 3 {
			t.Fatalf("after the reminder's job ran %d times, %d messages sent; want the reminder once (3)", run+1, n)
		}
	}
	if got := e.api.Sent()[2].Body; got != "Are you still there?" {
		t.Fatalf("sent %q, want the reminder", got)
	}
}
