package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
)

// wave ingests one message from each of n contacts in one commit: their
// processing shares a job, and so do their replies' sends.
func (e *env) wave(t *testing.T, p *pipeline.Pipeline, n int, prefix, text string) {
	t.Helper()
	var batch []channel.Inbound
	for c := range n {
		batch = append(batch, sms(fmt.Sprintf("%s-%d", prefix, c), fmt.Sprintf("+9198765%05d", c), text))
	}
	if p == nil {
		p = e.pipeline(t, nil)
	}
	if _, err := p.Ingest(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

// sentTo returns, by number, the bodies Twilio took, in the order taken.
func (e *env) sentTo() map[string][]string {
	out := map[string][]string{}
	for _, s := range e.api.Sent() {
		out[s.To] = append(out[s.To], s.Body)
	}
	return out
}

// each fails the test unless every one of n contacts got want, in order.
func (e *env) each(t *testing.T, n int, want ...string) {
	t.Helper()
	got := e.sentTo()
	for c := range n {
		to := fmt.Sprintf("+9198765%05d", c)
		if !slices.Equal(got[to], want) {
			t.Errorf("%s got %q, want %q", to, got[to], want)
		}
	}
	if len(got) != n {
		t.Errorf("%d contacts got replies, want %d", len(got), n)
	}
}

func (e *env) flows(t *testing.T, config pipeline.Config) *pipeline.Pipeline {
	t.Helper()
	config.RetryBase, config.FetchInterval = 10*time.Millisecond, 20*time.Millisecond
	return e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    config,
	})
}

var greeting = []string{"Hi! I'm the clinic assistant.", "What is your name?"}

func TestSendBatch_AWaveOfRepliesLeavesInOneJob(t *testing.T) {
	e := newEnv(t)
	e.wave(t, nil, 10, "SM", "hello")
	e.flows(t, pipeline.Config{SendRate: 1000, SendBurst: 100})
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) == 20 && e.idle(t) })
	e.each(t, 10, greeting...)
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent' AND provider_message_id LIKE 'SM%'`); n != 20 {
		t.Fatalf("%d replies recorded sent with Twilio's SID, want 20", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_batch'`); n != 1 {
		t.Fatalf("%d send batches, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_message'`); n != 0 {
		t.Fatalf("%d sends of their own, want none", n)
	}
}

// One contact's trouble never holds up the others: a call to be retried
// goes on in the contact's own job, which sends it (once), and a refusal
// for good fails that message alone, with the contact's later ones.
func TestSendBatch_OneContactsTroubleIsHandedOn(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		failure              twiliotest.Failure
		wantSent, wantFailed int
		wantCodes            []string
	}{
		{"a server error", twiliotest.ServerError, 10, 0, nil},
		{"rate limited", twiliotest.RateLimited, 10, 0, nil},
		{"unsubscribed", twiliotest.Unsubscribed, 8, 2, []string{"21610", "parley:opted_out"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.wave(t, nil, 5, "SM", "hello")
			e.api.FailNext(tt.failure)
			e.flows(t, pipeline.Config{SendRate: 1000, SendBurst: 100})
			waitFor(t, "every reply to settle", func() bool {
				return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status IN ('sent', 'failed')`) == 10
			})
			if n := len(e.api.Sent()); n != tt.wantSent {
				t.Fatalf("Twilio took %d, want %d", n, tt.wantSent)
			}
			for to, bodies := range e.sentTo() {
				if len(bodies) == 2 && !slices.Equal(bodies, greeting) {
					t.Errorf("%s got %q, want %q", to, bodies, greeting)
				}
			}
			var codes []string
			rows, err := e.db.Pool.Query(context.Background(), `SELECT error_code FROM messages WHERE direction = 'out' AND status = 'failed' ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var c string
				_ = rows.Scan(&c)
				codes = append(codes, c)
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Fatalf("failed with %q, want %q", codes, tt.wantCodes)
			}
			handed := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_message'`)
			if want := len(tt.wantCodes) == 0; (handed == 1) != want {
				t.Fatalf("%d sends of their own; want one only for a retry", handed)
			}
		})
	}
}

// gate holds calls to the platform until opened.
type gate struct {
	channel.Sender
	open    chan struct{}
	entered chan struct{}
}

func (g *gate) Send(ctx context.Context, out channel.Outbound) (string, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.Sender.Send(ctx, out)
}

// A wave's replies wait, in their batch, for the contacts' earlier
// replies still on their way (looking again in the job for a quarter of
// its time, then snoozing), and leave after them, in order, without a job
// of their own.
func TestSendBatch_RepliesWaitInTheBatchForEarlierOnes(t *testing.T) {
	e := newEnv(t)
	g := &gate{Sender: e.twilio, open: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: g},
		Config: pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond,
			JobTimeout: 2 * time.Second},
	})
	e.wave(t, p, 4, "SMa", "hello")
	<-g.entered // the first wave's batch is calling
	e.wave(t, p, 4, "SMb", "Asha")
	waitFor(t, "the second batch to find the first on its way", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_batch' AND (metadata->>'snoozes')::int > 0`) == 1
	})
	close(g.open)
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) == 12 && e.idle(t) })
	e.each(t, 4, append(greeting, "How old are you, Asha?")...)
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_message'`); n != 0 {
		t.Fatalf("%d sends of their own, want none", n)
	}
}

// A batch cut off mid-call (the worker killed past its grace) leaves the
// attempts open; each goes on in its contact's own job, which asks Twilio
// and sends what it never got: every reply once.
func TestSendBatch_CutOffMidCallIsReconciledOnce(t *testing.T) {
	e := newEnv(t)
	e.wave(t, nil, 3, "SM", "hello")
	g := &gate{Sender: e.twilio, open: make(chan struct{}), entered: make(chan struct{}, 1)}
	first, err := pipeline.New(pipeline.Deps{
		DB: e.db, Crypto: e.crypto, Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders: map[string]channel.Sender{channel.Twilio: g},
		Config:  pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	killed, kill := context.WithCancel(context.Background())
	kill()
	_ = first.Stop(killed)
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sending'`); n == 0 {
		t.Fatal("no attempt left open by the kill")
	}

	e.flows(t, pipeline.Config{SendRate: 1000, SendBurst: 100}) // the restart
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) == 6 && e.idle(t) })
	e.each(t, 3, greeting...)
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'`); n != 6 {
		t.Fatalf("%d replies recorded sent, want 6", n)
	}
}

// A batch asks once per contact what may refuse its messages: a contact
// whose WhatsApp window closed has every reply failed with the reason,
// before any call, while the others' go.
func TestSendBatch_AClosedWhatsAppWindowFailsThatContactsReplies(t *testing.T) {
	e := newEnv(t)
	var batch []channel.Inbound
	for c := range 4 {
		batch = append(batch, channel.Inbound{Provider: channel.Twilio, ProviderMessageID: fmt.Sprintf("SM%d", c), From: fmt.Sprintf("whatsapp:+9198765%05d", c), Body: "hello"})
	}
	if _, err := e.pipelineIngest(t, batch...); err != nil {
		t.Fatal(err)
	}
	// Two of them last wrote 25 hours ago.
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE messages SET created_at = now() - interval '25 hours' WHERE provider_message_id IN ('SM1', 'SM3')`); err != nil {
		t.Fatal(err)
	}
	// The flows would hand those two to a person at processing, sending
	// nothing (TestFlows_NoTemplatePastTheWindowHandsOff): a responder
	// blind to the window leaves the refusal to the batch, the last guard.
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{Text: "Thanks, we got it."},
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:  pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "every reply to settle", func() bool {
		return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status IN ('sent', 'failed')`) == 4
	})
	if n := len(e.api.Sent()); n != 2 {
		t.Fatalf("Twilio took %d, want the open windows' 2", n)
	}
	for _, s := range e.api.Sent() {
		if strings.HasSuffix(s.To, "00001") || strings.HasSuffix(s.To, "00003") {
			t.Fatalf("a reply went to %s, whose window closed", s.To)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'failed' AND error_code = 'parley:window_closed' AND error_reason <> ''`); n != 2 {
		t.Fatalf("%d replies failed as the window closed, want 2", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_batch'`); n != 1 {
		t.Fatalf("%d send batches, want 1", n)
	}
}
