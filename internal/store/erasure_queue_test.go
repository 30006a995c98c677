package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// queued is the queue of two contacts as a running Parley leaves it with
// personal events on and the receiver down: jobs of every kind that may
// name a contact, in every state, some shared by both contacts.
type queued struct {
	touched int              // jobs of the erased contact (deleted or changed)
	stays   map[int64]string // job id → args it must hold after the erasure
	gone    []int64          // job ids that must be gone
	erased  int64            // the running event, which must stay stripped and marked
}

// personalEvent is an event as the pipeline queues it for a receiver that
// asked for personal data: the number and the words in data.
func personalEvent(c *models.Contact, messageID int64, body string) pipeline.EventArgs {
	return pipeline.EventArgs{ID: "evt_" + itoa(messageID), Type: pipeline.EventMessageReceived, At: time.Now().UTC(), Data: map[string]any{
		"contact_id": c.ID, "channel": string(c.Channel), "message_id": messageID, "provider": "twilio", "status": "received",
		"body": body, "phone": c.Address}}
}

func queueOfBoth(t *testing.T, f *fixture, asha, ravi *models.Contact, ashaMsgs, raviMsgs, media []int64) *queued {
	t.Helper()
	q := &queued{stays: map[int64]string{}}
	add := func(args river.JobArgs, state string) int64 {
		t.Helper()
		raw, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		var id int64
		if err := f.db.Pool.QueryRow(context.Background(), `INSERT INTO river_job (kind, args, state, max_attempts, queue, priority, scheduled_at, attempt, finalized_at)
			VALUES ($1, $2, $3::river_job_state, 20, 'default', 1, now(), 1, CASE WHEN $3::text IN ('completed', 'cancelled', 'discarded') THEN now() END) RETURNING id`,
			args.Kind(), raw, state).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	gone := func(args river.JobArgs, state string) {
		q.gone = append(q.gone, add(args, state))
		q.touched++
	}
	// Asha's alone, in every state: all go.
	for _, state := range []string{"available", "retryable", "scheduled", "completed", "discarded", "cancelled"} {
		gone(personalEvent(asha, ashaMsgs[0], "knee surgery Monday"), state)
	}
	gone(pipeline.ProcessArgs{ContactID: asha.ID, Held: ashaMsgs[1]}, "available")
	gone(pipeline.ProcessBatchArgs{ContactIDs: []int64{asha.ID}}, "completed")
	gone(pipeline.SendArgs{MessageIDs: ashaMsgs}, "retryable")
	gone(pipeline.SendBatchArgs{Provider: "twilio", Runs: [][]int64{ashaMsgs}}, "discarded")
	gone(pipeline.MediaArgs{MediaID: media[0], Provider: "twilio"}, "available")
	gone(pipeline.UnderstandArgs{MediaID: media[1]}, "pending")
	gone(pipeline.WaitArgs{ContactID: asha.ID, ConversationID: 1, Input: "remind", Seq: 1, Provider: "twilio"}, "scheduled")
	gone(pipeline.AIArgs{ContactID: asha.ID, ConversationID: 1, Seq: 1, Provider: "twilio"}, "retryable")
	gone(pipeline.StatusPollArgs{MessageID: ashaMsgs[0], Provider: "twilio", SentAt: time.Now().UTC()}, "scheduled")
	// A running event cannot go from under its worker: it stays, stripped
	// of the person and marked, so a retry delivers nothing.
	q.erased = add(personalEvent(asha, ashaMsgs[1], "my card attached"), "running")
	q.touched++
	// Batches shared with Ravi keep Ravi's part only.
	both := add(pipeline.ProcessBatchArgs{ContactIDs: []int64{asha.ID, ravi.ID}}, "available")
	q.stays[both] = `{"contact_ids": [` + itoa(ravi.ID) + `]}`
	runs := add(pipeline.SendBatchArgs{Provider: "twilio", Runs: [][]int64{ashaMsgs, raviMsgs}}, "available")
	q.stays[runs] = `{"provider": "twilio", "runs": [[` + itoa(raviMsgs[0]) + `]]}`
	q.touched += 2
	// Ravi's own stay as they are.
	for _, args := range []river.JobArgs{personalEvent(ravi, raviMsgs[0], "prescription refill please"),
		pipeline.ProcessArgs{ContactID: ravi.ID}, pipeline.MediaArgs{MediaID: media[2], Provider: "twilio"}} {
		raw, _ := json.Marshal(args)
		q.stays[add(args, "available")] = string(raw)
	}
	return q
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// check asserts what the erasure left of the queue.
func (q *queued) check(t *testing.T, f *fixture) {
	t.Helper()
	ctx := context.Background()
	var left int
	if err := f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE id = ANY($1)`, q.gone).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d of the erased contact's %d jobs remain (%v)", left, len(q.gone), err)
	}
	for id, want := range q.stays {
		var same bool
		if err := f.db.Pool.QueryRow(ctx, `SELECT args = $2::jsonb FROM river_job WHERE id = $1`, id, want).Scan(&same); err != nil || !same {
			var got string
			_ = f.db.Pool.QueryRow(ctx, `SELECT args::text FROM river_job WHERE id = $1`, id).Scan(&got)
			t.Errorf("job %d holds %s, want %s (%v)", id, got, want, err)
		}
	}
	var ev pipeline.EventArgs
	var raw []byte
	if err := f.db.Pool.QueryRow(ctx, `SELECT args FROM river_job WHERE id = $1 AND state = 'running'`, q.erased).Scan(&raw); err != nil {
		t.Fatalf("the running event: %v", err)
	}
	if err := json.Unmarshal(raw, &ev); err != nil || !ev.Erased || ev.Data["phone"] != nil || ev.Data["body"] != nil {
		t.Errorf("the running event after the erasure: %s", raw)
	}
}

// A send holding one of the contact's messages (its transaction records
// a failure and queues the event, with the number and the words) when the
// erasure comes: the erasure waits for it, and then removes that event too.
func TestErase_WaitsForASendHoldingAMessageAndRemovesWhatItQueued(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	asha := f.contact(t, "whatsapp:+919876543210", "Asha Verma")
	msg := f.message(t, asha, "knee surgery Monday")
	send, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = send.Rollback(ctx) }()
	if _, err := send.Exec(ctx, `SELECT id FROM messages WHERE id = $1 FOR NO KEY UPDATE`, msg.ID); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(personalEvent(asha, msg.ID, "knee surgery Monday"))
	if _, err := send.Exec(ctx, `INSERT INTO river_job (kind, args, state, max_attempts, queue, priority) VALUES ('event', $1, 'available', 20, 'default', 1)`, raw); err != nil {
		t.Fatal(err)
	}
	erased := make(chan error, 1)
	go func() {
		_, err := f.contacts.Erase(ctx, asha.ID, nil, store.NewAuditStore(f.db, f.crypto))
		erased <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for f.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the erasure to wait on the send")
		}
		select {
		case err := <-erased:
			t.Fatalf("the erasure did not wait for the send: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := send.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-erased; err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, `SELECT count(*) FROM river_job WHERE args::text LIKE '%9876543210%'`); n != 0 {
		t.Errorf("%d events the send queued outlive the erasure", n)
	}
}
