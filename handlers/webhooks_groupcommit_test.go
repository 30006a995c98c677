package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/internal/channel/twilio/twiliotest"
)

// metric sums the samples of the named counter, gauge or histogram (its
// count) whose labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// holdIngest makes every ingest transaction wait for the contacts table
// until the returned release is called, so webhooks sent meanwhile queue
// up behind the committers as a burst does behind a slow disk.
func (h *hooks) holdIngest(t *testing.T) (release func()) {
	t.Helper()
	tx, err := h.db.Pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "LOCK TABLE contacts IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(context.Background()) }) }
	t.Cleanup(release)
	return release
}

// refuseMessageID makes the test database refuse to store a message with
// this provider id, as a failing constraint would.
func (h *hooks) refuseMessageID(t *testing.T, id string) {
	t.Helper()
	_, err := h.db.Pool.Exec(context.Background(), `CREATE FUNCTION refuse_message() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
		CREATE TRIGGER refuse_message BEFORE INSERT ON messages FOR EACH ROW
		WHEN (NEW.provider_message_id = '`+id+`') EXECUTE FUNCTION refuse_message()`)
	if err != nil {
		t.Fatal(err)
	}
}

// twilioFrom is a signed Twilio message sid from number from.
func twilioFrom(sid, from string) map[string]string {
	p := twilioSMS(sid)
	p["From"] = from
	return p
}

// postAll posts each signed Twilio message at once, each on its own
// connection, and returns their statuses in order once all have answered.
// Before it returns, while held, it waits until every one of them is
// inside ingest (parley_ingest_pending), then calls release.
func (h *hooks) postAll(t *testing.T, messages []map[string]string, release func()) []int {
	t.Helper()
	pending := metric(t, h.reg, "parley_ingest_pending", nil)
	statuses := make([]int, len(messages))
	var wg sync.WaitGroup
	for i, params := range messages {
		wg.Go(func() { statuses[i] = h.postTwilio(t, params) })
	}
	if release != nil {
		waitFor(t, "every webhook waiting for its commit", func() bool {
			return metric(t, h.reg, "parley_ingest_pending", nil) == pending+float64(len(messages))
		})
		release()
	}
	wg.Wait()
	return statuses
}

// postTwilio sends one signed Twilio webhook and returns its status (0: no answer,
// reported with t.Error, so it may run off the test's goroutine).
func (h *hooks) postTwilio(t *testing.T, params map[string]string) int {
	req, _ := http.NewRequest(http.MethodPost, h.base+"/webhooks/twilio", bytes.NewReader(form(params)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign(authToken, publicURL+"/webhooks/twilio", params))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Forty webhooks arriving together (held behind a slow commit, as a burst
// is) share a handful of transactions, each is answered 200 only once its
// message is stored, and the same forty delivered again are answered 200
// and stored no second time.
func TestTwilioWebhook_ConcurrentWebhooksShareCommits(t *testing.T) {
	h := newHooks(t, false)
	const n = 40
	var messages []map[string]string
	for i := range n {
		messages = append(messages, twilioFrom(fmt.Sprintf("SMgroup%03d", i), fmt.Sprintf("+9198765%05d", i)))
	}
	statuses := h.postAll(t, messages, h.holdIngest(t))
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("webhook %d answered %d", i, s)
		}
	}
	if got := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); got != n {
		t.Fatalf("%d messages stored, want %d", got, n)
	}
	commits := metric(t, h.reg, "parley_ingest_commits_total", map[string]string{"outcome": "committed"})
	t.Logf("%d webhooks in %.0f commits", n, commits)
	if commits > n/4 {
		t.Fatalf("%d concurrent webhooks took %.0f commits, want them to share a few", n, commits)
	}
	if failed := metric(t, h.reg, "parley_ingest_commits_total", map[string]string{"outcome": "failed"}); failed != 0 {
		t.Fatalf("%.0f ingest transactions failed", failed)
	}

	// Platforms redeliver what they doubt: the second delivery of each is
	// acknowledged and stores nothing.
	for i, s := range h.postAll(t, messages, nil) {
		if s != 200 {
			t.Fatalf("webhook %d delivered again answered %d", i, s)
		}
	}
	if got := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); got != n {
		t.Fatalf("%d messages stored after the redelivery, want %d", got, n)
	}
	if got := h.count(t, "SELECT count(*) FROM contacts"); got != n {
		t.Fatalf("%d contacts, want %d", got, n)
	}
}

// One message the database refuses (a trigger refuses its message id: what
// parsing lets through and a constraint or the disk still may refuse)
// shares a commit with twenty good ones: the batch
// fails, each is tried alone, the twenty are answered 200 and stored and
// the bad one alone gets an error; a message delivered twice at once is
// stored once and both deliveries are acknowledged.
func TestTwilioWebhook_OneBadMessageFailsAloneInItsBatch(t *testing.T) {
	h := newHooks(t, false)
	h.refuseMessageID(t, "SMbad")
	const good = 20
	var messages []map[string]string
	for i := range good {
		messages = append(messages, twilioFrom(fmt.Sprintf("SMgood%03d", i), fmt.Sprintf("+9198765%05d", i)))
	}
	messages = append(messages, twilioFrom("SMgood000", "+919876500000")) // the first, delivered twice
	bad := len(messages)
	messages = append(messages, twilioFrom("SMbad", "+919876599999"))

	// One webhook for each committer to hold behind the lock first, one
	// at a time (the first committer waits on the lock before the second
	// webhook comes), so the bad one cannot be alone in the first batches:
	// the rest wait together.
	release := h.holdIngest(t)
	holders := []map[string]string{twilioFrom("SMhold0", "+919876588880"), twilioFrom("SMhold1", "+919876588881")}
	held := make([]int, len(holders))
	var hold sync.WaitGroup
	for i, params := range holders {
		hold.Go(func() { held[i] = h.postTwilio(t, params) })
		waitFor(t, "a committer waiting on the held lock", func() bool {
			return h.count(t, "SELECT count(*) FROM pg_locks WHERE relation = 'contacts'::regclass AND NOT granted") == i+1
		})
	}
	statuses := h.postAll(t, messages, release)
	hold.Wait()
	for i, s := range held {
		if s != 200 {
			t.Fatalf("held webhook %d answered %d", i, s)
		}
	}
	for i, s := range statuses {
		if i == bad {
			if s < 500 {
				t.Fatalf("the message the database refuses answered %d, want an error the platform retries", s)
			}
			continue
		}
		if s != 200 {
			t.Fatalf("good webhook %d answered %d, want 200 whatever its batch's neighbour did", i, s)
		}
	}
	if got := h.count(t, "SELECT count(*) FROM messages WHERE direction = 'in'"); got != good+len(holders) {
		t.Fatalf("%d messages stored, want the %d good ones once each", got, good+len(holders))
	}
	if failed := metric(t, h.reg, "parley_ingest_commits_total", map[string]string{"outcome": "failed"}); failed < 2 {
		t.Fatalf("%.0f failed ingest transactions, want the shared batch's and the bad message's alone", failed)
	}
	if jobs := h.count(t, "SELECT count(*) FROM river_job WHERE kind IN ('process_contact', 'process_contacts')"); jobs == 0 {
		t.Fatal("the good messages were stored without their processing job")
	}
}
