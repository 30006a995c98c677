package pipeline_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/engine"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

// A job running while its contact is erased stays (it cannot be taken from
// under its worker) and may come back as a retry. Whatever its kind, it
// then finds nothing and completes at once, sending and delivering
// nothing: it neither fails nor retries for days.
func TestErasure_JobsOfAnErasedContactCompleteQuietly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "knee surgery Monday")); err != nil {
		t.Fatal(err)
	}
	var contact, message int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT contact_id, id FROM messages WHERE provider_message_id = 'SM1'`).Scan(&contact, &message); err != nil {
		t.Fatal(err)
	}
	media, err := store.NewMediaStore(e.db, e.crypto).Add(ctx, nil, message, 0, "https://api.twilio.com/media/1", "image/jpeg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewContactStore(e.db, e.crypto).Erase(ctx, contact, nil, store.NewAuditStore(e.db, e.crypto)); err != nil {
		t.Fatal(err)
	}
	// Each kind of job as the erasure leaves one that was running: the
	// ids of what is gone, an event stripped and marked.
	jobs := []river.InsertManyParams{
		{Args: pipeline.ProcessArgs{ContactID: contact, Held: message}},
		{Args: pipeline.ProcessBatchArgs{ContactIDs: []int64{contact}}},
		{Args: pipeline.SendArgs{MessageIDs: []int64{message}}},
		{Args: pipeline.SendBatchArgs{Provider: channel.Twilio, Runs: [][]int64{{message}}}},
		{Args: pipeline.MediaArgs{MediaID: media, Provider: channel.Twilio}},
		{Args: pipeline.UnderstandArgs{MediaID: media}, InsertOpts: &river.InsertOpts{Queue: "ai"}},
		{Args: pipeline.WaitArgs{ContactID: contact, ConversationID: 1, Input: "expire", Seq: 1, Provider: channel.Twilio}},
		{Args: pipeline.AIArgs{ContactID: contact, ConversationID: 1, Seq: 1, Provider: channel.Twilio}, InsertOpts: &river.InsertOpts{Queue: "ai"}},
		{Args: pipeline.StatusPollArgs{MessageID: message, Provider: channel.Twilio, SentAt: time.Now().UTC()}},
		{Args: pipeline.EventArgs{ID: "evt_1", Type: pipeline.EventMessageReceived, At: time.Now().UTC(),
			Data: map[string]any{"contact_id": contact, "message_id": message}, Erased: true}},
	}
	rcv := &receiver{secret: []byte(strings.Repeat("s", 32)), accepted: map[string]map[string]any{}}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders:  map[string]channel.Sender{channel.Twilio: e.twilio},
		Fetchers: map[string]channel.MediaFetcher{channel.Twilio: e.twilio},
		Events:   &pipeline.Events{URL: srv.URL, Secret: rcv.secret, Personal: true},
		Config:   pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: time.Hour, FetchInterval: 20 * time.Millisecond}})
	inserter, err := river.NewClient(riverpgxv5.New(e.db.Pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inserter.InsertMany(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the jobs to end", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'pending')`) == 0
	})
	rows, err := e.db.Pool.Query(ctx, `SELECT kind, state::text, attempt, coalesce(errors::text, '') FROM river_job ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var kind, state, errs string
		var attempt int
		if err := rows.Scan(&kind, &state, &attempt, &errs); err != nil {
			t.Fatal(err)
		}
		if state != "completed" || attempt != 1 {
			t.Errorf("%s: %s after %d attempts, want completed at once (%s)", kind, state, attempt, errs)
		}
		done[kind] = true
	}
	for _, j := range jobs {
		if !done[j.Args.Kind()] {
			t.Errorf("no %s job ran", j.Args.Kind())
		}
	}
	if n := len(e.api.Sent()); n != 0 {
		t.Errorf("%d messages sent to an erased contact", n)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.calls != 0 {
		raw, _ := json.Marshal(rcv.accepted)
		t.Errorf("%d events delivered about an erased contact: %s", rcv.calls, raw)
	}
}

// erasingSender is the platform taking a message while, at that moment,
// the contact is erased (the call runs outside any lock an erasure waits
// for).
type erasingSender struct {
	channel.Sender
	erase func()
	once  sync.Once
}

func (s *erasingSender) Send(ctx context.Context, m channel.Outbound) (string, error) {
	id, err := s.Sender.Send(ctx, m)
	s.once.Do(s.erase)
	return id, err
}

// A send on its way while its contact is erased records its outcome after
// the erasure; the event it would queue (the number and the words, with
// personal events on) is not queued, and the send's job ends.
func TestErasure_ASendInFlightQueuesNoEventAfterIt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rcv := &receiver{secret: []byte(strings.Repeat("s", 32)), failures: 1 << 20, accepted: map[string]map[string]any{}} // down
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	erased := make(chan error, 1)
	sender := &erasingSender{Sender: e.twilio, erase: func() {
		var contact int64
		err := e.db.Pool.QueryRow(ctx, `SELECT contact_id FROM messages WHERE provider_message_id = 'SM1'`).Scan(&contact)
		if err == nil {
			_, err = store.NewContactStore(e.db, e.crypto).Erase(ctx, contact, nil, store.NewAuditStore(e.db, e.crypto))
		}
		erased <- err
	}}
	e.startWith(t, pipeline.Deps{Responder: pipeline.NewFlows(engine.Builtin(), e.db, e.crypto),
		Senders: map[string]channel.Sender{channel.Twilio: sender},
		Events:  &pipeline.Events{URL: srv.URL, Secret: rcv.secret, Personal: true},
		Config:  pipeline.Config{SendRate: 1000, SendBurst: 100, RetryBase: time.Hour, FetchInterval: 20 * time.Millisecond}})
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "knee surgery Monday")); err != nil {
		t.Fatal(err)
	}
	if err := <-erased; err != nil {
		t.Fatalf("the erasure during the send: %v", err)
	}
	waitFor(t, "the sends to end", func() bool {
		return e.count(t, `SELECT count(*) FROM river_job WHERE kind IN ('send_message', 'send_batch', 'process_contact', 'process_contacts')
			AND state NOT IN ('completed', 'discarded', 'cancelled')`) == 0
	})
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE args::text LIKE '%9876543210%' OR args::text LIKE '%clinic assistant%'`); n != 0 {
		t.Errorf("%d jobs queued after the erasure carry the number or the words", n)
	}
	if n := e.count(t, `SELECT count(*) FROM river_job WHERE kind IN ('send_message', 'send_batch') AND state <> 'completed'`); n != 0 {
		t.Errorf("%d sends did not complete", n)
	}
}
