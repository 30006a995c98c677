package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// Notes are kept while their contact is (README, "Notes, tags and saved
// replies"): a retention pass that clears a silent contact's name and
// messages leaves the notes staff wrote on it, readable, and only the
// contact's erasure removes them.
func TestNotes_KeptByRetentionGoneWithErasure(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.retained(t, "whatsapp:+919876543210", "Asha Verma", "kneesurgery", models.ConversationEnded)
	notes := store.NewNoteStore(f.db, f.crypto)
	const body = "Prefers calls after 6pm"
	n, err := notes.Add(ctx, nil, old.contact.ID, "", body)
	if err != nil {
		t.Fatal(err)
	}
	const days = 40 * 24 * time.Hour
	f.age(t, old, days)
	if _, err := f.db.Pool.Exec(ctx, `UPDATE contact_notes SET created_at = created_at - $2::interval, updated_at = updated_at - $2::interval
		WHERE id = $1`, n.ID, days.String()); err != nil {
		t.Fatal(err)
	}
	cleared, err := store.NewRetentionStore(f.db).Purge(ctx, store.Cut{Before: time.Now().Add(-30 * 24 * time.Hour)}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if cleared.Names != 1 || cleared.Messages != 1 {
		t.Fatalf("the pass cleared %+v: the contact was not old enough to prove anything", cleared)
	}
	list, err := notes.ForContact(ctx, old.contact.ID)
	if err != nil || len(list) != 1 || list[0].Body != body {
		t.Fatalf("notes after retention: %+v %v", list, err)
	}
	if _, err := f.contacts.Erase(ctx, old.contact.ID, nil, store.NewAuditStore(f.db, f.crypto)); err != nil {
		t.Fatal(err)
	}
	if got := f.count(t, `SELECT count(*) FROM contact_notes WHERE id = $1`, n.ID); got != 0 {
		t.Errorf("%d notes left after the contact's erasure", got)
	}
}
