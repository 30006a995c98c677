package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/store"
	"github.com/parley-chat/parley/models"
)

// The hand-off queue is in the order of its hand-offs, the latest first,
// whatever order the conversations began in, and pages on that order
// without skipping or repeating one.
func TestHandoffs_LatestHandOffFirstAndPagedInThatOrder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	convs := store.NewConversationStore(f.db, f.crypto)
	at := func(h int) *time.Time { v := time.Date(2026, 12, 7, h, 0, 0, 0, time.UTC); return &v }
	// Begun in this order (ids ascending), handed off at 10, 12 and 11.
	var ids []int64
	for i, h := range []int{10, 12, 11} {
		c := f.contact(t, "+91987654321"+string(rune('0'+i)), "")
		conv := &models.Conversation{ContactID: c.ID, FlowID: "clinic", FlowVersion: "v1", Node: "handoff", Status: models.ConversationHandoff, HandoffAt: at(h)}
		if err := convs.Save(ctx, nil, conv); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, conv.ID)
	}
	want := []int64{ids[1], ids[2], ids[0]} // 12, 11, 10
	all, err := convs.Handoffs(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].ConversationID != want[0] || all[1].ConversationID != want[1] || all[2].ConversationID != want[2] {
		t.Fatalf("the queue %+v, want the conversations %v", all, want)
	}
	var paged []int64
	for before := int64(0); ; {
		page, err := convs.Handoffs(ctx, before, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged, before = append(paged, page[0].ConversationID), page[0].ConversationID
		if len(paged) > 3 {
			t.Fatalf("paging repeats: %v", paged)
		}
	}
	if len(paged) != 3 || paged[0] != want[0] || paged[1] != want[1] || paged[2] != want[2] {
		t.Fatalf("paged one at a time: %v, want %v", paged, want)
	}
}
