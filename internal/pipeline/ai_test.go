package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/internal/ai"
	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/engine/enginetest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// gatedAI is an AI layer that can be held (until release is closed) and
// that fails its first failures calls as a provider outage would.
type gatedAI struct {
	mu       sync.Mutex
	calls    int
	failures int
	release  chan struct{}
}

func (g *gatedAI) Answer(ctx context.Context, req engine.AIRequest) (engine.AIResult, error) {
	g.mu.Lock()
	g.calls++
	n := g.calls
	g.mu.Unlock()
	if g.release != nil {
		select {
		case <-g.release:
		case <-ctx.Done():
			return engine.AIResult{}, ctx.Err()
		}
	}
	if n <= g.failures {
		return engine.AIResult{}, errors.New("llm: 503 service unavailable")
	}
	return enginetest.AI(req), nil
}

func (g *gatedAI) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

const triageFrom = "+919876543210"

// startTriage runs the pipeline over the triage flow with ai as its AI layer.
func startTriage(t *testing.T, ai pipeline.AI) (*env, *pipeline.Pipeline) {
	t.Helper()
	e := newEnv(t)
	e.ai = ai
	return e, e.start(t, pipeline.NewFlows(engine.NewLibrary(engine.Builtin().Current("triage")), e.db, e.crypto))
}

func (e *env) say(t *testing.T, p *pipeline.Pipeline, id, text string) {
	t.Helper()
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(id, triageFrom, text)}); err != nil {
		t.Fatal(err)
	}
}

// settleHurried waits for the queue to empty, making retries due at once
// instead of after their backoff.
func (e *env) settleHurried(t *testing.T) {
	t.Helper()
	waitFor(t, "the pipeline to settle", func() bool {
		if _, err := e.db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE state = 'retryable'`); err != nil {
			t.Fatal(err)
		}
		return e.idle(t)
	})
}

func (e *env) bodies() []string {
	var out []string
	for _, s := range e.api.Sent() {
		out = append(out, s.Body)
	}
	return out
}

func TestAI_OutageRetriedAndMessagesMeanwhileWaitTheirTurn(t *testing.T) {
	ai := &gatedAI{failures: 2, release: make(chan struct{})}
	e, p := startTriage(t, ai)
	e.say(t, p, "SM1", "hi")
	e.settleHurried(t)
	e.say(t, p, "SM2", "I need an appointment")
	waitFor(t, "the AI layer to be asked", func() bool { return ai.Calls() == 1 })
	// The contact writes again while the AI layer works: held, in order.
	e.say(t, p, "SM3", "name: Ravi, age: 41, day: monday")
	waitFor(t, "the next message to be looked at", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'process_contact' AND state = 'completed'`) >= 3
	})
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`); n != 1 {
		t.Fatalf("%d messages unprocessed; want the one after the classified one held (1)", n)
	}
	close(ai.release)
	e.settleHurried(t)

	want := []string{"Tell me in a few words what you need.", "Please send your name, age and the day you prefer.", "Booked for Ravi (41) on monday."}
	if got := e.bodies(); !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}
	if got := ai.Calls(); got != 4 { // two failures, then classify and extract
		t.Fatalf("AI layer called %d times, want 4", got)
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`); n != 0 {
		t.Fatalf("%d messages left unprocessed", n)
	}
	// The contact's words never leave the sealed conversation row.
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE args::text ILIKE '%appointment%' OR args::text ILIKE '%ravi%'`); n != 0 {
		t.Fatalf("%d jobs carry the contact's words in their arguments", n)
	}
	if n := e.count(t, `SELECT count(*) FROM conversations WHERE pending_enc IS NOT NULL`); n != 0 {
		t.Fatalf("%d conversations still wait on the AI layer", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'conversation_ai' AND queue <> 'ai'`); n != 0 {
		t.Fatalf("%d AI jobs outside the ai queue, where they could hold up message processing", n)
	}
}

func TestAI_DownForGoodOrOffTakesTheFallback(t *testing.T) {
	for name, ai := range map[string]pipeline.AI{"down": &gatedAI{failures: 1000}, "off": nil} {
		t.Run(name, func(t *testing.T) {
			e, p := startTriage(t, ai)
			e.say(t, p, "SM1", "hi")
			e.say(t, p, "SM2", "I need an appointment")
			e.settleHurried(t)
			want := []string{"Tell me in a few words what you need.", "Sorry, I did not follow. 1. Appointment 2. Emergency 3. Something else"}
			if got := e.bodies(); !slices.Equal(got, want) {
				t.Fatalf("replies %q, want %q", got, want)
			}
			if g, ok := ai.(*gatedAI); ok && g.Calls() != 4 {
				t.Fatalf("AI layer tried %d times, want MaxAITries (4)", g.Calls())
			}
		})
	}
}

func TestAI_StaffMovingTheConversationMakesTheAnswerStale(t *testing.T) {
	ai := &gatedAI{release: make(chan struct{})}
	e, p := startTriage(t, ai)
	e.say(t, p, "SM1", "hi")
	e.settleHurried(t)
	e.say(t, p, "SM2", "emergency")
	waitFor(t, "the AI layer to be asked", func() bool { return ai.Calls() == 1 })
	e.say(t, p, "SM3", "2")
	contact, _, err := store.NewContactStore(e.db, e.crypto).FindOrCreate(context.Background(), triageFrom)
	if err != nil {
		t.Fatal(err)
	}
	var conv int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT id FROM conversations WHERE contact_id = $1`, contact.ID).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	if err := p.Override(context.Background(), models.Actor{Role: models.RoleSupervisor}, conv, engine.Override{Kind: engine.OverrideMove, Node: "clarify"}); err != nil {
		t.Fatal(err)
	}
	close(ai.release)
	e.settleHurried(t)
	// The move asked the menu; the held "2" answered it; the AI layer's
	// late "emergency" changed nothing.
	want := []string{"Tell me in a few words what you need.", "Sorry, I did not follow. 1. Appointment 2. Emergency 3. Something else", "If this is an emergency, call 112 now."}
	if got := e.bodies(); !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}
	if got := e.stateValue(t, contact.ID, "var need"); got != "emergency" {
		t.Fatalf("need = %q", got)
	}
	if n := e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'conversation.override'`); n != 1 {
		t.Fatalf("%d override audit events, want 1", n)
	}
}

func TestFlows_AnOverlongMessageIsStoredCappedAndAnsweredWithANote(t *testing.T) {
	e := newEnv(t)
	p := e.start(t, pipeline.NewFlows(engine.Builtin(), e.db, e.crypto))
	e.say(t, p, "SM1", "hi")
	e.settleHurried(t)
	e.say(t, p, "SM2", strings.Repeat("नमस्ते ", 4000)) // 28,000 characters, 84 KB
	e.settleHurried(t)
	got := e.bodies()
	want := []string{"Hi! I'm the clinic assistant.", "What is your name?", "(Your message was long: I read only its first 4096 characters.)", "Please type your name."}
	if !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}
	var id int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT id FROM messages WHERE provider_message_id = 'SM2'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	m, err := store.NewMessageStore(e.db, e.crypto).Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Body) > 16<<10 || len(m.Body) < 16<<10-8 || !utf8.ValidString(m.Body) {
		t.Fatalf("stored body of %d bytes (valid UTF-8: %v); want 16 KiB less at most a character", len(m.Body), utf8.ValidString(m.Body))
	}
}

// TestAI_ASlowModelNeverHoldsUpOtherContacts keeps the AI layer busy
// with one contact's request while another contact's conversation goes
// on: AI requests have a queue and workers of their own.
func TestAI_ASlowModelNeverHoldsUpOtherContacts(t *testing.T) {
	e := newEnv(t)
	ai := &gatedAI{release: make(chan struct{})}
	p := e.startWith(t, pipeline.Deps{
		AI:        ai,
		Responder: pipeline.NewFlows(engine.NewLibrary(engine.Builtin().Current("triage")), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    pipeline.Config{Workers: 1, AIWorkers: 1, AITimeout: time.Hour, SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 100 * time.Millisecond},
	})
	t.Cleanup(func() { close(ai.release) }) // before the pipeline stops (cleanups run last first): Stop waits for the held job
	say := func(id, from, text string) {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(id, from, text)}); err != nil {
			t.Fatal(err)
		}
	}
	say("SM1", "+919876543210", "hi")
	say("SM2", "+919876543210", "I need an appointment")
	waitFor(t, "the AI layer to be asked", func() bool { return ai.Calls() == 1 })
	say("SM3", "+919812345678", "hello")
	waitFor(t, "the other contact's reply", func() bool {
		for _, s := range e.api.Sent() {
			if s.To == "+919812345678" {
				return true
			}
		}
		return false
	})
}

// meteredAI tells what each answer used, as ai.Text does.
type meteredAI struct{ gatedAI }

func (m *meteredAI) AnswerMetered(ctx context.Context, req engine.AIRequest) (engine.AIResult, ai.Usage, error) {
	res, err := m.Answer(ctx, req)
	return res, ai.Usage{Provider: "llm", Task: string(req.Task), PromptTokens: 40, OutputTokens: 5}, err
}

// What the text model used is recorded against the conversation it
// answered for.
func TestAI_UsageRecordedPerConversation(t *testing.T) {
	e, p := startTriage(t, &meteredAI{})
	e.say(t, p, "SM1", "hi")
	e.say(t, p, "SM2", "I need an appointment")
	e.settleHurried(t)
	var rows, tokens int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(u.prompt_tokens + u.output_tokens), 0)
		FROM ai_usage u JOIN conversations c ON c.id = u.conversation_id AND c.contact_id = u.contact_id
		WHERE u.provider = 'llm' AND u.task = 'classify'`).Scan(&rows, &tokens); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || tokens != 45 {
		t.Fatalf("%d usage rows, %d tokens; want one row of 45", rows, tokens)
	}
}
