package store_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/parley-chat/parley/models"
)

// Contacts written before the last-digits index existed are found by
// their last digits once the start-up pass has run; a contact whose
// address cannot be read is skipped without holding up the others, and a
// second pass has nothing left but that one.
func TestContactStore_FillTailsBackfillsAndSkipsABadRow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var old []*models.Contact
	for _, number := range []string{"+447700900117", "+919876543210", "+14155550100"} {
		c := f.contact(t, number, "")
		f.message(t, c, "hello")
		old = append(old, c)
	}
	// As they stood before migration 00036: no index; one address corrupt.
	if _, err := f.db.Pool.Exec(ctx, `UPDATE contacts SET address_tail_bidx = NULL`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Pool.Exec(ctx, `UPDATE contacts SET address_enc = '\x00ba' WHERE id = $1`, old[1].ID); err != nil {
		t.Fatal(err)
	}
	found := func(tail string) int {
		t.Helper()
		page, err := f.messages.Search(ctx, models.MessageSearch{PhoneTail: tail})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Hits)
	}
	if found("900117") != 0 {
		t.Fatal("found by an index nobody filled")
	}
	log := slog.New(slog.DiscardHandler)
	n, err := f.contacts.FillTails(ctx, log)
	if err != nil || n != 2 {
		t.Fatalf("FillTails = %d, %v; want the two readable contacts", n, err)
	}
	if found("900117") != 1 || found("0100") != 1 || found("0117") != 1 {
		t.Fatalf("after the pass: 900117 %d, 0100 %d", found("900117"), found("0100"))
	}
	if n, err := f.contacts.FillTails(ctx, log); err != nil || n != 0 {
		t.Fatalf("a second pass filled %d, %v", n, err)
	}
	// A contact written now gets its index with the write.
	f.message(t, f.contact(t, "+447700900999", ""), "hi")
	if found("900999") != 1 {
		t.Fatal("a new contact is not found by its last digits")
	}
}
