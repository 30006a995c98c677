package pipeline_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/channel"
	"github.com/parley-chat/parley/internal/pipeline"
	"github.com/parley-chat/parley/internal/store"
)

// With a retention set, the daily job clears what people said in older
// messages (bodies, their word index, attachments), keeps the newer ones
// whole, and audits how many of each kind it cleared and nothing else
// (store's retention tests cover every kind).
func TestRetention_ClearsOldBodiesAndAuditsTheCount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.pipelineIngest(t, sms("SM1", "+919876543210", "my old secret"), sms("SM2", "+919812345678", "a new message")); err != nil {
		t.Fatal(err)
	}
	var oldID int64
	if err := e.db.Pool.QueryRow(ctx, `UPDATE messages SET created_at = now() - interval '40 days' WHERE provider_message_id = 'SM1' RETURNING id`).Scan(&oldID); err != nil {
		t.Fatal(err)
	}
	messages := store.NewMessageStore(e.db, e.crypto)
	old, err := messages.Get(ctx, oldID)
	if err != nil {
		t.Fatal(err)
	}
	if err := messages.IndexWords(ctx, nil, old); err != nil {
		t.Fatal(err)
	}
	if _, err := store.NewMediaStore(e.db, e.crypto).Add(ctx, nil, oldID, 0, "https://api.twilio.com/media/1", "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	e.startWith(t, pipeline.Deps{Responder: pipeline.Ack{}, Senders: map[string]channel.Sender{channel.Twilio: e.twilio},
		Config: pipeline.Config{RetentionDays: 30, FetchInterval: 20 * time.Millisecond}})
	waitFor(t, "the retention job", func() bool {
		return e.count(t, `SELECT count(*) FROM audit_events WHERE action = 'retention.purge'`) == 1
	})
	if n := e.count(t, `SELECT count(*) FROM messages WHERE id = $1 AND body_enc IS NULL AND profile_name_enc IS NULL`, oldID); n != 1 {
		t.Error("the old message's body is still there")
	}
	if n := e.count(t, `SELECT count(*) FROM message_words WHERE message_id = $1`, oldID); n != 0 {
		t.Errorf("%d word index entries of the old message remain", n)
	}
	if n := e.count(t, `SELECT count(*) FROM media WHERE message_id = $1`, oldID); n != 0 {
		t.Error("the old message's attachment remains")
	}
	var newID int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT id FROM messages WHERE provider_message_id = 'SM2'`).Scan(&newID); err != nil {
		t.Fatal(err)
	}
	if m, err := messages.Get(ctx, newID); err != nil || m.Body != "a new message" {
		t.Errorf("the new message: %+v %v", m, err)
	}
	entries, err := store.NewAuditStore(e.db, e.crypto).List(ctx, store.AuditQuery{Action: "retention.purge"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit entries: %v %v", entries, err)
	}
	if got := entries[0].Details; got["messages"] != float64(1) || got["attachments"] != float64(1) || got["days"] != float64(30) {
		t.Errorf("the audit entry says %v, want one message and one attachment cleared after 30 days", got)
	}
	// Counts of every kind cleared, and nothing else.
	keys := slices.Sorted(maps.Keys(entries[0].Details))
	if want := []string{"attachments", "before", "conversations", "days", "events", "messages", "names", "sessions"}; !slices.Equal(keys, want) {
		t.Errorf("the audit entry holds %v, want %v", keys, want)
	}
}
