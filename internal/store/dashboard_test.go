package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// TestConversationStore_HandoffAnsweredOncePerHandoff: a hand-off's wait
// ends at the first answer (a take or a reply), later answers leave it,
// the save of the conversation's state never touches it, and a new
// hand-off waits afresh; the path taken is kept with the state.
func TestConversationStore_HandoffAnsweredOncePerHandoff(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	convs := store.NewConversationStore(f.db, f.crypto)
	c := f.contact(t, "+919876543210", "")
	first := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	conv := &models.Conversation{ContactID: c.ID, FlowID: "clinic", FlowVersion: "v1", Node: "handoff", Status: models.ConversationHandoff,
		HandoffAt: &first}
	conv.Visit([]string{"welcome", "ask_name"})
	conv.Visit([]string{"ask_name", "handoff"})
	if err := convs.Save(ctx, nil, conv); err != nil {
		t.Fatal(err)
	}
	answered := func() *time.Time {
		var at *time.Time
		if err := f.db.Pool.QueryRow(ctx, `SELECT handoff_answered_at FROM conversations WHERE id = $1`, conv.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if answered() != nil {
		t.Fatal("answered before anyone answered")
	}
	if err := convs.Answered(ctx, nil, conv.ID); err != nil {
		t.Fatal(err)
	}
	once := answered()
	if once == nil || once.Before(first) {
		t.Fatalf("the first answer recorded %v", once)
	}
	if err := convs.Answered(ctx, nil, conv.ID); err != nil { // a second reply
		t.Fatal(err)
	}
	if err := convs.Save(ctx, nil, conv); err != nil { // processing saves the state again
		t.Fatal(err)
	}
	if again := answered(); again == nil || !again.Equal(*once) {
		t.Fatalf("a later answer or save moved the first answer: %v, was %v", again, once)
	}
	read, err := convs.Read(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := read.NodesVisited; len(got) != 3 || got[0] != "welcome" || got[1] != "ask_name" || got[2] != "handoff" {
		t.Errorf("nodes visited %v, want welcome, ask_name, handoff once each", got)
	}
	// Handed off again, later: it waits again until answered again.
	later := time.Now().UTC()
	read.HandoffAt = &later
	if err := convs.Save(ctx, nil, read); err != nil {
		t.Fatal(err)
	}
	if err := convs.Answered(ctx, nil, conv.ID); err != nil {
		t.Fatal(err)
	}
	if third := answered(); third == nil || !third.After(*once) {
		t.Fatalf("the second hand-off's answer: %v (first %v)", third, once)
	}
}
