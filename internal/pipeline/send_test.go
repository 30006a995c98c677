package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/siren"
	"github.com/parley-chat/parley/internal/channel/siren/sirentest"
	"github.com/parley-chat/parley/internal/channel/twilio"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// outbound returns the one outbound message's status, error code and reason.
func (e *env) outbound(t *testing.T) (status, code, reason string) {
	t.Helper()
	err := e.db.Pool.QueryRow(context.Background(), `SELECT status, error_code, error_reason FROM messages WHERE direction = 'out'`).
		Scan(&status, &code, &reason)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return status, code, reason
}

func (e *env) optedOut(t *testing.T, address string) bool {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM contacts WHERE opted_out_at IS NOT NULL`) == 1
}

func TestSend_FailureModes(t *testing.T) {
	tests := []struct {
		name       string
		failures   []twiliotest.Failure
		wantSent   int
		wantStatus string
		wantCode   string
		wantOptOut bool
	}{
		{"rate limited, then accepted", []twiliotest.Failure{twiliotest.RateLimited}, 1, "sent", "", false},
		{"server errors, then accepted", []twiliotest.Failure{twiliotest.ServerError, twiliotest.ServerError}, 1, "sent", "", false},
		{"bare 502 without JSON, then accepted", []twiliotest.Failure{{HTTPStatus: 502}}, 1, "sent", "", false},
		{"unsubscribed recipient", []twiliotest.Failure{twiliotest.Unsubscribed}, 0, "failed", "21610", true},
		{"invalid number", []twiliotest.Failure{twiliotest.InvalidTo}, 0, "failed", "21211", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.api.FailNext(tt.failures...)
			e.start(t, pipeline.Ack{Text: "ack"})
			if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the send to settle", func() bool {
				status, _, _ := e.outbound(t)
				return (status == "sent" || status == "failed") && e.idle(t)
			})
			status, code, reason := e.outbound(t)
			if status != tt.wantStatus || code != tt.wantCode || len(e.api.Sent()) != tt.wantSent {
				t.Fatalf("status %q code %q (%s), Twilio accepted %d; want %q %q, %d", status, code, reason, len(e.api.Sent()), tt.wantStatus, tt.wantCode, tt.wantSent)
			}
			if status == "failed" && reason == "" {
				t.Error("a failed message has no reason")
			}
			if got := e.optedOut(t, "+919876543210"); got != tt.wantOptOut {
				t.Errorf("contact opted out = %v, want %v", got, tt.wantOptOut)
			}
		})
	}
}

func TestSend_NothingMoreAfterStop(t *testing.T) {
	e := newEnv(t)
	e.start(t, pipeline.Ack{Text: "ack"})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "STOP")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "STOP to be processed", func() bool { return e.idle(t) && e.optedOut(t, "") })
	if _, err := e.pipelineIngest(t, sms("SM2", "+919876543210", "hello?")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next message to be processed", func() bool {
		return e.idle(t) && e.count(t, `SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NULL`) == 0
	})
	if n := len(e.api.Sent()); n != 0 {
		t.Fatalf("%d messages sent to a contact who sent STOP", n)
	}
	if _, err := e.pipelineIngest(t, sms("SM3", "+919876543210", "START")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "START to be answered", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
}

func TestSend_WhatsAppWindowIsCheckedBeforeSending(t *testing.T) {
	e := newEnv(t)
	// The contact last wrote 25 hours ago.
	if _, err := e.pipelineIngest(t, channel.Inbound{Provider: channel.Twilio, ProviderMessageID: "SM1", From: "whatsapp:+919876543210", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Pool.Exec(context.Background(), `UPDATE messages SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	e.start(t, pipeline.Ack{Text: "ack"})
	waitFor(t, "the send to settle", func() bool { s, _, _ := e.outbound(t); return s == "failed" && e.idle(t) })
	_, code, reason := e.outbound(t)
	if code != "parley:window_closed" || reason == "" || len(e.api.Sent()) != 0 {
		t.Fatalf("code %q reason %q, Twilio got %d; want window_closed before any call", code, reason, len(e.api.Sent()))
	}
}

// blockingSender stands for a platform call during which the process dies.
type blockingSender struct {
	entered chan struct{}
}

func (b *blockingSender) Send(ctx context.Context, _ channel.Outbound) (string, error) {
	close(b.entered)
	<-ctx.Done()
	return "", ctx.Err()
}

// countingSender takes every message and says so, and cannot be asked
// about earlier sends (no Lookup): as Meta's and Siren's APIs.
type countingSender struct{ n atomic.Int32 }

func (c *countingSender) Send(context.Context, channel.Outbound) (string, error) {
	return fmt.Sprintf("wamid.%d", c.n.Add(1)), nil
}

// killMidSend runs a first life whose send is cut off mid-call by a kill,
// leaving the attempt open.
func killMidSend(t *testing.T, e *env) {
	t.Helper()
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	b := &blockingSender{entered: make(chan struct{})}
	first, err := pipeline.New(pipeline.Deps{
		DB: e.db, Crypto: e.crypto, Responder: pipeline.Ack{Text: "ack"}, Senders: map[string]channel.Sender{channel.Twilio: b},
		Config: pipeline.Config{SendRate: 1000, RetryBase: 10 * time.Millisecond, FetchInterval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-b.entered
	// The kill: shutdown's grace runs out and the job's context is
	// cancelled while the platform call is in flight.
	stopCtx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(stopCtx)
	if s, _, _ := e.outbound(t); s != "sending" {
		t.Fatalf("after the kill the message is %q, want the attempt left open (sending)", s)
	}
}

// Where the platform cannot be asked, an attempt interrupted mid-call is
// never repeated on a guess: it is uncertain, for a person.
func TestSend_AnAttemptInterruptedMidCallIsNeverRepeatedSilently(t *testing.T) {
	e := newEnv(t)
	killMidSend(t, e)
	second := &countingSender{}
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{Text: "ack"}, Senders: map[string]channel.Sender{channel.Twilio: second},
		Config: pipeline.Config{SendRate: 1000, RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "the retry to settle", func() bool { s, _, _ := e.outbound(t); return s == "failed" && e.idle(t) })
	_, code, reason := e.outbound(t)
	if code != "parley:uncertain" || reason == "" {
		t.Fatalf("code %q reason %q, want parley:uncertain with a reason", code, reason)
	}
	if n := second.n.Load(); n != 0 {
		t.Fatalf("the interrupted message was sent again %d times", n)
	}
}

// Twilio can be asked: an attempt interrupted before Twilio got it is
// found absent there and sent, once.
func TestSend_AnInterruptedSendTwilioNeverGotIsSentOnce(t *testing.T) {
	e := newEnv(t)
	killMidSend(t, e)
	e.start(t, pipeline.Ack{Text: "ack"})
	waitFor(t, "the retry to settle", func() bool { s, _, _ := e.outbound(t); return s == "sent" && e.idle(t) })
	if sent := e.api.Sent(); len(sent) != 1 || sent[0].Body != "ack" {
		t.Fatalf("Twilio took %+v, want the reply once", sent)
	}
}

// TestSend_RepliesLeaveInOrderAcrossInputs holds the first replies back
// with a platform error and its retry delay; the reply to the contact's
// next message, queued meanwhile by another job, waits its turn.
func TestSend_RepliesLeaveInOrderAcrossInputs(t *testing.T) {
	e := newEnv(t)
	p := e.startWith(t, pipeline.Deps{
		Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config:    pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: 2 * time.Second, FetchInterval: 100 * time.Millisecond},
	})
	e.api.FailNext(twiliotest.ServerError)
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SM1", "+919876543210", "hi")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first send to fail and wait for its retry", func() bool {
		return e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'queued' AND attempts = 1`) == 1
	})
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SM2", "+919876543210", "Asha")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) == 3 })
	var got []string
	for _, s := range e.api.Sent() {
		got = append(got, s.Body)
	}
	want := []string{"Hi! I'm the clinic assistant.", "What is your name?", "How old are you, Asha?"}
	if !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// Twilio takes the message and then does not answer in time: it may have
// sent it. The retry asks Twilio, finds it, and records it sent with
// Twilio's SID; it is never sent a second time.
func TestSend_ATimeoutAfterTwilioTookTheRequestIsReconciled(t *testing.T) {
	e := newEnv(t)
	slow, err := twilio.NewClient(twilio.Config{AccountSID: accountSID, AuthToken: authToken, From: "+15005550006", APIBaseURL: e.api.URL,
		Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.api.FailNext(twiliotest.AcceptThenStall)
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{Text: "ack"}, Senders: map[string]channel.Sender{channel.Twilio: slow},
		Config: pipeline.Config{RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the send to settle", func() bool { s, _, _ := e.outbound(t); return s == "sent" && e.idle(t) })
	sent := e.api.Sent()
	if len(sent) != 1 {
		t.Fatalf("Twilio took the message %d times, want once", len(sent))
	}
	var sid string
	_ = e.db.Pool.QueryRow(context.Background(), `SELECT provider_message_id FROM messages WHERE direction = 'out'`).Scan(&sid)
	if sid != sent[0].SID {
		t.Fatalf("recorded SID %q, want Twilio's %q", sid, sent[0].SID)
	}
}

// A platform that asks to be retried later (429 with Retry-After) is not
// called again sooner, however short the backoff. The wait is a snooze,
// which uses up no attempt: a 429 never fails a message.
func TestSend_TheRetryWaitsAsLongAsThePlatformAsked(t *testing.T) {
	e := newEnv(t)
	api := sirentest.NewAPI("key-1")
	t.Cleanup(api.Close)
	sc, err := siren.NewClient(siren.Config{APIKey: "key-1", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	api.RateLimitNext(3600)
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{Text: "ack"}, Senders: map[string]channel.Sender{channel.Siren: sc},
		Config: pipeline.Config{RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond}})
	in := sms("sr-1", "+919876543210", "hello")
	in.Provider = channel.Siren
	if _, err := e.pipelineIngest(t, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused send to be scheduled again", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_message' AND state = 'scheduled' AND attempt = 0`) == 1
	})
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_message' AND scheduled_at > now() + interval '55 minutes'`); n != 1 {
		t.Fatal("the retry is due sooner than the hour Siren asked for")
	}
	if len(api.Sent()) != 0 {
		t.Fatal("sent despite the refusal")
	}
}

// Sends have workers of their own: processing that waits for a contact's
// lock (here the only processing worker, for a minute) never holds up a
// reply already decided for another contact.
func TestSend_AReplyIsNotHeldUpByProcessingWaitingForALock(t *testing.T) {
	e := newEnv(t)
	p := e.startWith(t, pipeline.Deps{
		Responder: pipeline.Ack{Text: "ack"},
		Senders:   map[string]channel.Sender{channel.Twilio: e.twilio},
		Config: pipeline.Config{Workers: 1, SendRate: 1000, SendBurst: 100, FetchInterval: 20 * time.Millisecond,
			JobTimeout: time.Minute, RescueAfter: 3 * time.Minute},
	})
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SM1", "+919876543210", "hello")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first contact answered", func() bool { return len(e.api.Sent()) == 1 && e.idle(t) })
	var asha int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT contact_id FROM messages WHERE provider_message_id = 'SM1'`).Scan(&asha); err != nil {
		t.Fatal(err)
	}

	// Another contact's row is held; its message's processing waits.
	release := e.holdContact(t, "+919876543211")
	if _, err := p.Ingest(context.Background(), []channel.Inbound{sms("SM2", "+919876543211", "hello")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the processing to wait for the lock", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind = 'process_contact' AND state = 'running'`) == 1
	})

	if _, err := p.Reply(context.Background(), models.Actor{Role: models.RoleSupervisor}, asha, "A person writes"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the staff reply sent while the processing waits", func() bool { return len(e.api.Sent()) == 2 })
	if n := e.count(t, `SELECT count(*) FROM messages WHERE provider_message_id = 'SM2' AND processed_at IS NULL`); n != 1 {
		t.Fatal("the held contact's message was processed while its lock was held")
	}
	release()
	waitFor(t, "the held contact answered once free", func() bool { return len(e.api.Sent()) == 3 && e.idle(t) })
}
