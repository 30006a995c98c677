package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/models"
)

// replies answers every message with the same few replies, in order.
type replies []string

func (r replies) Respond(context.Context, *gorm.DB, *models.Contact, *models.Message) (*pipeline.Outcome, error) {
	return &pipeline.Outcome{Replies: slices.Clone(r)}, nil
}

// sendsAtPace starts a pipeline answering each message with answers,
// sending through the env's fake Twilio at rate with at most inFlight
// calls out, on sendWorkers send workers; its metrics go to the returned
// registry.
func (e *env) sendsAtPace(t *testing.T, answers replies, rate float64, inFlight, sendWorkers, tries int) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	e.startWith(t, pipeline.Deps{
		Responder: answers, Metrics: pipeline.NewMetrics(reg),
		Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config: pipeline.Config{SendRate: rate, SendBurst: 1000, SendMaxInFlight: inFlight, SendWorkers: sendWorkers, MaxSendTries: tries,
			RetryBase: 10 * time.Millisecond, FetchInterval: 20 * time.Millisecond},
	})
	return reg
}

// waves ingests one message from each of n contacts, in commits of 64 (a
// processing transaction's worth): many send batches at once.
func (e *env) waves(t *testing.T, n int) {
	t.Helper()
	p := e.pipeline(t, nil)
	var batch []channel.Inbound
	for c := range n {
		batch = append(batch, sms(fmt.Sprintf("SM-%d", c), fmt.Sprintf("+9198765%05d", c), "hello"))
		if len(batch) == 64 || c == n-1 {
			if _, err := p.Ingest(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// allSentOnce fails the test unless each of n contacts got want exactly,
// in order, and every reply is recorded sent (none failed).
func (e *env) allSentOnce(t *testing.T, n int, want ...string) {
	t.Helper()
	waitFor(t, "every reply to be sent", func() bool { return len(e.api.Sent()) >= n*len(want) && e.idle(t) })
	e.each(t, n, want...)
	if got := len(e.api.Sent()); got != n*len(want) {
		t.Errorf("Twilio took %d messages, want %d: some went twice", got, n*len(want))
	}
	if failed := e.count(t, `SELECT count(*) FROM messages WHERE direction = 'out' AND status <> 'sent'`); failed != 0 {
		t.Errorf("%d replies not recorded sent", failed)
	}
}

// The calls in flight follow the rate and the provider's latency, never
// past the cap: 1,000/s at 100 ms calls for about 125, capped at 40 here;
// ten send workers once made up to 80 calls at once whatever the cap.
func TestSend_InFlightCapHolds(t *testing.T) {
	e := newEnv(t)
	e.api.Delay = 100 * time.Millisecond
	const n, limit = 600, 40
	reg := e.sendsAtPace(t, replies{"ack"}, 1000, limit, 10, 0)
	e.waves(t, n)
	e.allSentOnce(t, n, "ack")
	t.Logf("most in flight %d", e.api.MostInFlight())
	if most := e.api.MostInFlight(); most > limit || most < limit/2 {
		t.Fatalf("at most %d calls were in flight, want up to the cap of %d and near it", most, limit)
	}
	if got := twilioValue(t, reg, "parley_send_in_flight_limit"); got != limit {
		t.Errorf("the in-flight limit shows %g, want the cap %d", got, limit)
	}
}

// With the rate and the latency calling for it, far more than the old
// eight calls a batch are out, from two send workers: the batch's
// contacts all go at once and the gate sizes them (1,000/s × 100 ms).
func TestSend_InFlightFollowsRateAndLatencyNotWorkers(t *testing.T) {
	e := newEnv(t)
	e.api.Delay = 100 * time.Millisecond
	const n = 600
	e.sendsAtPace(t, replies{"ack"}, 1000, 200, 2, 0)
	e.waves(t, n)
	e.allSentOnce(t, n, "ack")
	if most := e.api.MostInFlight(); most < 48 {
		t.Fatalf("at most %d calls were in flight from two send workers; the rate and latency call for about 125", most)
	}
}

// A contact's replies leave in order, one at a time, with hundreds of
// calls in flight across contacts (ten send workers once made 80 at most).
func TestSend_PerContactOrderHoldsWithHundredsInFlight(t *testing.T) {
	e := newEnv(t)
	e.api.Delay = 50 * time.Millisecond
	const n = 400
	e.sendsAtPace(t, replies{"one", "two", "three", "four"}, 5000, 400, 10, 0)
	e.waves(t, n)
	e.allSentOnce(t, n, "one", "two", "three", "four")
	if most := e.api.MostInFlight(); most < 100 {
		t.Fatalf("at most %d calls were in flight, want a hundred or more", most)
	}
}

// A 429 (Twilio's 20429) is never a failure, however many attempts it
// takes: the message waits and goes once the platform takes it.
func TestSend_A429NeverFailsTheMessage(t *testing.T) {
	e := newEnv(t)
	e.api.FailNext(twiliotest.RateLimited, twiliotest.RateLimited, twiliotest.RateLimited)
	reg := e.sendsAtPace(t, replies{"ack"}, 1000, 200, 10, 2)
	e.waves(t, 1)
	e.allSentOnce(t, 1, "ack")
	if got := twilioValue(t, reg, "parley_send_throttled_total"); got != 3 {
		t.Errorf("parley_send_throttled_total = %g, want 3", got)
	}
}

// A provider that refuses calls past ten at once (429 with Retry-After)
// slows the sender down: the in-flight limit falls from the 125 the rate
// and latency call for, so the refusals stay few, and every message still
// goes exactly once, although each send has a single attempt.
func TestSend_A429SlowsSendingAndLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.api.Delay, e.api.MaxConcurrent, e.api.RetryAfter = 50*time.Millisecond, 10, 1
	const n = 300
	reg := e.sendsAtPace(t, replies{"one", "two"}, 2500, 200, 10, 1)
	e.waves(t, n)
	e.allSentOnce(t, n, "one", "two")
	t.Logf("refused %d, most in flight %d, limit %g", e.api.Limited(), e.api.MostInFlight(), twilioValue(t, reg, "parley_send_in_flight_limit"))
	if e.api.Limited() == 0 {
		t.Fatal("the fake never refused a call: the test shows nothing")
	}
	if e.api.Limited() > n/2 {
		t.Errorf("the fake refused %d calls: the sender kept calling past its limit instead of slowing down", e.api.Limited())
	}
	if got := twilioValue(t, reg, "parley_send_throttled_total"); int(got) != e.api.Limited() {
		t.Errorf("parley_send_throttled_total = %g, want the fake's %d refusals", got, e.api.Limited())
	}
	if got := twilioValue(t, reg, "parley_send_in_flight_limit"); got > 100 {
		t.Errorf("the in-flight limit is still %g after the 429s, want it cut", got)
	}
}

// twilioValue is the value of the named gauge or counter's twilio series
// in reg.
func twilioValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if f.GetName() == name && l.GetName() == "provider" && l.GetValue() == channel.Twilio {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s series for twilio", name)
	return 0
}

// Webhooks come one a request, so each processing run holds a contact or
// two; while the send workers are busy, their replies gather into the
// batches waiting in the queue, whose calls all go at once: one send
// worker keeps dozens of calls out (a job a contact made one at a time).
func TestSend_RepliesOfSmallRunsGatherIntoWaitingBatches(t *testing.T) {
	e := newEnv(t)
	e.api.Delay = 200 * time.Millisecond
	const n = 120
	e.sendsAtPace(t, replies{"one", "two"}, 1000, 200, 1, 0)
	p := e.pipeline(t, nil)
	for c := range n {
		if _, err := p.Ingest(context.Background(), []channel.Inbound{sms(fmt.Sprintf("SM-%d", c), fmt.Sprintf("+9198765%05d", c), "hello")}); err != nil {
			t.Fatal(err)
		}
	}
	e.allSentOnce(t, n, "one", "two")
	if most := e.api.MostInFlight(); most < 20 {
		t.Fatalf("at most %d calls were in flight from one send worker, want the waiting contacts' calls together", most)
	}
}
